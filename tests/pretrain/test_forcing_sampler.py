"""Diffusion forcing's sampler [24] [19]: the context's cache equals full passes at every row, the
scheduling matrices' passes and orders, stabilisation, and classifier-free guidance on actions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reverie.nn.diffusion import DDPMConfig, VPredictionSchedule
from reverie.pretrain.forcing_sampler import SamplingSettings, denoise_chunk
from tiny_latent_dit import ACTIONS, random_window, tiny_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCHEDULE = VPredictionSchedule(DDPMConfig(train_levels=1000))
CONTEXT, NEW = 2, 3


class WithoutCache(nn.Module):
    """The network over context and chunk together at every call, where the sampler runs the chunk
    alone against the context's cache; it counts its calls."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network, self.context, self.calls = network, None, 0

    def forward(self, latents, levels, previous_actions, kept, past=None):
        self.calls += 1
        if past is None:
            self.context = (latents, levels, previous_actions, kept)
            return self.network(latents, levels, previous_actions, kept)
        inputs = [torch.cat([context, new], dim=1) for context, new in zip(self.context, (latents, levels, previous_actions, kept))]
        velocity, cache = self.network(*inputs)
        return velocity[:, self.context[0].shape[1] :], cache


def sample(network: nn.Module, seed: int = 0, kept: torch.Tensor | None = None, actions: torch.Tensor | None = None, **settings) -> torch.Tensor:
    latents, _, window_actions, window_kept = random_window(frames=CONTEXT + NEW)
    fields = dict(sampling_steps=4, schedule="pyramid", stabilization_level=15, guidance_scale=1.0) | settings
    return denoise_chunk(network, SCHEDULE, latents[:, :CONTEXT], window_actions if actions is None else actions,
                         window_kept if kept is None else kept, NEW, SamplingSettings(**fields), torch.Generator().manual_seed(seed))  # fmt: skip


@pytest.mark.parametrize("schedule", ["autoregressive", "pyramid"])
@pytest.mark.parametrize("guidance_scale", [1.0, 2.5])
def test_the_cached_sampler_equals_full_passes_at_every_row(schedule, guidance_scale):
    network = tiny_network()
    cached = sample(network, schedule=schedule, guidance_scale=guidance_scale)
    uncached = sample(WithoutCache(network), schedule=schedule, guidance_scale=guidance_scale)
    assert cached.shape == (2, NEW, 4, 4, 6) and cached.isfinite().all()
    torch.testing.assert_close(cached, uncached, rtol=0, atol=1e-9)


@pytest.mark.parametrize("schedule, rows", [("autoregressive", 4 * NEW + 1), ("pyramid", 4 + NEW), ("full_sequence", 5)])
def test_each_schedule_runs_the_context_once_and_the_chunk_once_a_row_but_the_last(schedule, rows):
    counting = WithoutCache(tiny_network())
    sample(counting, schedule=schedule)
    assert counting.calls == 1 + rows - 1


def test_the_same_seed_gives_the_same_frames_and_another_seed_others():
    network = tiny_network()
    first = sample(network, seed=3)
    assert torch.equal(sample(network, seed=3), first) and (sample(network, seed=4) - first).abs().max() > 1e-3


def test_guidance_0_is_the_unconditional_model_and_guidance_1_the_conditional():
    network = tiny_network()
    _, _, actions, kept = random_window(frames=CONTEXT + NEW)
    unconditional = sample(network, kept=torch.zeros_like(kept))
    torch.testing.assert_close(sample(network, guidance_scale=0.0), unconditional, rtol=0, atol=1e-10)
    other_actions = (actions + 1) % ACTIONS["n"]
    torch.testing.assert_close(sample(network, guidance_scale=0.0, actions=other_actions), unconditional, rtol=0, atol=1e-10)
    conditional = sample(network)
    assert (conditional - unconditional).abs().max() > 1e-3
    guided = sample(network, guidance_scale=3.0)
    assert (guided - conditional).abs().max() > 1e-3 and guided.isfinite().all()


def test_the_stabilization_level_is_what_the_network_is_told_of_the_context():
    network = tiny_network()
    seen = []
    network.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[1].clone()))
    sample(network, stabilization_level=40)
    assert torch.equal(seen[0], torch.full((2, CONTEXT), 40))  # the context's pass
    assert (seen[-1] == 40).any() and seen[1].min() > 40  # done frames of the chunk; none done in the first row
    low, high = sample(network, stabilization_level=0), sample(network, stabilization_level=200)
    assert (low - high).abs().max() > 1e-3
