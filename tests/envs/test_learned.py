"""The learned simulator `reverie/WorldModel-v0`: gymnasium's env checker, seeded determinism, actions
that matter, the batched vector env (one model call a step, next-step autoreset), rewards and
terminations from a model's heads, and clear errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from PIL import Image

import reverie.envs  # noqa: F401  (registers reverie/WorldModel-v0)
from reverie.envs.learned import WorldModelVectorEnv
from reverie.envs.learned_worlds import LearnedEnvError
from reverie.nn.model_folder import MODELS, save_model_folder
from play_models import pixel_model_folder
from tiny_tokenizers import FSQ, per_frame_tokenizer, sliding_square, write_shard


def episode_sample(key: str, clip: np.ndarray, episode: int) -> dict:
    frames, height, width, _ = clip.shape
    meta = {"key": key, "fps": 8.0, "frames": frames, "height": height, "width": width, "episode": episode, "step": 0}
    return {"__key__": key, "npy": clip, "actions.npy": np.zeros(frames, np.int64), "json": meta}


@pytest.fixture(scope="module")
def pixel_folder(tmp_path_factory):
    return pixel_model_folder(tmp_path_factory.mktemp("learned") / "pixel")


@pytest.fixture(scope="module")
def starts(tmp_path_factory):
    """Three episodes of 16 x 16 frames, each starting elsewhere."""
    samples = [episode_sample(f"ep{index}", sliding_square(index, 3, 16, 16), index) for index in range(3)]
    return str(write_shard(tmp_path_factory.mktemp("starts") / "000000.tar", samples))


def rollout(env, seed: int, actions: list[int]) -> np.ndarray:
    frames = [env.reset(seed=seed)[0]]
    frames += [env.step(action)[0] for action in actions]
    return np.stack(frames)


def test_the_learned_env_passes_gymnasiums_env_checker(pixel_folder, starts):
    env = gym.make("reverie/WorldModel-v0", model=str(pixel_folder), starts=starts, render_mode="rgb_array", without_rewards=True)
    check_env(env.unwrapped, skip_render_check=False)
    assert env.action_space == gym.spaces.Discrete(3)
    assert env.observation_space.shape == (16, 16, 3)


def test_a_seed_fixes_the_rollout_and_the_actions_change_it(pixel_folder, starts):
    env = gym.make("reverie/WorldModel-v0", model=str(pixel_folder), starts=starts, without_rewards=True)
    first, again = rollout(env, 7, [0, 1, 2, 1]), rollout(env, 7, [0, 1, 2, 1])
    np.testing.assert_array_equal(first, again)
    other_actions = rollout(env, 7, [2, 2, 0, 0])
    np.testing.assert_array_equal(other_actions[0], first[0])  # the same start frame
    assert np.abs(other_actions[1:].astype(int) - first[1:].astype(int)).sum() > 0
    assert any(np.array_equal(first[0], sliding_square(index, 3, 16, 16)[0]) for index in range(3))  # a real episode start


def test_the_vector_env_steps_every_world_in_one_model_call_and_resets_them_on_the_next_step(pixel_folder, starts):
    envs = gym.make_vec("reverie/WorldModel-v0", num_envs=3, model=str(pixel_folder), starts=starts, max_episode_steps=2, without_rewards=True)
    assert isinstance(envs, WorldModelVectorEnv)
    calls = []
    model = envs.worlds.playable.model
    real_step = model.step
    model.step = lambda action: calls.append(action.shape) or real_step(action)
    observations, _ = envs.reset(seed=0)
    assert observations.shape == (3, 16, 16, 3) and observations.dtype == np.uint8
    for _ in range(2):
        frames, rewards, terminated, truncated, _ = envs.step(np.array([0, 1, 2]))
    assert truncated.all() and not terminated.any()
    frames, rewards, terminated, truncated, _ = envs.step(np.array([0, 1, 2]))  # the autoreset step
    assert not truncated.any() and (rewards == 0).all()
    assert all(any(np.array_equal(frame, sliding_square(index, 3, 16, 16)[0]) for index in range(3)) for frame in frames)
    assert calls == [(3,), (3,), (3,)]  # one batched call a step
    frames, *_ = envs.step(np.array([0, 1, 2]))
    assert frames.shape == (3, 16, 16, 3) and len(calls) == 4


def test_one_world_of_the_vector_env_is_the_single_env(pixel_folder, starts):
    single = gym.make("reverie/WorldModel-v0", model=str(pixel_folder), starts=starts, without_rewards=True)
    vector = gym.make_vec("reverie/WorldModel-v0", num_envs=1, model=str(pixel_folder), starts=starts, without_rewards=True)
    frames = [vector.reset(seed=3)[0][0]] + [vector.step(np.array([action]))[0][0] for action in (1, 2, 0)]
    np.testing.assert_array_equal(np.stack(frames), rollout(single, 3, [1, 2, 0]))


def test_a_prompt_image_of_another_size_is_resized_to_the_models_frames(pixel_folder, starts, tmp_path):
    prompt = tmp_path / "prompt.png"
    Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(prompt)
    env = gym.make("reverie/WorldModel-v0", model=str(pixel_folder), starts=starts, without_rewards=True)
    frame, _ = env.reset(seed=0, options={"prompt": str(prompt)})
    assert frame.shape == (16, 16, 3) and (frame == 200).all()
    assert env.step(0)[0].shape == (16, 16, 3)


def test_a_folder_that_is_no_world_model_or_no_starts_is_a_clear_error(pixel_folder, tmp_path):
    tokenizer = per_frame_tokenizer(tmp_path / "tokenizer")
    with pytest.raises(LearnedEnvError, match="is not a world model"):
        gym.make("reverie/WorldModel-v0", model=str(tokenizer), starts="x.tar")
    with pytest.raises(LearnedEnvError, match="nothing to start from"):
        gym.make("reverie/WorldModel-v0", model=str(pixel_folder), without_rewards=True)
    with pytest.raises(LearnedEnvError, match="not a model folder"):
        gym.make("reverie/WorldModel-v0", model=str(tmp_path / "missing"), starts="x.tar")


def test_reward_and_termination_come_from_the_models_heads(tmp_path):
    """IRIS's token world model with heads set to say reward +1 and "terminated" whatever it sees:
    the env hands both on, ends the episode, and its autoreset step gives reward 0 and a start frame."""
    tokenizer = per_frame_tokenizer(tmp_path / "fsq", **FSQ)
    model_class = MODELS.get("token_world_model")
    fields = dict(tokenizer=str(tokenizer), frame_size=[32, 32], action_space={"kind": "discrete", "n": 2}, width=32, depth=1, heads=2, max_frames=4)
    model = model_class(model_class.config_class(**fields))
    with torch.no_grad():
        model.reward_head.weight.zero_(), model.reward_head.bias.copy_(torch.tensor([0.0, 0.0, 5.0]))  # classes -1, 0, +1
        model.termination_head.weight.zero_(), model.termination_head.bias.fill_(5.0)
    folder = save_model_folder(model, tmp_path / "iris")
    shard = write_shard(tmp_path / "starts.tar", [episode_sample("ep0", sliding_square(0, 3, 32, 32), 0)])
    envs = gym.make_vec("reverie/WorldModel-v0", num_envs=2, model=str(folder), starts=str(shard))
    envs.reset(seed=0)
    _, rewards, terminated, truncated, _ = envs.step(np.array([0, 1]))
    assert rewards.tolist() == [1.0, 1.0] and terminated.all() and not truncated.any()
    frames, rewards, terminated, _, _ = envs.step(np.array([0, 1]))
    assert rewards.tolist() == [0.0, 0.0] and not terminated.any()
    np.testing.assert_array_equal(frames[0], sliding_square(0, 3, 32, 32)[0])
    assert envs.step(np.array([1, 0]))[2].all()  # stepping again after the restart


def test_start_frames_can_be_given_as_an_array_and_a_misshapen_one_is_named(pixel_folder):
    frames = np.stack([sliding_square(index, 1, 16, 16)[0] for index in range(4)])  # (4, 16, 16, 3) uint8
    env = gym.make("reverie/WorldModel-v0", model=str(pixel_folder), starts=frames, without_rewards=True)
    seen = [env.reset(seed=seed)[0] for seed in range(12)]
    assert all(any(np.array_equal(start, frame) for frame in frames) for start in seen)
    assert len({start.tobytes() for start in seen}) > 1
    with pytest.raises(LearnedEnvError, match=r"give start frames \(N, 16, 16, 3\) uint8"):
        gym.make("reverie/WorldModel-v0", model=str(pixel_folder), starts=frames[:, :8], without_rewards=True)
