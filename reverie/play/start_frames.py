"""The frame a play session starts from: a prompt image of any size (`--prompt IMAGE`, read with
PIL, as Genie 2 [19] is prompted with one image), or a real frame of recorded episode shards
(`--start EPISODE_SHARDS...`): the first frame of the first episode, i.e. of the first sample, in
the order given, whose clip starts its episode (`step` 0 in its JSON; a sample without `step`,
ingested video, starts its own). Either is resized to the model's frame size when it differs, and
the `StartFrame` says from what size to what.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from einops import rearrange
from PIL import Image, UnidentifiedImageError

from reverie.play.playable import PlayError
from reverie.shards.clip_tensors import BadSampleError, SampleFormatError, decode_sample, sample_meta
from reverie.tokenizers.evaluate import TokenizerEvaluationError, samples_of, shard_files


@dataclass
class StartFrame:
    frame: np.ndarray  # (H, W, 3) uint8 at the model's frame size
    source: dict  # what it came from, for the report: {"prompt": path} or {"shard": path, "key": key}
    resized_from: tuple[int, int] | None  # (H, W) of the image before resizing; None when it fit

    def message(self) -> str:
        """One line saying where the frame came from and, when it was resized, from what size to what."""
        where = f"prompt {self.source['prompt']}" if "prompt" in self.source else f"{self.source['shard']}: sample {self.source['key']}"
        height, width = self.frame.shape[:2]
        if self.resized_from is None:
            return f"starting from {where} ({height}x{width})"
        return f"starting from {where}, resized from {self.resized_from[0]}x{self.resized_from[1]} to the model's {height}x{width}"


def fit(image: Image.Image, frame_size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int] | None]:
    """(H, W, 3) uint8 at frame_size (bilinear when it is another size), and the size it had if resized."""
    height, width = frame_size
    image = image.convert("RGB")
    if (image.height, image.width) == (height, width):
        return np.array(image), None
    return np.array(image.resize((width, height), Image.BILINEAR)), (image.height, image.width)


def prompt_frame(path: str | Path, frame_size: tuple[int, int]) -> StartFrame:
    """The image at `path` as a start frame; PlayError when it is missing or not an image PIL reads."""
    try:
        with Image.open(path) as image:
            frame, resized_from = fit(image, frame_size)
    except FileNotFoundError:
        raise PlayError(f"--prompt {path}: no such image file") from None
    except (UnidentifiedImageError, OSError) as error:
        raise PlayError(f"--prompt {path}: cannot be read as an image ({' '.join(str(error).split())})") from None
    return StartFrame(frame, {"prompt": str(path)}, resized_from)


def starts_episode(raw: dict) -> bool:
    try:
        return int(sample_meta(raw).get("step", 0)) == 0
    except (SampleFormatError, TypeError, ValueError):
        return False  # a sample whose JSON cannot be read is no start; decoding would refuse it too


def episode_starts(shards: Sequence[str | Path], frame_size: tuple[int, int]) -> Iterator[StartFrame]:
    """The first frame of each episode of `shards`, in order; damaged clips are passed over, and
    PlayError names a shard that holds latents or tokens, or shards that cannot be read."""
    try:
        for shard in shard_files(shards):
            for raw in samples_of(shard):
                if not starts_episode(raw):
                    continue
                try:
                    sample = decode_sample(raw, None, None)
                except BadSampleError:
                    continue  # a damaged clip: the next episode's start will do
                if "frames" not in sample:
                    raise PlayError(f"{shard}: sample {sample['key']} holds latents or tokens, not frames; give frame or episode shards to start from")
                first = (rearrange(sample["frames"][0], "c h w -> h w c") * 255).round().byte().numpy()
                frame, resized_from = fit(Image.fromarray(first), frame_size)
                yield StartFrame(frame, {"shard": shard, "key": sample["key"]}, resized_from)
    except TokenizerEvaluationError as error:
        raise PlayError(f"--start: {error}") from error


def shard_frame(shards: Sequence[str | Path], frame_size: tuple[int, int]) -> StartFrame:
    """The first frame of the first episode of `shards`; PlayError naming the shards when there is none."""
    for start in episode_starts(shards, frame_size):
        return start
    raise PlayError(f"--start {' '.join(map(str, shards))}: no readable clip that starts an episode")


def start_frame(prompt: str | Path | None, shards: Sequence[str | Path] | None, frame_size: tuple[int, int]) -> StartFrame:
    """The prompt image if given, else the shards' first frame; PlayError when neither (or both) is given."""
    if prompt is not None and shards:
        raise PlayError("give either --prompt IMAGE or --start EPISODE_SHARDS..., not both")
    if prompt is not None:
        return prompt_frame(prompt, frame_size)
    if shards:
        return shard_frame(shards, frame_size)
    raise PlayError("nothing to start from: give --prompt IMAGE (any image, resized to the model's frames) or --start EPISODE_SHARDS... (its first frame)")
