"""What the imagination agents share: lambda-returns against hand-computed cases, the frame replay's
windows, and the actor-critic's loss, which must move the policy towards the rewarded action."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reverie.agents.actor_critic import ActorCritic, actor_critic_loss, imagine
from reverie.agents.frame_replay import FrameReplay
from reverie.agents.lambda_returns import lambda_returns


def test_lambda_returns_match_a_hand_computed_case():
    rewards = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 5.0]], dtype=torch.float64)
    ends = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    next_values = torch.tensor([[0.5, 1.0, 3.0], [2.0, 4.0, 1.0]], dtype=torch.float64)
    gamma, lam = 0.9, 0.5
    # row 0: G2 = 2 + 0.9 * 3 = 4.7; G1 = 0 + 0.9 (0.5 * 1 + 0.5 * 4.7) = 2.565; G0 = 1 + 0.9 (0.5 * 0.5 + 0.5 * 2.565) = 2.37925
    # row 1 ends at step 1: G1 = 1 (no bootstrap, no later reward); G0 = 0 + 0.9 (0.5 * 2 + 0.5 * 1) = 1.35
    expected = torch.tensor([[2.37925, 2.565, 4.7], [1.35, 1.0, 5.0 + 0.9 * 1.0]], dtype=torch.float64)
    torch.testing.assert_close(lambda_returns(rewards, ends, next_values, gamma, lam), expected)


def test_lambda_zero_is_one_step_td_and_lambda_one_the_bootstrapped_return():
    rewards, next_values = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[10.0, 20.0, 30.0]])
    ends = torch.zeros(1, 3)
    torch.testing.assert_close(lambda_returns(rewards, ends, next_values, 0.5, 0.0), rewards + 0.5 * next_values)
    discounted = torch.tensor([[1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 30, 2 + 0.5 * 3 + 0.25 * 30, 3 + 0.5 * 30]])
    torch.testing.assert_close(lambda_returns(rewards, ends, next_values, 0.5, 1.0), discounted)


def filled_replay(episode_lengths: list[int], capacity: int = 100) -> FrameReplay:
    """Frames whose every pixel holds the global step index (mod 256), so windows can be read back."""
    replay, step = FrameReplay((3, 2, 2), capacity), 0
    for length in episode_lengths:
        for index in range(length):
            replay.add(np.full((2, 2, 3), step % 256, np.uint8), action=step % 7, reward=float(step), end=index == length - 1)
            step += 1
        replay.finish_episode(np.full((2, 2, 3), step % 256, np.uint8))
        step += 1
    return replay


def test_windows_stay_within_one_episode():
    replay = filled_replay([3, 1, 6])  # rows: 4, 2, 7 per episode
    starts = replay.window_starts(4)
    assert sorted(starts.tolist()) == [0, 6, 7, 8, 9]  # the first episode's 4 rows once, the third's 7 rows four times
    window = replay.sample(64, 4, torch.Generator().manual_seed(0))
    pixels = window["frames"][:, :, 0, 0, 0] * 255
    assert torch.equal(pixels[:, 1:] - pixels[:, :-1], torch.ones(64, 3))  # consecutive frames of one episode
    assert not window["terminated"][:, :-2].any()  # an episode's end is at most its last transition


def test_overwritten_rows_and_unfinished_episodes_leave_no_torn_window():
    replay = filled_replay([5, 5, 5], capacity=10)  # 18 rows through 10 slots: the first episode is overwritten
    window = replay.sample(200, 3, torch.Generator().manual_seed(1))
    pixels = window["frames"][:, :, 0, 0, 0] * 255
    assert torch.equal(pixels[:, 1:] - pixels[:, :-1], torch.ones(200, 2)) and pixels.min() >= 8
    replay.add(np.zeros((2, 2, 3), np.uint8), 0, 0.0, False)
    replay.discard_unfinished()
    assert len(replay) == 10 and replay.added == 18
    restored = FrameReplay((3, 2, 2), 10)
    restored.load_state_dict(replay.state_dict())
    for name, value in replay.state_dict().items():
        np.testing.assert_array_equal(restored.state_dict()[name], value, err_msg=name)


def test_an_empty_replay_says_what_it_lacks():
    with pytest.raises(ValueError, match="no window of 5 frames"):
        filled_replay([2]).sample(1, 5)


class ActionZeroPays:
    """A world of blank frames where action 0 earns 1 and the others 0; the episode never ends."""

    def reset(self, frames, actions):
        self.batch = frames.shape[0]
        return frames[:, -1]

    def step(self, actions):
        return torch.zeros(self.batch, 3, 8, 8), (actions == 0).float(), torch.zeros(self.batch, dtype=torch.bool)


def test_training_in_imagination_favours_the_rewarded_action():
    torch.manual_seed(0)
    actor_critic = ActorCritic(frame_size=8, actions=3, channels=[4], lstm=8)
    optimizer = torch.optim.Adam(actor_critic.parameters(), 3e-2)
    frames = torch.zeros(16, 2, 3, 8, 8)
    for _ in range(40):
        imagined = imagine(actor_critic, ActionZeroPays(), frames, torch.zeros(16, 1, dtype=torch.long), horizon=4)
        losses = actor_critic_loss(imagined, gamma=0.9, lambda_=0.95, value_weight=1.0, entropy_weight=0.001)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    logits, value, _ = actor_critic(frames[:1, 0], actor_critic.initial_state(1))
    assert logits.softmax(-1)[0, 0] > 0.8  # from a uniform 1/3
    assert value.item() > 1.0  # the critic has learned that rewards come


class EndsAtOnce:
    def reset(self, frames, actions):
        self.batch = frames.shape[0]
        return frames[:, -1]

    def step(self, actions):
        return torch.zeros(self.batch, 3, 8, 8), torch.ones(self.batch), torch.ones(self.batch, dtype=torch.bool)


def test_steps_after_an_imagined_end_take_no_part():
    actor_critic = ActorCritic(frame_size=8, actions=2, channels=[4], lstm=8)
    imagined = imagine(actor_critic, EndsAtOnce(), torch.zeros(3, 1, 3, 8, 8), torch.zeros(3, 0, dtype=torch.long), horizon=4)
    assert torch.equal(imagined.alive, torch.tensor([[1.0, 0.0, 0.0, 0.0]]).expand(3, 4))
    returns = actor_critic_loss(imagined, 0.9, 0.95, 1.0, 0.0)["return"]
    assert returns.item() == pytest.approx(1.0)  # the one live step: its reward, no bootstrap past the end
