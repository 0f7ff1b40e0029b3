"""Goal reaching in real environments: goal images and success in true state, the closed planning
loop (with an oracle that rolls out the true simulator, then with a tiny V-JEPA 2-AC), seeding,
saved-and-reloaded models and GIFs. The `reverie plan` loop is tested in test_goal_planning.py."""

from __future__ import annotations

import os


import mujoco
import numpy as np
import pytest
import torch
from mujoco import rollout
from PIL import Image

from reverie.nn.model_folder import load_model_folder, save_model_folder
from reverie.envs.make import make_env
from reverie.planning.control import (
    EpisodeResult,
    PlanningPolicy,
    RandomPolicy,
    ZeroPolicy,
    action_bounds,
    as_planning_model,
    frame_tensor,
    run_goal_episode,
    summarize,
    wilson_interval,
    write_gif,
)
from reverie.envs.reacher_arm import reacher_arm_angles, reacher_fingertip, reacher_fingertip_at
from reverie.planning.goals import REACHER_SUCCESS_DISTANCE, goal_task_for, render_frame
from reverie.planning.planners import make_planner
from tiny_planning_model import ENCODER, MODEL_SIZE, PREDICTOR

SIZE = 48  # px, as tiny recorded shards use


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def closed_after(env):
    """Yield `env`, then close it. One MuJoCo env lives at a time: freeing one renderer's GL
    context while another env's context is current breaks that env's frames (black)."""
    yield env
    env.close()


@pytest.fixture
def reacher():
    yield from closed_after(make_env("Reacher-v5", size=SIZE))


@pytest.fixture
def small_reacher():
    yield from closed_after(make_env("Reacher-v5", size=MODEL_SIZE))


class ReacherOracle:
    """A `PlanningModel` that predicts with the true simulator: a rollout starts from a copy of the
    env's current MuJoCo state, and a frame's features are the fingertip xy (one token). It knows
    the goals' true states and recognises their images."""

    def __init__(self, env, goals):
        self.env = env
        self.mj_model, self.frame_skip = env.unwrapped.model, env.unwrapped.frame_skip
        self.mj_data = mujoco.MjData(self.mj_model)
        self.goal_states = {goal.image.tobytes(): goal.state for goal in goals}

    def encode_observation(self, frame, state):
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        physics = np.empty(mujoco.mj_stateSize(self.mj_model, spec))
        mujoco.mj_getState(self.mj_model, self.env.unwrapped.data, physics, spec)
        return physics

    def encode_goal(self, frame):
        image = (frame * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return torch.as_tensor(self.goal_states[image.tobytes()])[None]  # (1, 2)

    def rollout(self, context, action_sequences):
        controls = np.repeat(action_sequences.double().numpy(), self.frame_skip, axis=1)  # env.step holds ctrl for frame_skip steps
        states, _ = rollout.rollout(self.mj_model, self.mj_data, context[None], controls)
        angles = states[:, self.frame_skip - 1 :: self.frame_skip, 1:3]  # (N, H, 2) qpos of the arm after each env step
        return torch.as_tensor(reacher_fingertip_at(angles))[:, :, None].float()  # (N, H, 1, 2)

    def energy(self, predicted_last, goal):
        return (predicted_last - goal).norm(dim=-1).mean(-1)


def tiny_vjepa_ac(seed: int = 0):
    from reverie.posttrain.ac_predictor import VJEPAAC, VJEPAACConfig

    torch.manual_seed(seed)
    return VJEPAAC(VJEPAACConfig(encoder=ENCODER, **PREDICTOR)).eval()


def vjepa_ac_policy(model, env, seed: int = 0) -> PlanningPolicy:
    low, high = action_bounds(env)
    planner = make_planner("cem", low, high, horizon=3, samples=16, iterations=2, elites=4, init_std=0.5)
    return PlanningPolicy(as_planning_model(model), planner, seed=seed)


def test_a_reacher_goal_image_is_what_the_env_renders_in_the_goal_state():
    task = goal_task_for("Reacher-v5")
    env = make_env("Reacher-v5", size=SIZE)
    goal = task.make_goal(env, seed=3, size=SIZE)
    qpos, qvel = env.unwrapped.data.qpos.copy(), env.unwrapped.data.qvel.copy()
    assert goal.image.shape == (SIZE, SIZE, 3) and goal.image.dtype == np.uint8
    np.testing.assert_allclose(goal.state, env.unwrapped.data.body("target").xpos[:2], atol=1e-9)  # fingertip on the target
    np.testing.assert_allclose(goal.state, env.unwrapped.data.body("fingertip").xpos[:2], atol=1e-12)  # MuJoCo's kinematics agree
    task.start(env, goal)
    far = task.errors(env, goal)
    assert far["distance"] > 5 * REACHER_SUCCESS_DISTANCE and task.succeeded(far) is False
    env.close()

    fresh = make_env("Reacher-v5", size=SIZE)  # a new env that has rendered other states first
    fresh.reset(seed=11)
    for _ in range(3):
        fresh.step(fresh.action_space.sample())
        fresh.render()
    fresh.unwrapped.set_state(qpos, qvel)
    np.testing.assert_array_equal(render_frame(fresh, SIZE), goal.image)
    at_goal = task.errors(fresh, goal)
    assert at_goal["distance"] < 1e-9 and task.succeeded(at_goal) is True
    fresh.close()


@pytest.mark.parametrize("offset, succeeds", [(0.5, True), (1.5, False)])
def test_reacher_success_is_the_fingertip_within_the_threshold(reacher, offset, succeeds):
    task = goal_task_for("Reacher-v5")
    goal = task.make_goal(reacher, seed=5, size=SIZE)
    target = goal.state * (1 - offset * REACHER_SUCCESS_DISTANCE / np.linalg.norm(goal.state))  # moved toward the shoulder
    qpos = reacher.unwrapped.data.qpos.copy()
    qpos[:2] = reacher_arm_angles(target, 1.0)
    reacher.unwrapped.set_state(qpos, np.zeros(reacher.unwrapped.model.nv))
    np.testing.assert_allclose(reacher_fingertip(reacher), target, atol=1e-9)
    errors = task.errors(reacher, goal)
    assert errors["distance"] == pytest.approx(offset * REACHER_SUCCESS_DISTANCE) and task.succeeded(errors) is succeeds


def test_pusht_goals_are_seeded_and_succeed_only_at_the_goal_pose():
    task = goal_task_for("gym_pusht/PushT-v0")
    first, second = make_env("gym_pusht/PushT-v0"), make_env("gym_pusht/PushT-v0")
    second.reset(seed=99)
    second.step(second.action_space.sample())
    goals = [task.make_goal(env, seed=4, size=SIZE) for env in (first, second)]
    np.testing.assert_array_equal(goals[0].image, goals[1].image)
    np.testing.assert_array_equal(goals[0].state, goals[1].state)
    assert task.succeeded(task.errors(second, goals[1])) is True
    task.start(second, goals[1])
    start = task.errors(second, goals[1])
    assert set(start) == {"distance", "angle"} and task.succeeded(start) is False
    first.close(), second.close()


def test_the_oracle_predicts_what_the_env_does(reacher):
    task = goal_task_for("Reacher-v5")
    goal = task.make_goal(reacher, seed=0, size=SIZE)
    oracle = ReacherOracle(reacher, [goal])
    task.start(reacher, goal)
    actions = torch.rand(1, 4, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    predicted = oracle.rollout(oracle.encode_observation(None, None), actions)  # (1, 4, 1, 2)
    for step, action in enumerate(actions[0].numpy()):
        reacher.step(action)
        np.testing.assert_allclose(predicted[0, step, 0].numpy(), reacher_fingertip(reacher), atol=1e-6)


def test_planning_with_an_oracle_reaches_goals_random_actions_do_not(reacher):
    task = goal_task_for("Reacher-v5")
    goals = [task.make_goal(reacher, seed, SIZE) for seed in range(6)]
    low, high = action_bounds(reacher)
    planner = make_planner("cem", low, high, horizon=3, samples=32, iterations=3, elites=4, init_std=0.5)
    planned = [run_goal_episode(reacher, goal, PlanningPolicy(ReacherOracle(reacher, goals), planner)) for goal in goals]
    random = [run_goal_episode(reacher, goal, RandomPolicy(low, high, seed=0)) for goal in goals]
    assert all(len(result.actions) == task.episode_steps and len(result.frames) == task.episode_steps + 1 for result in planned + random)
    planned_summary, random_summary = summarize(planned), summarize(random)
    assert planned_summary["success_rate"] >= 5 / 6 and random_summary["success_rate"] <= 1 / 6
    assert planned_summary["mean_final_distance"] < 0.25 * random_summary["mean_final_distance"]
    for result in planned + random:  # reached at some step: whenever held at the end, and never closer than the closest
        assert result.closest_distance <= result.final_distance
        assert (result.reached_step is not None) == (result.closest_distance < REACHER_SUCCESS_DISTANCE)
        assert not result.success or result.reached_step is not None
    assert planned_summary["reach_rate"] >= planned_summary["success_rate"]
    assert all(result.initial_distance > 3 * REACHER_SUCCESS_DISTANCE for result in planned)


def test_random_actions_depend_on_the_seeds_only(reacher):
    task = goal_task_for("Reacher-v5")
    goals = [task.make_goal(reacher, seed, SIZE) for seed in (0, 1)]
    low, high = action_bounds(reacher)
    policy = RandomPolicy(low, high, seed=7)
    alone = run_goal_episode(reacher, goals[1], policy, steps=5).actions
    after_another = [run_goal_episode(reacher, goal, policy, steps=5).actions for goal in goals][1]
    np.testing.assert_array_equal(alone, after_another)
    assert not np.array_equal(alone, run_goal_episode(reacher, goals[1], RandomPolicy(low, high, seed=8), steps=5).actions)
    assert ((alone >= low) & (alone <= high)).all()


def test_the_zero_action_holds_the_arm_where_it_starts_under_the_joint_controller():
    env = make_env("reverie/ReacherJoints-v0", size=SIZE)
    goal = goal_task_for("reverie/ReacherJoints-v0").make_goal(env, seed=4, size=SIZE)
    result = run_goal_episode(env, goal, ZeroPolicy(*action_bounds(env)), steps=10)
    env.close()
    assert not result.actions.any() and result.actions.shape == (10, 2)
    assert result.final_distance == pytest.approx(result.initial_distance, abs=1e-3)  # only the reset's small joint speeds move it
    assert result.success is False and result.reached_step is None
    np.testing.assert_array_equal(ZeroPolicy(np.array([0.1, -1.0]), np.array([1.0, 1.0]))(None, None), [0.1, 0.0])  # the box's point nearest 0


@pytest.mark.parametrize(
    "successes, trials, low, high",
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_the_wilson_interval_is_newcombes(successes, trials, low, high):
    """Newcombe 1998 (Statistics in Medicine 17, 857-872), Table I, method 3 (Wilson score, no
    continuity correction)."""
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=5e-5)
    mirrored = wilson_interval(trials - successes, trials)
    assert mirrored == pytest.approx((1 - high, 1 - low), abs=5e-5)
    assert wilson_interval(successes, trials, z=2.576)[0] <= low and wilson_interval(successes, trials, z=2.576)[1] >= high  # 99% is wider


def test_the_wilson_interval_refuses_counts_that_are_not_rates():
    for successes, trials in ((0, 0), (3, 2), (-1, 4)):
        with pytest.raises(ValueError, match=f"got {successes} of {trials}"):
            wilson_interval(successes, trials)


def test_summarize_gives_rates_with_their_intervals_and_the_seconds_per_action():
    def episode(final, closest, reached, seconds):
        return EpisodeResult(np.zeros((5, 1, 1, 3), np.uint8), np.zeros((4, 2)), final, final < 0.02, closest_distance=closest, reached_step=reached, policy_seconds=seconds)

    summary = summarize([episode(0.01, 0.005, 3, 1.0), episode(0.1, 0.01, 2, 2.0), episode(0.2, 0.15, None, 3.0)])
    assert summary["success_rate"] == pytest.approx(1 / 3) and summary["success_interval"] == pytest.approx(wilson_interval(1, 3))
    assert summary["reach_rate"] == pytest.approx(2 / 3) and summary["reach_interval"] == pytest.approx(wilson_interval(2, 3))
    assert summary["mean_final_distance"] == pytest.approx(0.31 / 3) and summary["mean_closest_distance"] == pytest.approx(0.165 / 3)
    assert summary["seconds_per_action"] == pytest.approx(6.0 / 12)
    assert summarize([])["success_interval"] is None and summarize([])["seconds_per_action"] is None


def test_planning_with_vjepa_ac_is_seeded_and_survives_a_save_and_reload(small_reacher, tmp_path):
    goal = goal_task_for("Reacher-v5").make_goal(small_reacher, seed=2, size=MODEL_SIZE)
    model = tiny_vjepa_ac()
    first = run_goal_episode(small_reacher, goal, vjepa_ac_policy(model, small_reacher, seed=0), steps=4)
    again = run_goal_episode(small_reacher, goal, vjepa_ac_policy(model, small_reacher, seed=0), steps=4)
    np.testing.assert_array_equal(first.actions, again.actions)
    np.testing.assert_array_equal(first.frames, again.frames)
    other_seed = run_goal_episode(small_reacher, goal, vjepa_ac_policy(model, small_reacher, seed=1), steps=4)
    assert not np.array_equal(first.actions, other_seed.actions)

    reloaded = load_model_folder(save_model_folder(model, tmp_path / "model"))
    after_reload = run_goal_episode(small_reacher, goal, vjepa_ac_policy(reloaded, small_reacher, seed=0), steps=4)
    np.testing.assert_array_equal(first.actions, after_reload.actions)


def test_the_planning_energy_is_the_model_distance_to_the_goal_features(small_reacher):
    goal = goal_task_for("Reacher-v5").make_goal(small_reacher, seed=2, size=MODEL_SIZE)
    model = as_planning_model(tiny_vjepa_ac())
    policy = vjepa_ac_policy(model.model, small_reacher)
    policy.reset(goal)
    goal_features = model.model.encode(frame_tensor(goal.image)[None, None])[0, 0]
    torch.testing.assert_close(policy.goal_features, goal_features)
    observation = goal.task.start(small_reacher, goal)
    context = model.encode_observation(frame_tensor(render_frame(small_reacher, MODEL_SIZE)), torch.from_numpy(observation).float())
    actions = torch.zeros(3, 2, 2)
    expected = (model.model.rollout(context[0], actions, states=context[1])[:, -1] - goal_features).abs().mean(dim=(-2, -1))
    torch.testing.assert_close(policy.energy_fn(context)(actions), expected)


def test_the_action_cost_adds_lambda_times_the_mean_absolute_action(small_reacher):
    goal = goal_task_for("Reacher-v5").make_goal(small_reacher, seed=2, size=MODEL_SIZE)
    model = as_planning_model(tiny_vjepa_ac())
    low, high = action_bounds(small_reacher)
    plain, costed = (PlanningPolicy(model, make_planner("cem", low, high, horizon=3), action_cost=cost) for cost in (0.0, 0.5))
    for policy in (plain, costed):
        policy.reset(goal)
    observation = goal.task.start(small_reacher, goal)
    context = model.encode_observation(frame_tensor(render_frame(small_reacher, MODEL_SIZE)), torch.from_numpy(observation).float())
    actions = torch.tensor([[[0.0, 0.0]] * 3, [[0.4, -0.2]] * 3])  # hold; mean |a| 0.3
    torch.testing.assert_close(costed.energy_fn(context)(actions) - plain.energy_fn(context)(actions), torch.tensor([0.0, 0.15]))
    with pytest.raises(ValueError, match="action_cost must be >= 0"):
        PlanningPolicy(model, make_planner("cem", low, high), action_cost=-1.0)


def test_planning_from_several_frames_rolls_out_after_the_frames_and_actions_seen(small_reacher):
    goal = goal_task_for("Reacher-v5").make_goal(small_reacher, seed=2, size=MODEL_SIZE)
    model = as_planning_model(tiny_vjepa_ac())
    low, high = action_bounds(small_reacher)
    planner = make_planner("cem", low, high, horizon=3, samples=16, iterations=2, elites=4, init_std=0.5)
    policy = PlanningPolicy(model, planner, context_frames=2)
    policy.reset(goal)
    observation = goal.task.start(small_reacher, goal)
    frames, states = [render_frame(small_reacher, MODEL_SIZE)], [observation]
    for _ in range(3):
        action = policy(frames[-1], states[-1])
        observation = small_reacher.step(action)[0]
        frames.append(render_frame(small_reacher, MODEL_SIZE))
        states.append(observation)
    # the last plan read frames 1 and 2 and the action between them; the action it chose is kept too
    assert len(policy.contexts) == 2 and len(policy.actions) == 2
    contexts = [model.encode_observation(frame_tensor(frame), torch.from_numpy(state).float()) for frame, state in zip(frames[1:3], states[1:3])]
    torch.testing.assert_close(policy.contexts[0][0], contexts[0][0])
    context = model.stack_context(contexts, policy.actions[:1])
    candidates = torch.zeros(4, 3, 2)
    expected = model.model.rollout(context[0], candidates, states=context[1], context_actions=context[2])
    single = model.model.rollout(contexts[-1][0], candidates, states=contexts[-1][1])
    torch.testing.assert_close(model.rollout(context, candidates), expected)
    assert not torch.allclose(expected, single)  # the earlier frame and action change the prediction


def test_write_gif_holds_short_panels_and_leaves_no_temporary_file(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)
    path = write_gif(tmp_path / "episodes.gif", [[frames[0], frames], [frames[0], frames[:2]]], min_side=32)
    assert os.listdir(tmp_path) == ["episodes.gif"]
    with Image.open(path) as gif:
        assert gif.n_frames == 5
        assert gif.size == (3 * 4 + 2 * 32, 3 * 4 + 2 * 32)  # gaps of 4 px around panels enlarged 2x
