"""Closed-loop goal reaching in a real environment: plan toward a goal image with a world model
(receding horizon), or act at random or not at all, and score the end in the simulator's true state.

The planning policy is the model-predictive control of V-JEPA 2-AC ([26] Assran et al. 2025,
sec. 4): at every step encode the current frame (and state, where the model reads states), search
action sequences of H steps with CEM (or MPPI) for the lowest energy, the distance between the
features the model predicts after the last action and the goal image's features,

    a*_{1:H} = argmin_a  E(P(E(x_t), s_t, a_{1:H})[H], E(x_goal)),

execute a*_1 only, observe, and plan again (warm-started from the rest of the plan). An optional
control cost `action_cost` lambda adds lambda * mean_{h,j} |a_{h,j}| to the energy, the action
penalty of model-predictive control (the control-cost term of MPPI, Williams et al. 2017): a move
must then buy a predicted gain larger than its cost (under a joint-position controller the zero
action holds the pose). With
`context_frames` T0 > 1 the context is the last T0 frames and the actions between them, which
show the predictor the motion a single frame does not (velocities, under torque control).

A world model plans here through `PlanningModel`, four calls; `as_planning_model` adapts a
V-JEPA 2-AC model (`reverie.posttrain.ac_predictor.VJEPAAC`) to it, and the tests plug in an
oracle that rolls out the true simulator. Every random draw is seeded per episode from the
policy's seed and the goal's seed, so an episode's actions do not depend on the episodes before it.

The baselines beside the planner: `RandomPolicy` (uniform actions), `ZeroPolicy` (the zero action:
the arm holds its pose) and, in `reverie.planning.oracle`, the same search through the true
simulator. `summarize` gives each policy's rates with 95% Wilson intervals (`wilson_interval`)
and its seconds per action, timed around the policy's calls in `run_goal_episode`.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from einops import rearrange
from PIL import Image
from torch import Tensor

from reverie.pipelines.policies import flat_state
from reverie.planning.goals import Goal, render_frame
from reverie.planning.planners import Planner


class PlanningSetupError(ValueError):
    """A model, env or goal that cannot plan together, naming them."""


class PlanningModel(Protocol):
    """What planning toward a goal image asks of a world model."""

    def encode_observation(self, frame: Tensor, state: Tensor | None) -> Any:
        """The planning context from the current frame (3, H, W) in [0, 1] and state (S,) or None."""

    def encode_goal(self, frame: Tensor) -> Tensor:
        """The features of a frame (3, H, W) in [0, 1], e.g. (N_tok, D)."""

    def rollout(self, context: Any, action_sequences: Tensor) -> Tensor:
        """Predicted features (N, H, ...) after each step of each action sequence (N, H, A)."""

    def energy(self, predicted_last: Tensor, goal: Tensor) -> Tensor:
        """(N,) distance of the last predicted features (N, ...) to the goal's features."""


class FeaturePredictorModel:
    """A V-JEPA 2-AC-style model seen as a `PlanningModel`, planning from the current frame alone.

    The wrapped model has `encode(frames (B, T, 3, H, W)) -> (B, T, N_tok, D)`, `encode_goal`,
    `rollout(context_features, action_sequences, states=...)` and `energy`; with
    `config.state_dim > 0` it reads the env's low-dimensional observation as its state."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu"):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.state_dim = int(getattr(model.config, "state_dim", 0) or 0)

    @property
    def frame_size(self) -> int | None:
        """The side of the square frames the model was trained on (None: not known)."""
        size = getattr(self.model.config, "frame_size", None)
        encoder_config = getattr(getattr(self.model, "encoder", None), "config", None)
        height, width = size or [getattr(encoder_config, "image_size", None)] * 2
        return height if height == width else None

    def encode_observation(self, frame: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        features = self.model.encode(frame.to(self.device)[None, None])[0]  # (T0=1, N_tok, D)
        if not self.state_dim:
            return features, None
        if state is None or state.numel() != self.state_dim:
            got = "no state" if state is None else f"a state of {state.numel()} values"
            raise PlanningSetupError(f"{self.model.registry_name} reads states of {self.state_dim} values, but the env gives {got}")
        return features, state.to(features).reshape(1, self.state_dim)  # (T0=1, S)

    def encode_goal(self, frame: Tensor) -> Tensor:
        return self.model.encode_goal(frame.to(self.device))

    def rollout(self, context: tuple, action_sequences: Tensor) -> Tensor:
        features, states, *past_actions = context  # (T0, N_tok, D), (T0, S) or None[, (T0 - 1, A)]
        context_actions = past_actions[0] if past_actions else None
        return self.model.rollout(features, action_sequences.to(features), states=states, context_actions=context_actions)

    def stack_context(self, contexts: Sequence[tuple[Tensor, Tensor | None]], actions: Sequence[np.ndarray]) -> tuple:
        """One context of T0 frames from the last T0 observations' contexts and the T0 - 1 actions
        taken between them: the predictor reads the arm's motion from them, not only its pose."""
        features = torch.cat([context[0] for context in contexts])  # (T0, N_tok, D)
        states = None if contexts[0][1] is None else torch.cat([context[1] for context in contexts])
        if not actions:
            return features, states
        return features, states, torch.as_tensor(np.stack(actions)).to(features)  # (T0 - 1, A)

    def energy(self, predicted_last: Tensor, goal: Tensor) -> Tensor:
        return self.model.energy(predicted_last, goal)


def as_planning_model(model: Any, device: str | torch.device = "cpu") -> PlanningModel:
    """`model` itself when it speaks `PlanningModel`, or a V-JEPA 2-AC-style model wrapped."""
    if all(hasattr(model, name) for name in ("encode_observation", "encode_goal", "rollout", "energy")):
        return model
    if all(hasattr(model, name) for name in ("encode", "encode_goal", "rollout", "energy")):
        return FeaturePredictorModel(model, device)
    name = getattr(model, "registry_name", type(model).__name__)
    raise PlanningSetupError(f"a {name} model cannot plan toward goal images: it needs encode, encode_goal, rollout and energy (as vjepa_ac has)")


def frame_tensor(frame: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1]."""
    return rearrange(torch.from_numpy(np.array(frame)), "h w c -> c h w").float() / 255  # a copy: frames may be read-only or flipped


def episode_seed(seed: int, goal_seed: int) -> int:
    """One seed for a policy's draws in the episode toward a goal, from both seeds."""
    return int(np.random.SeedSequence([seed, goal_seed]).generate_state(1, np.uint64)[0] >> 1)


class GoalPolicy(Protocol):
    def reset(self, goal: Goal) -> None:
        """Start an episode toward `goal`."""

    def __call__(self, frame: np.ndarray, observation: Any) -> np.ndarray:
        """The action for the current frame (H, W, 3) uint8 and the env's observation."""


def planning_energy(model: PlanningModel, context: Any, goal_features: Tensor, action_cost: float = 0.0):
    """The energy a planner minimises (the module docstring's equation): the model's distance
    between the features predicted after the last action and the goal's, plus
    `action_cost` * mean |a| when it is set."""

    def energy(action_sequences: Tensor) -> Tensor:  # (N, H, A) -> (N,)
        predicted = model.rollout(context, action_sequences)  # (N, H, ...)
        distance = model.energy(predicted[:, -1], goal_features)
        if not action_cost:
            return distance
        return distance + action_cost * action_sequences.abs().mean(dim=(1, 2)).to(distance)

    return energy


class PlanningPolicy:
    """Receding-horizon planning with a world model: plan H steps minimising the model's energy to
    the goal, execute the first action, replan (the module docstring has the equation)."""

    def __init__(self, model: PlanningModel, planner: Planner, seed: int = 0, context_frames: int = 1, action_cost: float = 0.0):
        if context_frames > 1 and not hasattr(model, "stack_context"):
            raise PlanningSetupError(f"context_frames={context_frames}: the model plans from one frame (it has no stack_context)")
        if action_cost < 0:
            raise PlanningSetupError(f"action_cost must be >= 0, got {action_cost}")
        self.model, self.planner, self.seed, self.context_frames = model, planner, seed, context_frames
        self.action_cost = action_cost
        self.goal_features: Tensor | None = None
        self.contexts: list = []  # the latest observations' contexts, oldest first (at most context_frames)
        self.actions: list[np.ndarray] = []  # the actions taken between them

    def reset(self, goal: Goal) -> None:
        self.contexts, self.actions = [], []
        self.planner.reset()
        self.planner.generator.manual_seed(episode_seed(self.seed, goal.seed))
        self.goal_features = self.model.encode_goal(frame_tensor(goal.image))

    def energy_fn(self, context: Any):
        """The energy toward this episode's goal from `context` (`planning_energy`)."""
        return planning_energy(self.model, context, self.goal_features, self.action_cost)

    def __call__(self, frame: np.ndarray, observation: Any) -> np.ndarray:
        state = flat_state(observation)
        context = self.model.encode_observation(frame_tensor(frame), None if state is None else torch.from_numpy(state))
        if self.context_frames > 1:
            self.contexts = (self.contexts + [context])[-self.context_frames :]
            self.actions = self.actions[len(self.actions) - len(self.contexts) + 1 :]
            context = self.model.stack_context(self.contexts, self.actions)
        action = self.planner.act(self.energy_fn(context)).cpu().numpy()
        self.actions.append(action)
        return action


class RandomPolicy:
    """The baseline: actions uniform in the box [low, high], seeded per episode."""

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int = 0):
        self.low, self.high, self.seed = np.asarray(low), np.asarray(high), seed
        self.rng = np.random.default_rng(seed)

    def reset(self, goal: Goal) -> None:
        self.rng = np.random.default_rng(episode_seed(self.seed, goal.seed))

    def __call__(self, frame: np.ndarray, observation: Any) -> np.ndarray:
        return self.rng.uniform(self.low, self.high)


class ZeroPolicy:
    """The baseline that does nothing: the zero action (the box's point nearest it) at every step.
    Under a joint-position controller (`reverie/ReacherJoints-v0`) the arm holds its starting pose,
    so this is the floor a planner must clear by moving: the goals that start already reached."""

    def __init__(self, low: np.ndarray, high: np.ndarray):
        self.action = np.clip(np.zeros_like(low), low, high)  # (A,)

    def reset(self, goal: Goal) -> None:
        pass

    def __call__(self, frame: np.ndarray, observation: Any) -> np.ndarray:
        return self.action.copy()


def action_bounds(env) -> tuple[np.ndarray, np.ndarray]:
    """(A,), (A,) the bounds of a continuous (Box) action space."""
    space = env.action_space
    if not hasattr(space, "low") or len(space.shape) != 1:
        raise PlanningSetupError(f"{env.spec.id}: planning needs a 1-d Box action space, not {space}")
    return space.low.astype(np.float32), space.high.astype(np.float32)


@dataclass
class EpisodeResult:
    frames: np.ndarray  # (T + 1, H, W, 3) uint8: the first frame, then one after each action
    actions: np.ndarray  # (T, A)
    final_distance: float | None  # the task's true-state distance at the end (None: image-only goal)
    success: bool | None  # the task's criterion at the end (None: image-only goal)
    errors: dict[str, float] = field(default_factory=dict)  # all true-state errors at the end
    initial_distance: float | None = None
    closest_distance: float | None = None  # the smallest true-state distance after any action
    reached_step: int | None = None  # the first step after which the task's criterion held (None: never, or an image-only goal)
    policy_seconds: float = 0.0  # wall time spent in the policy's calls (choosing the actions), s


def run_goal_episode(env, goal: Goal, policy: GoalPolicy, steps: int | None = None) -> EpisodeResult:
    """Start from the goal's seeded state and act for `steps` (default: the task's episode length)
    or until the env ends the episode (gym-pusht ends one when the block covers its own fixed
    target). The true state is scored after every action: at the end (`success`,
    `final_distance`) and at its best along the way (`reached_step`, `closest_distance`)."""
    task, size = goal.task, goal.image.shape[0]
    observation = task.start(env, goal)
    policy.reset(goal)
    initial = task.errors(env, goal)
    frames, actions, distances, reached_step, errors = [render_frame(env, size)], [], [], None, initial
    policy_seconds = 0.0
    for step in range(1, (steps or task.episode_steps) + 1):
        started = time.perf_counter()
        action = np.asarray(policy(frames[-1], observation), dtype=env.action_space.dtype)
        policy_seconds += time.perf_counter() - started
        observation, _, terminated, truncated, _ = env.step(action)
        frames.append(render_frame(env, size))
        actions.append(action)
        errors = task.errors(env, goal)
        if "distance" in errors:
            distances.append(errors["distance"])
        if reached_step is None and task.succeeded(errors):
            reached_step = step
        if terminated or truncated:
            break
    return EpisodeResult(
        frames=np.stack(frames),
        actions=np.stack(actions) if actions else np.zeros((0, *env.action_space.shape), env.action_space.dtype),
        final_distance=errors.get("distance"),
        success=task.succeeded(errors),
        errors=errors,
        initial_distance=initial.get("distance"),
        closest_distance=min(distances) if distances else None,
        reached_step=reached_step,
        policy_seconds=policy_seconds,
    )


def feature_distance(model: PlanningModel, frame: np.ndarray, goal: Goal) -> float:
    """The model's energy between a frame's features and the goal image's: the only distance an
    image-only goal has."""
    features = model.encode_goal(frame_tensor(frame))
    return float(model.energy(features[None], model.encode_goal(frame_tensor(goal.image)))[0])


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a success rate (Wilson 1927; Newcombe 1998, "Two-sided
    confidence intervals for the single proportion", Statistics in Medicine 17, method 3): the rates
    p whose normal test against successes / trials does not reject at z (1.96: 95%),

        (p_hat + z^2 / 2n  -+  z sqrt(p_hat (1 - p_hat) / n + z^2 / 4n^2)) / (1 + z^2 / n).

    Unlike p_hat -+ z sqrt(p_hat (1 - p_hat) / n) it stays inside [0, 1] and is not empty at 0 or n
    successes, which a few dozen goals often give."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"a Wilson interval needs 0 <= successes <= trials and trials >= 1, got {successes} of {trials}")
    rate, spread = successes / trials, z * z / trials
    centre = (rate + spread / 2) / (1 + spread)
    half = z * math.sqrt(rate * (1 - rate) / trials + spread / (4 * trials)) / (1 + spread)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_and_interval(hits: Sequence[bool]) -> tuple[float | None, list[float] | None]:
    """The share of `hits` that are true, and its 95% Wilson interval (None, None when empty)."""
    if not hits:
        return None, None
    return sum(hits) / len(hits), list(wilson_interval(sum(hits), len(hits)))


def summarize(results: Sequence[EpisodeResult]) -> dict:
    """Over episodes: the success rate at the end and the rate reached at some step (`reach_rate`),
    each with its 95% Wilson interval, the mean final and closest distances, and the policy's
    seconds per action (None where they are not defined)."""
    scored = [result for result in results if result.success is not None]
    distances = [result.final_distance for result in results if result.final_distance is not None]
    closest = [result.closest_distance for result in results if result.closest_distance is not None]
    success_rate, success_interval = rate_and_interval([bool(result.success) for result in scored])
    reach_rate, reach_interval = rate_and_interval([result.reached_step is not None for result in scored])
    actions = sum(len(result.actions) for result in results)
    return {
        "episodes": len(results),
        "success_rate": success_rate,
        "success_interval": success_interval,
        "reach_rate": reach_rate,
        "reach_interval": reach_interval,
        "mean_final_distance": float(np.mean(distances)) if distances else None,
        "mean_closest_distance": float(np.mean(closest)) if closest else None,
        "seconds_per_action": sum(result.policy_seconds for result in results) / actions if actions else None,
    }


def _grid_frame(rows: Sequence[Sequence[np.ndarray]], step: int, scale: int, gap: int) -> np.ndarray:
    """One GIF frame: each panel at `step` (held at its last frame), side by side, rows stacked."""
    lines = []
    for panels in rows:
        pictures = [panel[min(step, len(panel) - 1)] for panel in panels]
        height = pictures[0].shape[0] * scale
        spacer = np.full((height, gap, 3), 255, np.uint8)
        line = [spacer]
        for picture in pictures:
            line += [picture.repeat(scale, axis=0).repeat(scale, axis=1), spacer]
        lines.append(np.concatenate(line, axis=1))
    width = lines[0].shape[1]
    spacer = np.full((gap, width, 3), 255, np.uint8)
    return np.concatenate([spacer] + [part for line in lines for part in (line, spacer)], axis=0)


def write_gif(path: str | Path, rows: Sequence[Sequence[np.ndarray]], fps: float = 10.0, min_side: int = 128, gap: int = 4) -> Path:
    """Write panels as one GIF, atomically (a temporary name, then renamed into place).

    `rows` holds one list of panels per row (e.g. an episode: goal image, planned, random), each
    panel (T, H, W, 3) uint8 frames or one (H, W, 3) image; a panel shorter than the longest holds
    its last frame. Small frames are enlarged by a whole factor to at least `min_side` pixels."""
    rows = [[panel[None] if panel.ndim == 3 else panel for panel in panels] for panels in rows]
    if not rows or not all(rows):
        raise ValueError(f"{path}: a GIF needs at least one row of panels")
    steps = max(len(panel) for panels in rows for panel in panels)
    scale = max(1, -(-min_side // rows[0][0].shape[1]))
    images = [Image.fromarray(_grid_frame(rows, step, scale, gap)) for step in range(steps)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    images[0].save(partial, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    os.replace(partial, path)
    return path
