"""Text goals for UniPi's video model ([22] Du et al. 2023, Sec. 3.1: the video is generated from a
text description of the task, which UniPi embeds with a pretrained T5 encoder). Two embeddings of
a batch of task texts into the model's conditioning width, each with a learned vector standing
for "no text" (the goal is an image):

- `LearnedTaskEmbedding`: a table over the task descriptions seen in training; any other text is
  a GoalVideoError naming it;
- `PretrainedTaskEmbedding`: a local `transformers` text encoder (a folder `AutoTokenizer` and
  `AutoModel` load, nothing downloaded), frozen, its last hidden states averaged over the text's
  tokens, then a trained Linear: it embeds any text, also ones never seen in training.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn


class GoalVideoError(ValueError):
    """A goal the video model cannot be conditioned on, or an encoder it cannot load; names it."""


class LearnedTaskEmbedding(nn.Module):
    def __init__(self, tasks: list[str], width: int):
        super().__init__()
        self.index = {text: row for row, text in enumerate(tasks)}
        self.table = nn.Embedding(len(tasks) + 1, width)  # the last row: no text

    def forward(self, texts: list[str | None]) -> Tensor:
        unknown = [text for text in texts if text is not None and text not in self.index]
        if unknown:
            raise GoalVideoError(f"task {unknown[0]!r}: not one the model was trained with ({len(self.index)} tasks, e.g. {next(iter(self.index), None)!r})")
        rows = [len(self.index) if text is None else self.index[text] for text in texts]
        return self.table(torch.tensor(rows, device=self.table.weight.device))


class PretrainedTaskEmbedding(nn.Module):
    def __init__(self, folder: str | Path, width: int):
        super().__init__()
        try:
            from transformers import AutoModel, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self.encoder = AutoModel.from_pretrained(str(folder), local_files_only=True).requires_grad_(False).eval()
        except (ImportError, OSError, ValueError) as error:
            raise GoalVideoError(f"text_encoder {folder}: cannot load a local transformers text encoder from it ({error})") from error
        self.projection = nn.Linear(self.encoder.config.hidden_size, width)
        self.no_text = nn.Parameter(torch.zeros(width))

    def train(self, mode: bool = True) -> PretrainedTaskEmbedding:
        """The encoder stays frozen in eval mode."""
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, texts: list[str | None]) -> Tensor:
        given = [text for text in texts if text is not None]
        out = self.no_text.expand(len(texts), -1).clone()
        if given:
            tokens = self.tokenizer(given, padding=True, return_tensors="pt").to(self.no_text.device)
            with torch.no_grad():
                hidden = self.encoder(**tokens).last_hidden_state  # (N, L, hidden)
            mask = tokens["attention_mask"][..., None].to(hidden.dtype)
            rows = torch.tensor([row for row, text in enumerate(texts) if text is not None], device=out.device)
            out[rows] = self.projection((hidden * mask).sum(1) / mask.sum(1))
        return out
