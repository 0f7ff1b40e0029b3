"""VQ (`reverie.nn.quantizers.vq`): the plain straight-through estimator, the commitment term,
cosine-similarity codes, dead-code restart reviving codes no input chose, and codebook dropout
changing the nearest-code choice in training only."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from reverie.nn.quantizers import VectorQuantizer, VQConfig, usage


def nearest_codes(quantizer: VectorQuantizer, latents: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) -> (B * H * W,) index of the nearest code by Euclidean distance, no projection."""
    return torch.cdist(rearrange(latents, "b d h w -> (b h w) d"), quantizer.codebook).argmin(dim=-1)


def test_gradients_pass_straight_through_unchanged_not_by_the_rotation_trick():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(VQConfig(dim=4, codebook_size=16))
    latents = torch.randn(2, 4, 5, 5, requires_grad=True)
    upstream = torch.randn(2, 4, 5, 5)
    (quantizer(latents).latents * upstream).sum().backward()
    torch.testing.assert_close(latents.grad, upstream)


def test_the_commitment_term_is_beta_times_the_squared_distance_to_the_code():
    torch.manual_seed(0)
    latents = torch.randn(2, 4, 5, 5)
    quantized = VectorQuantizer(VQConfig(dim=4, codebook_size=16, commitment_weight=0.4))(latents)
    torch.testing.assert_close(quantized.losses["commitment"], 0.4 * F.mse_loss(latents, quantized.latents))
    assert VectorQuantizer(VQConfig(dim=4, commitment_weight=0.0))(latents).losses == {}


def test_cosine_similarity_codes_are_unit_vectors_and_the_choice_ignores_the_input_norm():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(VQConfig(dim=4, codebook_size=16, cosine_similarity=True)).eval()
    latents = torch.randn(2, 4, 5, 5)
    quantized = quantizer(latents)
    torch.testing.assert_close(quantizer.codebook.norm(dim=-1), torch.ones(16))
    torch.testing.assert_close(quantized.latents.norm(dim=1), torch.ones(2, 5, 5))
    scale = torch.rand(2, 1, 5, 5) * 10 + 0.1
    assert torch.equal(quantizer(latents * scale).indices, quantized.indices)
    similarity = rearrange(F.normalize(latents, dim=1), "b d h w -> (b h w) d") @ quantizer.codebook.T
    assert torch.equal(rearrange(quantized.indices, "b h w -> (b h w)"), similarity.argmax(dim=-1))


def test_dead_code_restart_revives_codes_that_no_input_chooses():
    def far_batch() -> torch.Tensor:  # 512 vectors around 3, far from the codebook's start near 0
        return 3.0 + 0.5 * torch.randn(8, 4, 8, 8)

    hit = {}
    for threshold in (0.0, 2.0):
        torch.manual_seed(0)
        quantizer = VectorQuantizer(VQConfig(dim=4, codebook_size=64, dead_code_threshold=threshold))
        hit_before = usage(quantizer.eval()(far_batch()).indices, 64)[0]
        quantizer.train()
        for _ in range(5):
            quantizer(far_batch())
        hit[threshold] = (hit_before, usage(quantizer.eval()(far_batch()).indices, 64)[0])
    assert hit[0.0][0] < 0.1 and hit[2.0][0] < 0.1  # at the start, a few codes take every vector
    assert hit[0.0][1] < 0.1  # and without restarts the rest stay dead
    assert hit[2.0][1] > 0.5, hit


def test_codebook_dropout_changes_the_nearest_code_in_training_only():
    torch.manual_seed(0)
    latents = torch.randn(4, 4, 8, 8)
    dropped = VectorQuantizer(VQConfig(dim=4, codebook_size=64, codebook_dropout=0.5))
    nearest = nearest_codes(dropped, latents)
    dropped.eval()
    for _ in range(2):
        assert torch.equal(rearrange(dropped(latents).indices, "b h w -> (b h w)"), nearest)
    dropped.train()
    chosen = rearrange(dropped(latents).indices, "b h w -> (b h w)")  # chosen before the codebook update
    assert 0.3 < (chosen != nearest).float().mean() < 0.7  # the nearest code is hidden half of the time
    plain = VectorQuantizer(VQConfig(dim=4, codebook_size=64)).train()
    nearest = nearest_codes(plain, latents)
    assert torch.equal(rearrange(plain(latents).indices, "b h w -> (b h w)"), nearest)
