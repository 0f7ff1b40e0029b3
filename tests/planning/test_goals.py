"""Goal tasks: which task an env id gets, Reacher and PushT goals made from seeds (reproducible,
on the rendered pose), success thresholds, image-file goals and the errors that name the env or
file. The closed planning loop and the oracle are in `test_control.py`."""

from __future__ import annotations



from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from reverie.envs.make import make_env, resize_frame
from reverie.envs.reacher_arm import reacher_arm_angles, reacher_fingertip
from reverie.planning.goals import (
    PUSHT_SUCCESS_ANGLE,
    PUSHT_SUCCESS_DISTANCE,
    REACHER_SUCCESS_DISTANCE,
    GoalError,
    PushTGoals,
    ReacherGoals,
    goal_rng,
    goal_task_for,
    image_goal,
    pusht_block_pose,
    render_frame,
    wrapped_angle,
)

SIZE = 32  # px
PUSHT = "gym_pusht/PushT-v0"


@pytest.fixture(scope="module")
def reacher():
    """One MuJoCo env for the module: closing one while another renders blanks the other's frames."""
    env = make_env("Reacher-v5", size=SIZE)
    yield env
    env.close()


@pytest.fixture(scope="module")
def pusht():
    env = make_env(PUSHT)
    yield env
    env.close()


@pytest.mark.parametrize(
    "env_id, task_class",
    [("Reacher-v5", ReacherGoals), ("reverie/ReacherJoints-v0", ReacherGoals), (PUSHT, PushTGoals), ("gym_PUSHT/pusht-v0", PushTGoals)],
)
def test_the_task_is_the_one_named_in_the_env_id(env_id, task_class):
    assert type(goal_task_for(env_id)) is task_class


def test_an_env_without_a_goal_task_is_named_with_the_known_tasks():
    with pytest.raises(GoalError, match=r"no goal task for HalfCheetah-v5; goal tasks: PushT, Reacher"):
        goal_task_for("HalfCheetah-v5")


def test_success_needs_every_error_strictly_under_its_bound():
    reacher, pusht = ReacherGoals(), PushTGoals()
    assert reacher.succeeded({"distance": 0.99 * REACHER_SUCCESS_DISTANCE}) is True
    assert reacher.succeeded({"distance": REACHER_SUCCESS_DISTANCE}) is False
    assert pusht.succeeded({"distance": 0.0, "angle": 0.0}) is True
    assert pusht.succeeded({"distance": 0.0, "angle": 1.01 * PUSHT_SUCCESS_ANGLE}) is False
    assert pusht.succeeded({"distance": 1.01 * PUSHT_SUCCESS_DISTANCE, "angle": 0.0}) is False
    assert reacher.succeeded({}) is None  # an image-only goal has no true-state errors


@pytest.mark.parametrize("angle, wrapped", [(0.0, 0.0), (np.pi, -np.pi), (-np.pi, -np.pi), (3 * np.pi / 2, -np.pi / 2), (-5.0, 2 * np.pi - 5.0)])
def test_wrapped_angle_lands_in_minus_pi_to_pi(angle, wrapped):
    assert wrapped_angle(angle) == pytest.approx(wrapped, abs=1e-12)


def test_goal_draws_are_not_the_envs_own_reset_draws():
    assert goal_rng(3).random() == goal_rng(3).random()
    assert goal_rng(3).random() != np.random.default_rng(3).random()  # the stream gymnasium's reset(seed=3) uses
    assert goal_rng(3).random() != goal_rng(4).random()


def test_a_blank_frame_is_an_error_naming_the_env():
    env = SimpleNamespace(render=lambda: np.full((8, 8, 3), 7, np.uint8), spec=SimpleNamespace(id="Blank-v0"))
    with pytest.raises(GoalError, match="Blank-v0: rendered a blank frame"):
        render_frame(env, 8)


def test_reacher_goals_put_the_arm_at_rest_on_the_target_on_both_elbow_branches(reacher):
    task = goal_task_for("Reacher-v5")
    signs = set()
    for seed in range(8):
        goal = task.make_goal(reacher, seed, SIZE)
        data = reacher.unwrapped.data
        target = data.body("target").xpos[:2]
        sign = goal_rng(seed).choice([-1.0, 1.0])
        np.testing.assert_allclose(data.qpos[:2], reacher_arm_angles(target, sign), atol=1e-12)
        assert np.sign(data.qpos[1]) == sign and not data.qvel.any()
        np.testing.assert_allclose(goal.state, target, atol=1e-9)
        assert goal.seed == seed and goal.task is task
        signs.add(sign)
    assert signs == {-1.0, 1.0}


def test_reacher_goals_are_reproducible_and_differ_between_seeds(reacher):
    task = goal_task_for("Reacher-v5")
    first = task.make_goal(reacher, 2, SIZE)
    other = task.make_goal(reacher, 6, SIZE)
    reacher.step(reacher.action_space.sample())
    again = task.make_goal(reacher, 2, SIZE)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.state, again.state)
    assert not np.array_equal(first.image, other.image) and np.linalg.norm(first.state - other.state) > 0.01


def test_a_reacher_episode_starts_from_the_seeded_reset_with_the_target_on_the_goal(reacher):
    task = goal_task_for("Reacher-v5")
    goal = task.make_goal(reacher, 4, SIZE)
    observation = task.start(reacher, goal)
    np.testing.assert_array_equal(observation, reacher.reset(seed=4)[0])
    np.testing.assert_allclose(reacher.unwrapped.data.body("target").xpos[:2], goal.state, atol=1e-12)
    assert task.errors(reacher, goal)["distance"] == pytest.approx(np.linalg.norm(reacher_fingertip(reacher) - goal.state))


def drawn_pusht_state(seed: int) -> list[float]:
    """The (agent x, y, block x, y, angle) that `PushTGoals` draws for `seed`, drawn again here."""
    rng = goal_rng(seed)
    agent, block = rng.integers(50, 450, size=2), rng.integers(100, 400, size=2)
    return [*agent.astype(float), *block.astype(float), rng.uniform(-np.pi, np.pi)]


def test_a_pusht_goal_image_shows_the_goal_state(pusht):
    task = goal_task_for(PUSHT)
    goal = task.make_goal(pusht, 5, SIZE)
    np.testing.assert_array_equal(goal.state, pusht_block_pose(pusht))
    assert goal.state[2] == pytest.approx(drawn_pusht_state(5)[4], abs=1e-12)
    pusht.reset(seed=11)
    pusht.step(pusht.action_space.sample())
    state = drawn_pusht_state(5)
    pusht.reset(options={"reset_to_state": state})
    np.testing.assert_array_equal(render_frame(pusht, SIZE), goal.image)
    np.testing.assert_array_equal(pusht_block_pose(pusht), goal.state)
    state[2] += 40.0  # the block 40 px to the right
    pusht.reset(options={"reset_to_state": state})
    assert not np.array_equal(render_frame(pusht, SIZE), goal.image)
    assert task.errors(pusht, goal)["distance"] == pytest.approx(40.0, abs=1e-6)


def test_pusht_goals_differ_between_seeds_and_start_elsewhere(pusht):
    task = goal_task_for(PUSHT)
    goals = [task.make_goal(pusht, seed, SIZE) for seed in (0, 1)]
    assert not np.array_equal(goals[0].image, goals[1].image) and not np.array_equal(goals[0].state, goals[1].state)
    task.start(pusht, goals[0])
    assert task.errors(pusht, goals[0])["distance"] > PUSHT_SUCCESS_DISTANCE


@pytest.mark.parametrize(
    "shift, turn, succeeds",
    [
        (0.9 * PUSHT_SUCCESS_DISTANCE, 0.0, True),
        (1.1 * PUSHT_SUCCESS_DISTANCE, 0.0, False),
        (0.0, 0.9 * PUSHT_SUCCESS_ANGLE, True),
        (0.0, -1.1 * PUSHT_SUCCESS_ANGLE, False),
        (0.0, 2 * np.pi - 0.5 * PUSHT_SUCCESS_ANGLE, True),  # a full turn back is no turn
    ],
)
def test_pusht_success_is_the_block_near_the_goal_pose(pusht, shift, turn, succeeds):
    task = goal_task_for(PUSHT)
    goal = task.make_goal(pusht, 7, SIZE)
    block = pusht.unwrapped.block
    x, y = block.position
    block.angle = block.angle + turn  # pymunk turns the block about its centre of gravity, which moves its position
    block.position = (x + shift, y)
    errors = task.errors(pusht, goal)
    assert errors["distance"] == pytest.approx(shift, abs=1e-9)
    assert errors["angle"] == pytest.approx(abs(wrapped_angle(turn)), abs=1e-9)
    assert task.succeeded(errors) is succeeds


def test_an_image_goal_is_the_png_resized_as_recorded_frames_are(tmp_path, reacher):
    pixels = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "goal.png")
    task = goal_task_for("Reacher-v5")
    goal = image_goal(task, tmp_path / "goal.png", seed=3, size=SIZE)
    assert goal.image.shape == (SIZE, SIZE, 3) and goal.image.dtype == np.uint8
    np.testing.assert_array_equal(goal.image, resize_frame(pixels, SIZE))
    assert goal.state is None and goal.seed == 3 and goal.task is task
    assert task.errors(reacher, goal) == {} and task.succeeded(task.errors(reacher, goal)) is None


def test_a_grey_or_transparent_png_becomes_rgb(tmp_path):
    Image.fromarray(np.full((SIZE, SIZE), 90, np.uint8), mode="L").save(tmp_path / "grey.png")
    Image.fromarray(np.full((SIZE, SIZE, 4), 200, np.uint8), mode="RGBA").save(tmp_path / "rgba.png")
    grey, rgba = (image_goal(PushTGoals(), tmp_path / name, 0, SIZE).image for name in ("grey.png", "rgba.png"))
    assert grey.shape == rgba.shape == (SIZE, SIZE, 3)
    assert (grey == 90).all() and (rgba == 200).all()


def test_image_goals_that_cannot_be_used_name_the_file(tmp_path):
    task = ReacherGoals()
    with pytest.raises(GoalError, match=r"missing\.png: not a readable image"):
        image_goal(task, tmp_path / "missing.png", 0, SIZE)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(GoalError, match=r"notes\.png: not a readable image"):
        image_goal(task, tmp_path / "notes.png", 0, SIZE)
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(tmp_path / "wide.png")
    with pytest.raises(GoalError, match=r"wide\.png: a 64x32 goal after resizing; frames are 32x32"):
        image_goal(task, tmp_path / "wide.png", 0, SIZE)
    with pytest.raises(GoalError, match=r"wide\.png: .*even"):  # frames are even-sized, as yuv420p video needs
        image_goal(task, tmp_path / "wide.png", 0, 33)
