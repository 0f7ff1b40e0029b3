"""3D RoPE (`reverie.nn.rotary`): scores depend only on the offset between positions, norms are kept,
and the dimensions past the rotated ones pass unchanged."""

from __future__ import annotations

import torch

from reverie.nn.rotary import Rotary3D, rotate


def rotated(rotary: Rotary3D, heads: torch.Tensor, position: list[float]) -> torch.Tensor:
    return rotate(heads, rotary.rotation(torch.tensor([[position]])))


def test_rope_dot_products_depend_only_on_the_offset():
    torch.manual_seed(0)
    rotary = Rotary3D(head_dim=32)  # 10 dims per axis, 2 left unrotated
    query, key = torch.randn(2, 1, 1, 1, 32)
    offset = [1.0, -3.0, 2.0]
    for shift in ([0.0, 0.0, 0.0], [5.0, 2.0, 7.0], [3.0, 11.0, -4.0]):
        a = [1.0 + s for s in shift]
        b = [a[i] + offset[i] for i in range(3)]
        score = (rotated(rotary, query, a) * rotated(rotary, key, b)).sum()
        reference = (rotated(rotary, query, [1.0, 1.0, 1.0]) * rotated(rotary, key, [2.0, -2.0, 3.0])).sum()
        torch.testing.assert_close(score, reference, rtol=0, atol=1e-5)
    far = (rotated(rotary, query, [0.0, 0.0, 0.0]) * rotated(rotary, key, [0.0, 0.0, 4.0])).sum()
    near = (rotated(rotary, query, [0.0, 0.0, 0.0]) * rotated(rotary, key, [0.0, 0.0, 0.0])).sum()
    assert not torch.isclose(far, near)  # the score does see the offset


def test_rope_keeps_norms_and_is_the_identity_at_the_origin():
    rotary = Rotary3D(head_dim=16)
    heads = torch.randn(1, 2, 1, 16)
    torch.testing.assert_close(rotated(rotary, heads, [0.0, 0.0, 0.0]), heads)
    torch.testing.assert_close(rotated(rotary, heads, [3.0, 1.0, 9.0]).norm(dim=-1), heads.norm(dim=-1))
    passed = rotated(rotary, heads, [3.0, 1.0, 9.0])[..., 12:]  # 16 // 3 // 2 * 2 = 4 per axis
    torch.testing.assert_close(passed, heads[..., 12:], rtol=0, atol=0)
