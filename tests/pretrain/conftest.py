"""A tiny random transformers VJEPA2Model in a local folder, for the `backbone: hf` tests."""

from __future__ import annotations

import pytest
import torch

VJEPA2_WIDTH = 48


@pytest.fixture(scope="session")
def vjepa2_folder(tmp_path_factory):
    """(folder, model): 2 blocks of width 48 on 8 frames of 32 px, 8x8 patches, tubelets of 2."""
    transformers = pytest.importorskip("transformers", reason="transformers (with VJEPA2Model) is not installed")
    config = transformers.VJEPA2Config(
        hidden_size=VJEPA2_WIDTH, num_attention_heads=4, num_hidden_layers=2, crop_size=32, patch_size=8, frames_per_clip=8,
        tubelet_size=2, pred_hidden_size=24, pred_num_attention_heads=2, pred_num_hidden_layers=1, num_pooler_layers=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.VJEPA2Model(config).eval()
    folder = tmp_path_factory.mktemp("vjepa2")
    model.save_pretrained(folder)
    return folder, model
