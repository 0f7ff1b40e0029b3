"""The V-JEPA 2-AC predictor on feature sequences alone: block causality, the key/value cache,
imagined rollouts, and the two losses learning action-driven dynamics."""

from __future__ import annotations

import torch
from einops import einsum

from reverie.posttrain.ac_predictor import imagine, rollout_loss, teacher_forcing_loss
from reverie.posttrain.ac_transformer import ACPredictor

TOKENS, DIM, ACTION_DIM, STATE_DIM = 4, 8, 2, 3


def make_predictor(state_dim: int = 0, seed: int = 0, normalize_output: bool = False) -> ACPredictor:
    torch.manual_seed(seed)
    return ACPredictor(DIM, ACTION_DIM, state_dim, TOKENS, width=64, depth=2, heads=4, mlp_ratio=2.0, max_frames=8, normalize_output=normalize_output)


def random_inputs(batch: int = 2, frames: int = 5, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, frames, TOKENS, DIM, generator=generator)
    actions = torch.randn(batch, frames, ACTION_DIM, generator=generator)
    states = torch.randn(batch, frames, STATE_DIM, generator=generator)
    return features, actions, states


def shifting_features(batch: int, frames: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Features that move with the action: z_{t+1} = z_t + a_t W, W a fixed (A, N, D) map."""
    push = torch.randn(ACTION_DIM, TOKENS, DIM, generator=torch.Generator().manual_seed(123))
    actions = torch.rand(batch, frames, ACTION_DIM, generator=generator) * 2 - 1
    start = torch.randn(batch, 1, TOKENS, DIM, generator=generator)
    moves = einsum(actions[:, :-1], push, "b t a, a n d -> b t n d")
    return torch.cat([start, start + moves.cumsum(dim=1)], dim=1), actions


def test_outputs_at_a_frame_never_depend_on_later_frames():
    predictor = make_predictor(STATE_DIM).eval()
    features, actions, states = random_inputs(frames=5)
    before, _ = predictor(features, actions, states)
    changed = 2  # everything about frame 2 changes: its features, action and state
    features[:, changed] += 5.0
    actions[:, changed] -= 3.0
    states[:, changed] *= -2.0
    after, _ = predictor(features, actions, states)
    assert torch.allclose(after[:, :changed], before[:, :changed], atol=1e-6)
    for frame in range(changed, 5):
        assert (after[:, frame] - before[:, frame]).abs().max() > 1e-3


def test_stepping_with_the_cache_equals_the_whole_sequence():
    predictor = make_predictor(STATE_DIM).eval()
    features, actions, states = random_inputs(frames=5)
    whole, _ = predictor(features, actions, states)
    first, cache = predictor(features[:, :2], actions[:, :2], states[:, :2])
    stepped = [first]
    for frame in range(2, 5):
        prediction, cache = predictor(features[:, frame : frame + 1], actions[:, frame : frame + 1], states[:, frame : frame + 1], past=cache)
        stepped.append(prediction)
    assert torch.allclose(torch.cat(stepped, dim=1), whole, atol=1e-5)


def test_imagine_equals_feeding_predictions_back_by_hand():
    predictor = make_predictor(STATE_DIM, normalize_output=True).eval()
    features, actions, states = random_inputs(batch=1, frames=2)
    candidates = torch.randn(6, 3, ACTION_DIM, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        imagined = imagine(predictor, features, candidates, actions[:, :1], states, state_update="hold")
        assert imagined.shape == (6, 3, TOKENS, DIM)
        for index in range(6):  # no cache, no batching: the whole sequence again at every step
            sequence, sequence_actions = features, actions[:, :1]
            sequence_states = states
            for step in range(3):
                sequence_actions = torch.cat([sequence_actions, candidates[index : index + 1, step : step + 1]], dim=1)
                predicted, _ = predictor(sequence, sequence_actions, sequence_states)
                assert torch.allclose(imagined[index, step], predicted[0, -1], atol=1e-5)
                sequence = torch.cat([sequence, predicted[:, -1:]], dim=1)
                sequence_states = torch.cat([sequence_states, sequence_states[:, -1:]], dim=1)


def test_loss_shapes_and_a_one_step_rollout_is_teacher_forcing_at_frame_1():
    predictor = make_predictor()
    features, actions, _ = random_inputs(frames=4)
    teacher_forcing, predicted, cache = teacher_forcing_loss(predictor, features, actions, None)
    assert teacher_forcing.shape == () and predicted.shape == (2, 3, TOKENS, DIM)
    one_step = rollout_loss(predictor, features, actions, None, 1, predicted[:, :1], cache)
    assert torch.allclose(one_step, (predicted[:, 0] - features[:, 1]).abs().mean())
    two_steps = rollout_loss(predictor, features, actions, None, 2, predicted[:, :1], cache)
    assert two_steps.shape == () and two_steps.requires_grad


def test_losses_fall_and_the_predictor_uses_the_action(one_torch_thread):
    predictor = make_predictor()
    optimizer = torch.optim.Adam(predictor.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    held_out, held_out_actions = shifting_features(64, 6, torch.Generator().manual_seed(99))

    def evaluate(actions: torch.Tensor) -> tuple[float, float]:
        with torch.no_grad():
            teacher_forcing, predicted, cache = teacher_forcing_loss(predictor, held_out, actions, None)
            return teacher_forcing.item(), rollout_loss(predictor, held_out, actions, None, 2, predicted[:, :1], cache).item()

    start = evaluate(held_out_actions)
    for _ in range(250):
        features, actions = shifting_features(32, 6, generator)
        teacher_forcing, predicted, cache = teacher_forcing_loss(predictor, features, actions, None)
        loss = teacher_forcing + rollout_loss(predictor, features, actions, None, 2, predicted[:, :1], cache)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    end = evaluate(held_out_actions)
    assert end[0] < 0.3 * start[0] and end[1] < 0.3 * start[1], (start, end)
    shuffled = held_out_actions[torch.randperm(64, generator=torch.Generator().manual_seed(1))]
    assert end[0] < 0.5 * evaluate(shuffled)[0]
