import pytest
import torch

from reverie.nn.world_model import ContextError, WorldModel, WorldStep, check_context, rollout


class BrighteningWorld(WorldModel):
    """Each step adds the action (a scalar per world) to the last frame, plus noise from the generator."""

    max_context = 4

    def start(self, context_frames, context_actions, generator=None):
        check_context(context_frames, context_actions, self.max_context, (3, 2, 2))
        self.frame, self.generator = context_frames[:, -1], generator

    def step(self, action):
        noise = torch.rand(self.frame.shape, generator=self.generator) * 1e-3
        self.frame = self.frame + action.view(-1, 1, 1, 1) + noise
        return WorldStep(self.frame, reward=action.clone())


def test_check_context_counts_frames_and_names_each_mismatch():
    frames = torch.zeros(2, 3, 3, 2, 2)
    assert check_context(frames, torch.zeros(2, 2), 4, (3, 2, 2)) == 3
    assert check_context(frames[:, :1], None, 4, (3, 2, 2)) == 1
    with pytest.raises(ContextError, match=r"expected \(B, K, 3, 4, 4\)"):
        check_context(frames, None, 4, (3, 4, 4))
    with pytest.raises(ContextError, match="1 to 2"):
        check_context(frames, None, 2, (3, 2, 2))
    with pytest.raises(ContextError, match=r"expected \(2, 2, \.\.\.\)"):
        check_context(frames, torch.zeros(2, 3), 4, (3, 2, 2))


def test_rollout_steps_in_order_and_is_reproducible_by_seed():
    frames, actions = torch.zeros(2, 2, 3, 2, 2), torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
    steps = rollout(BrighteningWorld(), frames, torch.zeros(2, 1), actions, 3, torch.Generator().manual_seed(0))
    assert len(steps) == 3
    assert torch.allclose(steps[-1].frame.mean(dim=(1, 2, 3)), torch.tensor([6.0, 1.0]), atol=1e-2)
    assert torch.equal(torch.stack([step.reward for step in steps], dim=1), actions)
    again = rollout(BrighteningWorld(), frames, torch.zeros(2, 1), actions, 3, torch.Generator().manual_seed(0))
    other = rollout(BrighteningWorld(), frames, torch.zeros(2, 1), actions, 3, torch.Generator().manual_seed(1))
    assert torch.equal(again[-1].frame, steps[-1].frame) and not torch.equal(other[-1].frame, steps[-1].frame)
