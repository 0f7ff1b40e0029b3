"""The velocity network of the latent diffusion world models [24] [19]: patches back to latents, v = 0
at init, no frame seeing a later one, and the context's cache equal to a full pass."""

from __future__ import annotations

import pytest
import torch

from reverie.pretrain.latent_dit import LatentDiT
from tiny_latent_dit import ACTIONS, LATENT_SHAPE, random_window, tiny_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_untrained_network_predicts_zero_velocity_of_the_latents_shape():
    torch.manual_seed(0)
    network = LatentDiT(LATENT_SHAPE, 2, 32, 2, 4, 2.0, ACTIONS).double()
    latents, levels, actions, kept = random_window()
    velocity, cache = network(latents, levels, actions, kept)
    assert velocity.shape == latents.shape and torch.equal(velocity, torch.zeros_like(velocity))
    assert network.grid == (2, 3) and len(cache) == 2 and cache[0][0].shape == (2 * 6, 4, 5, 8)  # (B N, heads, T, head_dim)
    assert tiny_network()(latents, levels, actions, kept)[0].abs().max() > 1e-2


def test_no_frame_sees_a_later_frame_its_level_or_its_action():
    network = tiny_network()
    latents, levels, actions, kept = random_window()
    before, _ = network(latents, levels, actions, kept)
    changed_latents, changed_levels, changed_actions = latents.clone(), levels.clone(), actions.clone()
    changed_latents[:, 2:] = torch.randn(changed_latents[:, 2:].shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    changed_levels[:, 2:] = 999 - levels[:, 2:]
    changed_actions[:, 2:] = (actions[:, 2:] + 1) % ACTIONS["n"]
    for change in ({"latents": changed_latents}, {"levels": changed_levels}, {"actions": changed_actions}):
        inputs = {"latents": latents, "levels": levels, "actions": actions} | change
        after, _ = network(inputs["latents"], inputs["levels"], inputs["actions"], kept)
        torch.testing.assert_close(after[:, :2], before[:, :2], rtol=0, atol=1e-12)
        assert (after[:, 2:] - before[:, 2:]).abs().amax(dim=(2, 3, 4)).min() > 1e-6, change.keys()


def test_a_dropped_action_is_the_null_action_whatever_its_code():
    network = tiny_network()
    latents, levels, actions, kept = random_window()
    dropped = kept.clone()
    dropped[:, 3] = False
    other_actions = actions.clone()
    other_actions[:, 3] = (actions[:, 3] + 1) % ACTIONS["n"]
    first, _ = network(latents, levels, actions, dropped)
    second, _ = network(latents, levels, other_actions, dropped)
    torch.testing.assert_close(first, second, rtol=0, atol=1e-12)
    assert (network(latents, levels, actions, kept)[0][:, 3] - first[:, 3]).abs().max() > 1e-6


@pytest.mark.parametrize("context_frames", [1, 3])
def test_the_chunk_against_the_contexts_cache_equals_a_full_pass(context_frames):
    network = tiny_network()
    latents, levels, actions, kept = random_window(frames=5)
    whole, _ = network(latents, levels, actions, kept)
    split = slice(None, context_frames), slice(context_frames, None)
    _, cache = network(latents[:, split[0]], levels[:, split[0]], actions[:, split[0]], kept[:, split[0]])
    chunk, present = network(latents[:, split[1]], levels[:, split[1]], actions[:, split[1]], kept[:, split[1]], cache)
    torch.testing.assert_close(chunk, whole[:, split[1]], rtol=0, atol=1e-10)
    assert present[0][0].shape[2] == 5  # the cache the chunk returns covers context and chunk
