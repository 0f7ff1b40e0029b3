"""Goal-reaching tasks in robot environments: held-out goal images, seeded starts, and success
measured in the simulator's true state, for planning toward goal images as V-JEPA 2-AC ([26]
Assran et al. 2025, sec. 4) plans toward goal poses shown in images and scores the real end state.

A task turns a seed into a `Goal`: the goal image, rendered with the camera and frame size of the
recorded episodes (`reverie record ENV --size S`), the goal in true state, and the seed the
episode toward it starts from. After an episode, `errors` measures the true state against the
goal and `succeeded` applies the task's threshold. The tasks, by the env id they match:

- `Reacher` (MuJoCo `Reacher-v5`): put the fingertip where the goal image shows it, within
  `REACHER_SUCCESS_DISTANCE` (0.02 m) at the end of an episode of `REACHER_EPISODE_STEPS` (50).
- `PushT` (`gym_pusht/PushT-v0`): push the T block to the goal image's pose, centre within
  `PUSHT_SUCCESS_DISTANCE` (20 px of the 512 px table) and angle within `PUSHT_SUCCESS_ANGLE`
  (pi/9 rad, 20 degrees) at the end of an episode of `PUSHT_EPISODE_STEPS` (300).

State is set through gymnasium's public API (`reset(seed=...)`, gym-pusht's documented
`reset(options={"reset_to_state": ...})`) and MuJoCo's (`env.unwrapped.set_state`, reading
`env.unwrapped.data`); nothing private.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from reverie.envs.make import resize_frame
from reverie.envs.reacher_arm import reacher_arm_angles, reacher_fingertip
from reverie.registry import Registry

REACHER_SUCCESS_DISTANCE = 0.02  # m: the fingertip sphere (radius 0.01) touches a target sphere (0.009) there
REACHER_EPISODE_STEPS = 50  # Reacher-v5's own time limit: 1 s at 50 control steps per second

PUSHT_SUCCESS_DISTANCE = 20.0  # px of the 512 x 512 table, between block centres
PUSHT_SUCCESS_ANGLE = np.pi / 9  # rad (20 degrees)
PUSHT_EPISODE_STEPS = 300  # gym-pusht's own time limit

GOAL_TASKS: Registry[type["GoalTask"]] = Registry("goal_task")
GOAL_STREAM = 1  # goal draws use default_rng((seed, 1)): gymnasium seeds the env's own reset with default_rng(seed)


class GoalError(ValueError):
    """A goal that cannot be made or read, naming the env or file."""


@dataclass(eq=False)
class Goal:
    task: "GoalTask"
    image: np.ndarray  # (H, W, 3) uint8, as a recorded frame of the same size
    state: np.ndarray | None  # the goal in true state (see the task); None: an image-only goal
    seed: int  # the episode toward this goal is reset with this seed


class GoalTask:
    """Goals in one kind of environment: make them, start episodes toward them, score the end.

    `success_thresholds` names each true-state error and the bound it must stay under."""

    name = "goal task"
    episode_steps = 50
    success_thresholds: dict[str, float] = {}

    def make_goal(self, env, seed: int, size: int) -> Goal:
        raise NotImplementedError

    def true_errors(self, env, goal_state: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def start(self, env, goal: Goal):
        """Reset `env` to the goal's seeded initial state; return the first observation."""
        return env.reset(seed=goal.seed)[0]

    def errors(self, env, goal: Goal) -> dict[str, float]:
        """How far the env's true state is from the goal ({} for an image-only goal)."""
        return {} if goal.state is None else self.true_errors(env, goal.state)

    def succeeded(self, errors: dict[str, float]) -> bool | None:
        """Whether every error is under its threshold (None when the errors are not defined)."""
        if not errors:
            return None
        return all(errors[name] < bound for name, bound in self.success_thresholds.items())


def goal_rng(seed: int) -> np.random.Generator:
    """The goal's random draws for `seed`, independent of the env's reset with the same seed."""
    return np.random.default_rng((seed, GOAL_STREAM))


def render_frame(env, size: int) -> np.ndarray:
    """(size, size, 3) uint8: the env's frame as `reverie record --size size` stores it.

    A frame of one flat colour is an error: MuJoCo's off-screen renderer gives such frames, without
    complaint, once another MuJoCo env in the same thread has been closed or garbage-collected."""
    frame = resize_frame(env.render(), size)
    if frame.min() == frame.max():
        raise GoalError(f"{env.spec.id}: rendered a blank frame (one flat colour); was another MuJoCo env closed in this thread?")
    return frame


@GOAL_TASKS.register("Reacher")
class ReacherGoals(GoalTask):
    """Reach the arm pose of a goal image (MuJoCo Reacher-v5).

    Goal for seed s: reset with seed s (the env draws its red target in the disc of radius 0.2 m),
    pose the arm at rest with its fingertip on that target (inverse kinematics, elbow branch drawn
    from `goal_rng(s)`), render the goal image. The goal state is the fingertip xy (m) there.
    The episode starts from `reset(seed=s)`: the same target, the arm near its straight rest pose.
    The target thus sits at the goal in every frame, so the env's own reward measures the goal too.
    Success: |fingertip - goal fingertip| < REACHER_SUCCESS_DISTANCE (0.02 m) after the last of
    REACHER_EPISODE_STEPS (50) steps."""

    name = "Reacher"
    episode_steps = REACHER_EPISODE_STEPS
    success_thresholds = {"distance": REACHER_SUCCESS_DISTANCE}

    def make_goal(self, env, seed: int, size: int) -> Goal:
        env.reset(seed=seed)
        sim = env.unwrapped
        target = sim.data.body("target").xpos[:2].copy()
        elbow_sign = goal_rng(seed).choice([-1.0, 1.0])
        qpos = sim.data.qpos.copy()
        qpos[:2] = reacher_arm_angles(target, elbow_sign)
        sim.set_state(qpos, np.zeros_like(sim.data.qvel))
        return Goal(self, render_frame(env, size), reacher_fingertip(env), seed)

    def true_errors(self, env, goal_state: np.ndarray) -> dict[str, float]:
        return {"distance": float(np.linalg.norm(reacher_fingertip(env) - goal_state))}


def pusht_block_pose(env) -> np.ndarray:
    """(3,) the T block's centre x, y (px of the 512 px table) and angle (rad)."""
    block = env.unwrapped.block
    return np.array([block.position[0], block.position[1], block.angle], dtype=np.float64)


def wrapped_angle(angle: float) -> float:
    """`angle` in [-pi, pi)."""
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


@GOAL_TASKS.register("PushT")
class PushTGoals(GoalTask):
    """Push the T block to the pose of a goal image (gym-pusht PushT-v0).

    Goal for seed s: a state drawn by `goal_rng(s)` from the ranges the env's own reset uses
    (agent x, y in [50, 450), block x, y in [100, 400), angle in [-pi, pi)), set with
    `reset(options={"reset_to_state": ...})`, rendered as the goal image. The goal state is the
    block's x, y, angle. The episode starts from `reset(seed=s)`, an independent draw. The env's
    fixed green target T is drawn in every frame, goal image included; it is not the goal here.
    Success: block centre within PUSHT_SUCCESS_DISTANCE (20 px) and angle within
    PUSHT_SUCCESS_ANGLE (pi/9) of the goal after the last of PUSHT_EPISODE_STEPS (300) steps."""

    name = "PushT"
    episode_steps = PUSHT_EPISODE_STEPS
    success_thresholds = {"distance": PUSHT_SUCCESS_DISTANCE, "angle": PUSHT_SUCCESS_ANGLE}

    def make_goal(self, env, seed: int, size: int) -> Goal:
        rng = goal_rng(seed)
        agent, block = rng.integers(50, 450, size=2), rng.integers(100, 400, size=2)
        state = [*agent.astype(float), *block.astype(float), rng.uniform(-np.pi, np.pi)]
        env.reset(seed=seed, options={"reset_to_state": state})
        return Goal(self, render_frame(env, size), pusht_block_pose(env), seed)

    def true_errors(self, env, goal_state: np.ndarray) -> dict[str, float]:
        pose = pusht_block_pose(env)
        return {
            "distance": float(np.linalg.norm(pose[:2] - goal_state[:2])),
            "angle": abs(wrapped_angle(pose[2] - goal_state[2])),
        }


def goal_task_for(env_id: str) -> GoalTask:
    """The goal task whose name appears in `env_id` (e.g. Reacher-v5 -> Reacher)."""
    for name in GOAL_TASKS:
        if name.lower() in env_id.lower():
            return GOAL_TASKS.get(name)()
    raise GoalError(f"no goal task for {env_id}; goal tasks: {', '.join(GOAL_TASKS)}")


def image_goal(task: GoalTask, path: str | Path, seed: int, size: int) -> Goal:
    """A goal given only as an image file (e.g. a PNG), resized as recorded frames are; its
    episode starts from `reset(seed=seed)`. Success in true state is not defined for it."""
    try:
        with Image.open(path) as image:
            frame = resize_frame(np.asarray(image.convert("RGB")), size)
    except OSError as error:
        raise GoalError(f"{path}: not a readable image ({error})") from error
    except ValueError as error:  # a size the frames cannot have
        raise GoalError(f"{path}: {error}") from error
    if frame.shape[:2] != (size, size):
        raise GoalError(f"{path}: a {frame.shape[1]}x{frame.shape[0]} goal after resizing; frames are {size}x{size} (crop it square)")
    return Goal(task, frame, None, seed)
