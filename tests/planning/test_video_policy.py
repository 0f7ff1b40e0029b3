"""UniPi [22] on the goal grid: the env passes the checker and its shortest paths reach the goal;
the inverse dynamics model learns the deterministic toy from real transitions (above 95% on
held-out pairs) and, run on ground-truth video, reaches every goal; the goal video model's loss
falls, its plans are reproducible and toward an image or a text goal; bad goals are named."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import reverie.envs  # noqa: F401  registers reverie/GoalGrid-v0
from reverie.envs.goal_grid import task_text
from reverie.planning.goal_video import GoalVideoConfig, GoalVideoModel
from reverie.planning.task_text import GoalVideoError
from reverie.planning.inverse_dynamics import InverseDynamicsModel, fit_inverse_dynamics, inverse_dynamics_accuracy
from reverie.planning.video_policy import VideoPolicy, demonstrations, ground_truth_video_planner, random_planner, random_transitions, success_rate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TASKS = [task_text((row, column)) for row in range(6) for column in range(6)]


@pytest.fixture(scope="module")
def env():
    return gym.make("reverie/GoalGrid-v0")


@pytest.fixture(scope="module")
def inverse_dynamics(env) -> InverseDynamicsModel:
    torch.manual_seed(0)
    model = InverseDynamicsModel(4)
    real = random_transitions(env, 2000, seed=0)
    fit_inverse_dynamics(model, real.frames, real.next_frames, real.actions, steps=200)
    return model


def test_the_goal_grid_passes_the_checker_and_its_shortest_paths_end_at_the_goal(env):
    check_env(env.unwrapped, skip_render_check=True)
    grid, rng = env.unwrapped, np.random.default_rng(0)
    for seed in range(20):
        _, info = env.reset(seed=seed)
        path = grid.shortest_path(info["agent"], info["goal"], rng)
        rewards = [env.step(action)[1] for action in path]
        assert rewards[-1] == 1.0 and sum(rewards) == 1.0 and len(path) <= grid.size  # at most size / 2 each way on the torus
    with pytest.raises(ValueError, match="start and goal are both"):
        env.reset(options={"start": (1, 1), "goal": (1, 1)})


def test_the_inverse_dynamics_model_reads_held_out_real_transitions(env, inverse_dynamics):
    held_out = random_transitions(env, 500, seed=99)
    untrained = InverseDynamicsModel(4)
    assert inverse_dynamics_accuracy(untrained, held_out.frames, held_out.next_frames, held_out.actions) < 0.5
    assert inverse_dynamics_accuracy(inverse_dynamics, held_out.frames, held_out.next_frames, held_out.actions) > 0.95


def test_on_ground_truth_video_the_inverse_dynamics_model_reaches_goals_random_actions_do_not(env, inverse_dynamics):
    ceiling = success_rate(env, ground_truth_video_planner(inverse_dynamics, env), episodes=20, seed=500)
    chance = success_rate(env, random_planner(env), episodes=20, seed=500)
    assert ceiling["success_rate"] > 0.9 > chance["success_rate"] + 0.3


def test_the_goal_video_model_fits_demonstrations_and_plans_reproducibly_toward_image_and_text_goals(env, inverse_dynamics):
    demo = demonstrations(env, 40, seed=1000)
    torch.manual_seed(0)
    model = GoalVideoModel(GoalVideoConfig(tasks=TASKS, channels=[16, 32], cond_channels=32))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(model.training_loss(demo.frames, demo.next_frames, demo.goal_frames, demo.tasks, torch.Generator().manual_seed(7)))

    before, generator = fixed_loss(), torch.Generator().manual_seed(0)
    for _ in range(40):
        rows = torch.randint(0, len(demo.actions), (32,), generator=generator)
        loss = model.training_loss(demo.frames[rows], demo.next_frames[rows], demo.goal_frames[rows], [demo.tasks[i] for i in rows], generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert fixed_loss() < 0.7 * before

    frame, info = env.reset(seed=3)
    plans = [VideoPolicy(model, inverse_dynamics, horizon=4, seed=1).video(frame, info) for _ in range(2)]
    assert plans[0].shape == (1, 5, 3, 24, 24) and torch.equal(plans[0], plans[1])
    assert torch.equal(plans[0][0, 0], torch.from_numpy(frame).permute(2, 0, 1).float() / 255)
    actions = VideoPolicy(model, inverse_dynamics, horizon=4, text_goals=True)(frame, info)
    assert len(actions) == 4 and all(env.action_space.contains(action) for action in actions)

    with pytest.raises(GoalVideoError, match="task 'go to the kitchen': not one the model was trained with"):
        model.generate(plans[0][:, 0], 2, tasks=["go to the kitchen"])
    with pytest.raises(GoalVideoError, match="one of the two"):
        model.generate(plans[0][:, 0], 2)


def test_a_local_transformers_text_encoder_embeds_task_texts_never_seen_and_stays_frozen(env, tmp_path):
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "go", "to", "row", "column", ",", *map(str, range(6)), "the", "kitchen"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    transformers.BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    transformers.BertModel(config).save_pretrained(tmp_path)
    model = GoalVideoModel(GoalVideoConfig(channels=[16, 32], cond_channels=32, text_goals=1.0, text_encoder=str(tmp_path)))
    text = model.denoiser.network.text
    assert not any(parameter.requires_grad for parameter in text.encoder.parameters())
    embedded = text(["go to row 1, column 2", None, "go to the kitchen"])
    assert embedded.shape == (3, 32) and torch.equal(embedded[1], text.no_text)
    assert not torch.allclose(embedded[0], embedded[2])  # different texts, different embeddings

    demo = demonstrations(env, 4, seed=0)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(3):  # the U-Net's zero-initialised layers (conv_out, each ResBlock's conv2) pass the text's gradient from step 3
        optimizer.zero_grad()
        loss = model.training_loss(demo.frames, demo.next_frames, demo.goal_frames, demo.tasks, torch.Generator().manual_seed(0))
        loss.backward()
        optimizer.step()
    assert loss.isfinite() and text.projection.weight.grad.abs().sum() > 0
    plan = model.generate(demo.frames[:1], 2, tasks=["go to the kitchen"], generator=torch.Generator().manual_seed(0))
    assert plan.shape == (1, 3, 3, 24, 24)
    with pytest.raises(GoalVideoError, match="cannot load a local transformers text encoder"):
        GoalVideoModel(GoalVideoConfig(text_encoder=str(tmp_path / "missing")))
