"""The causal 3D convolution: frame counts, causality, and the first frame seen alone."""

from __future__ import annotations

import pytest
import torch

from reverie.nn.causal_conv3d import CausalConv3d, factorized_causal_conv3d


@pytest.mark.parametrize("time_stride", [1, 2, 4])
def test_a_clip_of_1_plus_k_strides_gives_1_plus_k_frames(time_stride):
    conv = CausalConv3d(2, 3, (3, 3, 3), stride=(time_stride, 1, 1))
    for k in range(3):
        assert conv(torch.rand(1, 2, 1 + k * time_stride, 5, 6)).shape == (1, 3, 1 + k, 5, 6)


@pytest.mark.parametrize("time_stride", [1, 2])
def test_no_output_frame_depends_on_a_later_input_frame(time_stride):
    torch.manual_seed(0)
    conv = CausalConv3d(2, 2, (3, 3, 3), stride=(time_stride, 1, 1)).double()
    video = torch.rand(1, 2, 1 + 3 * time_stride, 4, 4, dtype=torch.float64, requires_grad=True)
    output = conv(video)
    for frame in range(output.shape[2]):
        (gradient,) = torch.autograd.grad(output[:, :, frame].sum(), video, retain_graph=True)
        seen = gradient.abs().sum(dim=(0, 1, 3, 4)) > 0
        assert not seen[frame * time_stride + 1 :].any() and seen[frame * time_stride]


def test_a_prefix_of_the_clip_gives_the_prefix_of_the_output():
    torch.manual_seed(0)
    conv = factorized_causal_conv3d(3, 4).double()
    video = torch.rand(2, 3, 7, 6, 6, dtype=torch.float64)
    full = conv(video)
    for frames in (1, 4):
        torch.testing.assert_close(conv(video[:, :, :frames]), full[:, :, :frames], rtol=0, atol=1e-12)


def test_the_first_frame_is_padded_with_copies_of_itself():
    conv = CausalConv3d(1, 1, (3, 1, 1))
    still = torch.rand(1, 1, 1, 2, 2).expand(-1, -1, 3, -1, -1)  # a still video: every window is three copies
    output = conv(still)
    torch.testing.assert_close(output[:, :, 0], output[:, :, 2])
