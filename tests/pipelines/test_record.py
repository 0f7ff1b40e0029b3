from collections import defaultdict
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import webdataset as wds

from reverie.nn.model_folder import save_model_folder
from reverie.nn.policies import MLPPolicy, MLPPolicyConfig
from reverie.envs.make import make_env
from reverie.shards.episodes import describe_space
from reverie.shards.manifest import read_manifest
from reverie.envs.make import resize_frame
from reverie.pipelines.record import RecordConfig, run_record
from reverie.shards.writer import ShardWriter

ENVS = ["CartPole-v1", "Reacher-v5", "gym_pusht/PushT-v0", "ALE/Pong-v5"]


def episodes_in(out: Path) -> dict[int, dict[str, np.ndarray]]:
    """Reassemble whole episodes from (possibly overlapping) clips by their `step` metadata."""
    pieces: dict[int, dict[str, dict[int, np.ndarray]]] = defaultdict(lambda: defaultdict(dict))
    dataset = wds.WebDataset(sorted(str(p) for p in (out / "shards").glob("*.tar")), shardshuffle=False).decode()
    for sample in dataset:
        meta = sample["json"]
        for name in ("npy", "actions.npy", "rewards.npy", "terminated.npy", "truncated.npy", "states.npy"):
            for offset, value in enumerate(sample.get(name, [])):
                pieces[meta["episode"]][name][meta["step"] + offset] = value
    return {
        episode: {name: np.stack([steps[t] for t in sorted(steps)]) for name, steps in members.items()}
        for episode, members in pieces.items()
    }


def replay(env_id: str, seed: int, actions: np.ndarray, size: int):
    """The env's own frames and rewards for the recorded actions from the same seed."""
    env = make_env(env_id, size=size)
    env.reset(seed=seed)
    frames, rewards = [], []
    for action in actions:
        frames.append(resize_frame(env.render(), size))
        rewards.append(env.step(action)[1])
    env.close()
    return np.stack(frames), np.asarray(rewards, np.float32)


@pytest.mark.parametrize("env_id", ENVS)
def test_recorded_frames_and_actions_match_a_replay_frame_for_frame(env_id, tmp_path):
    config = RecordConfig(env_id, episodes=2, out=tmp_path, size=64, clip_frames=8, stride=5, clip_format="npy", max_steps=30, progress=False)
    lines = run_record(config)
    assert [line["status"] for line in lines] == ["ok", "ok"]
    for index, episode in episodes_in(tmp_path).items():
        assert len(episode["npy"]) == lines[index]["length"]
        frames, rewards = replay(env_id, config.seed + index, episode["actions.npy"], size=64)
        np.testing.assert_array_equal(episode["npy"], frames)
        np.testing.assert_allclose(episode["rewards.npy"], rewards)
        ended = episode["terminated.npy"] | episode["truncated.npy"]
        assert ended[-1] and not ended[:-1].any()


def test_action_kinds_are_stored_with_their_space(tmp_path):
    checks = {"CartPole-v1": ((), np.int64, "discrete"), "Reacher-v5": ((2,), np.float32, "box")}
    for env_id, (shape, dtype, kind) in checks.items():
        out = tmp_path / env_id
        run_record(RecordConfig(env_id, episodes=1, out=out, size=32, clip_frames=4, clip_format="npy", max_steps=8, progress=False))
        sample = next(iter(wds.WebDataset(str(out / "shards" / "000000.tar"), shardshuffle=False).decode()))
        assert sample["actions.npy"].shape == (4, *shape) and sample["actions.npy"].dtype == dtype
        assert sample["json"]["action_space"]["type"] == kind and sample["json"]["has_actions"]


class KeyboardMouseEnv(gym.Env):
    """A square moved by keys (left/none/right, up/none/down) and a mouse button that recolours it."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, render_mode="rgb_array"):
        self.action_space = gym.spaces.MultiDiscrete([3, 3, 2])
        self.observation_space = gym.spaces.Box(0, 31, (2,), np.float32)
        self.render_mode = render_mode

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.position, self.pressed, self.steps = self.np_random.integers(4, 28, 2), 0, 0
        return self.position.astype(np.float32), {}

    def step(self, action):
        self.position = np.clip(self.position + np.asarray(action[:2]) - 1, 0, 31)
        self.pressed, self.steps = int(action[2]), self.steps + 1
        return self.position.astype(np.float32), float(self.pressed), False, self.steps >= 12, {}

    def render(self):
        frame = np.zeros((32, 32, 3), np.uint8)
        x, y = self.position
        frame[max(y - 2, 0) : y + 2, max(x - 2, 0) : x + 2] = (255, 0, 0) if self.pressed else (0, 255, 0)
        return frame


def test_multi_discrete_keyboard_mouse_actions(tmp_path):
    gym.register("reverie-test/KeyboardMouse-v0", entry_point=KeyboardMouseEnv)
    lines = run_record(RecordConfig("reverie-test/KeyboardMouse-v0", episodes=2, out=tmp_path, size=32, clip_frames=6, clip_format="npy", progress=False))
    assert [line["length"] for line in lines] == [12, 12]
    episode = episodes_in(tmp_path)[0]
    assert episode["actions.npy"].shape == (12, 3) and episode["actions.npy"].dtype == np.int64
    assert describe_space(gym.spaces.MultiDiscrete([3, 3, 2])) == {"type": "multi_discrete", "nvec": [3, 3, 2]}
    # The mouse button pressed by action t shows in frame t + 1 and pays reward t.
    np.testing.assert_array_equal(episode["rewards.npy"], episode["actions.npy"][:, 2])
    red = episode["npy"][1:, :, :, 0].max(axis=(1, 2)) == 255
    np.testing.assert_array_equal(red, episode["actions.npy"][:-1, 2] == 1)


def test_saved_policy_drives_the_recording(tmp_path):
    env = gym.make("CartPole-v1")
    torch.manual_seed(0)
    policy = MLPPolicy(MLPPolicyConfig(observation_dim=4, action_space=describe_space(env.action_space), hidden=[16]))
    folder = save_model_folder(policy, tmp_path / "policy")
    run_record(RecordConfig("CartPole-v1", episodes=1, out=tmp_path / "rec", policy=str(folder), size=32, clip_frames=4, clip_format="npy", progress=False))
    episode = episodes_in(tmp_path / "rec")[0]
    expected = [policy.act(state) for state in episode["states.npy"]]
    np.testing.assert_array_equal(episode["actions.npy"], expected)


def test_resume_after_a_stop_records_the_same_clips(tmp_path, monkeypatch):
    config = dict(env_id="CartPole-v1", episodes=4, size=32, clip_frames=4, clip_format="npy", shard_max_count=3, progress=False)
    run_record(RecordConfig(out=tmp_path / "whole", **config))
    original_write, calls = ShardWriter.write, {"n": 0}

    def write_then_stop(self, sample):
        calls["n"] += 1
        if calls["n"] > 7:
            raise KeyboardInterrupt
        return original_write(self, sample)

    with monkeypatch.context() as patch:
        patch.setattr(ShardWriter, "write", write_then_stop)
        with pytest.raises(KeyboardInterrupt):
            run_record(RecordConfig(out=tmp_path / "stopped", **config))
    assert len(read_manifest(tmp_path / "stopped" / "manifest.jsonl")) < 4
    run_record(RecordConfig(out=tmp_path / "stopped", **config))
    whole, resumed = episodes_in(tmp_path / "whole"), episodes_in(tmp_path / "stopped")
    assert whole.keys() == resumed.keys()
    for index in whole:
        for name in whole[index]:
            np.testing.assert_array_equal(whole[index][name], resumed[index][name])
    keys = [name for shard in (tmp_path / "stopped" / "shards").glob("*.tar") for name in wds.WebDataset(str(shard), shardshuffle=False)]
    assert len(keys) == sum(line["clips"] for line in read_manifest(tmp_path / "stopped" / "manifest.jsonl"))
