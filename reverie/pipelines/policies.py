"""Behaviour for recording episodes: random actions, a scripted controller, or a saved policy.

`make_policy(name, env, seed)` returns a callable `policy(observation) -> action`:
- `random`: the action space's own sampler, seeded;
- `scripted`: a hand-written controller for the env (see `SCRIPTED`), with a little noise so
  episodes differ;
- a model folder path: a policy saved with `reverie.nn.model_folder` (e.g. `MLPPolicy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from reverie.registry import Registry

Policy = Callable[[object], object]
SCRIPTED: Registry[Callable] = Registry("scripted_policy")


def flat_state(observation) -> np.ndarray | None:
    """The low-dimensional part of an observation as one float32 vector (images left out)."""
    if isinstance(observation, dict):
        parts = [np.asarray(v, np.float32).ravel() for _, v in sorted(observation.items()) if np.asarray(v).ndim < 3]
        return np.concatenate(parts) if parts else None
    observation = np.asarray(observation)
    return None if observation.ndim >= 3 else observation.astype(np.float32).ravel()


@SCRIPTED.register("CartPole")
def cartpole(env, rng: np.random.Generator) -> Policy:
    """Push toward the side the pole falls to (angle plus a share of its angular velocity)."""
    return lambda obs: int(obs[2] + 0.3 * obs[3] > 0) if rng.random() > 0.05 else int(rng.integers(2))


@SCRIPTED.register("Reacher")
def reacher(env, rng: np.random.Generator) -> Policy:
    """Jacobian-transpose control of the 2-link arm's fingertip toward the target."""
    link1, link2 = 0.1, 0.11

    def act(obs):
        cos1, cos2, sin1, sin2 = obs[0], obs[1], obs[2], obs[3]
        angle1, angle12 = np.arctan2(sin1, cos1), np.arctan2(sin1, cos1) + np.arctan2(sin2, cos2)
        jacobian = np.array(
            [
                [-link1 * np.sin(angle1) - link2 * np.sin(angle12), -link2 * np.sin(angle12)],
                [link1 * np.cos(angle1) + link2 * np.cos(angle12), link2 * np.cos(angle12)],
            ]
        )
        to_target = -np.asarray(obs[8:10])  # obs[8:10] is fingertip minus target
        torque = 20.0 * jacobian.T @ to_target - 0.05 * np.asarray(obs[6:8]) + rng.normal(0, 0.05, 2)
        return np.clip(torque, -1.0, 1.0).astype(np.float32)

    return act


@SCRIPTED.register("ReacherJoints")
def reacher_joints(env, rng: np.random.Generator) -> Policy:
    """Step the joint angles (the observation) toward an inverse-kinematics pose on the target, read
    from the simulator, with the elbow branch drawn per episode; up to the env's largest step, with noise."""
    from reverie.envs.reacher_arm import reacher_arm_angles

    largest = float(env.action_space.high[0])
    elbow_sign = rng.choice([-1.0, 1.0])

    def act(angles):
        target = reacher_arm_angles(env.unwrapped.data.body("target").xpos[:2], elbow_sign)
        step = (target - np.asarray(angles) + np.pi) % (2 * np.pi) - np.pi
        return np.clip(0.5 * step + rng.normal(0, 0.3 * largest, 2), -largest, largest).astype(np.float32)

    return act


@SCRIPTED.register("PushT")
def pusht(env, rng: np.random.Generator) -> Policy:
    """Move the agent to a point just behind the block, on the far side from the goal, then through it."""
    unwrapped = env.unwrapped

    def act(obs):
        block = np.array(unwrapped.block.position)
        goal = np.asarray(unwrapped.goal_pose[:2])
        push = (goal - block) / (np.linalg.norm(goal - block) + 1e-6)
        agent = np.array(unwrapped.agent.position)
        behind = block - 40.0 * push
        target = behind if np.linalg.norm(agent - behind) > 15.0 else block + 30.0 * push
        return np.clip(target + rng.normal(0, 5.0, 2), 0, 512).astype(np.float32)

    return act


def scripted_for(env_id: str) -> Callable:
    """The scripted policy whose name is in `env_id`; the longest such name wins (ReacherJoints
    over Reacher)."""
    for name in sorted(SCRIPTED, key=len, reverse=True):
        if name.lower() in env_id.lower():
            return SCRIPTED.get(name)
    raise KeyError(f"no scripted policy for {env_id}; scripted envs: {', '.join(SCRIPTED)} (or use --policy random)")


def make_policy(name: str, env, seed: int) -> Policy:
    if name == "random":
        env.action_space.seed(seed)
        return lambda obs: env.action_space.sample()
    if name == "scripted":
        return scripted_for(env.spec.id)(env, np.random.default_rng(seed))
    if Path(name).is_dir():
        from reverie.nn.model_folder import load_model_folder

        model = load_model_folder(name)
        return lambda obs: model.act(flat_state(obs))
    raise ValueError(f"--policy {name!r}: use random, scripted, or a model folder (config.json + model.safetensors)")
