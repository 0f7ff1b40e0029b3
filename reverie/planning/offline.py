"""Plan from camera images with no environment, as a real robot does: the offline planning of
V-JEPA 2-AC ([26] Assran et al. 2025, sec. 4) behind `reverie plan MODEL_DIR --frame NOW.png --goal GOAL.png`.

The robot's side holds the camera and the controller; reverie holds no `env.step`. Give a model
folder, the current frame (and, optionally, the frames before it with the actions taken between
them), the robot's state where the model reads states, and a goal image; get back the action
sequence of H steps with the lowest energy,

    a*_{1:H} = argmin_a  E(P(E(x_{t-T0+1..t}), s_{t-T0+1..t}, a_{1:H})[H], E(x_goal))  (+ lambda mean |a|),

found by a registered planner (`reverie.planning.planners`, CEM by default), with its energy, the
lowest energy of each search iteration, and the predicted energy after each step of the plan.
Execute the first action, take a new frame and plan again: the receding-horizon control of
`reverie.planning.control.PlanningPolicy`, with the loop on the robot's side.

- `OfflinePlanner.from_folder(MODEL_DIR, **settings).plan(context_frames, goal_image, state=None,
  context_actions=None) -> OfflinePlan`; `OfflinePlanSettings` lists the settings.
- `plan_from_files(MODEL_DIR, frames, goal, settings, ...)`: one plan, printed and written as JSON
  (`reverie plan --frame`).
- `fit_frame(frame, size)`: a camera image as the model's training frames were stored.

Frames are fitted with ingestion's geometry (short side to the model's frame size, centre crop,
an area filter), so a full-resolution camera image is seen as the training clips were. The action box
is the caller's: a vjepa_ac folder holds no action bounds (its config has the action dimension
only), so `low` and `high`, or a symmetric `action_bound`, must be given. Every `plan` call reseeds
the planner from `seed`, so the same inputs give the same plan, whatever was planned before.

    planner = OfflinePlanner.from_folder("runs/robot-ac/model", action_bound=0.05, horizon=8)
    plan = planner.plan(["now.png"], "goal.png", state=joint_positions)
    robot.send(plan.actions[0])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from reverie.nn.model_folder import load_model_folder
from reverie.planning.control import PlanningModel, PlanningSetupError, as_planning_model, frame_tensor, planning_energy
from reverie.planning.goal_planning import planner_config, write_json
from reverie.planning.planners import PLANNERS, Planner
from reverie.shards.geometry import FrameGeometry

ImageInput = Union[str, Path, np.ndarray]  # an image file, or an (H, W, 3) uint8 array


@dataclass
class OfflinePlanSettings:
    low: float | Sequence[float] | None = None  # the action box: (A,) values, or one for every dimension
    high: float | Sequence[float] | None = None
    action_bound: float | None = None  # or the symmetric box [-b, b] in every dimension
    planner: str = "cem"  # a name in PLANNERS
    horizon: int | None = None  # H; None: the planner's default (and so for samples, iterations)
    samples: int | None = None
    iterations: int | None = None
    std: float | None = None  # sampling std in action units; None: a quarter of the mean action range
    seed: int = 0  # every plan starts the planner's generator from it
    action_cost: float = 0.0  # lambda: add lambda * mean |action| to the energy
    size: int | None = None  # frame side in px; None: the model's training frames
    device: str = "cpu"  # where the model and the search run


@dataclass
class OfflinePlan:
    actions: np.ndarray  # (H, A) float32 inside the action box; actions[0] is the one to execute now
    energy: float  # the plan's predicted energy to the goal (with the action cost, when one is set)
    energy_trace: np.ndarray  # (iterations,) the lowest energy among each search iteration's candidates
    step_energies: np.ndarray  # (H,) the predicted energy to the goal after each step of the plan (no action cost)

    def to_dict(self) -> dict:
        """The plan as JSON-ready lists and floats."""
        return {
            "actions": self.actions.tolist(),
            "energy": self.energy,
            "energy_trace": self.energy_trace.tolist(),
            "step_energies": self.step_energies.tolist(),
        }


class OfflinePlanner:
    """A world model and a planner that turn camera images into action sequences toward a goal image."""

    def __init__(self, model: PlanningModel, planner: Planner, frame_size: int, action_cost: float = 0.0, max_frames: int | None = None):
        if action_cost < 0:
            raise PlanningSetupError(f"action_cost must be >= 0, got {action_cost}")
        self.model, self.planner, self.frame_size, self.action_cost = model, planner, frame_size, action_cost
        self.max_frames = max_frames  # the predictor's frame budget: context frames - 1 + H must fit
        self.state_dim = int(getattr(model, "state_dim", 0) or 0)

    @classmethod
    def from_folder(cls, model_dir: str | Path, settings: OfflinePlanSettings | None = None, **fields: Any) -> "OfflinePlanner":
        """The planner for the model folder `model_dir`, from `settings` with `fields` (e.g. horizon=5) replaced."""
        settings = dataclasses.replace(settings or OfflinePlanSettings(), **fields)
        planner_class = PLANNERS.get(settings.planner)  # an unknown name fails here, before the model loads
        raw_model = load_model_folder(model_dir)
        model = as_planning_model(raw_model, settings.device)
        model_config = getattr(raw_model, "config", None)
        low, high = action_box(settings, getattr(model_config, "action_dim", None), model_dir)
        bounds = [torch.as_tensor(bound, device=settings.device) for bound in (low, high)]
        planner = planner_class(planner_config(settings, low, high), *bounds)
        size = settings.size or getattr(model, "frame_size", None)
        if not size:
            raise PlanningSetupError(f"{model_dir}: the model's frame size is not known (square frames); pass size (--size)")
        return cls(model, planner, int(size), settings.action_cost, getattr(model_config, "max_frames", None))

    @property
    def action_dim(self) -> int:
        return self.planner.action_dim

    def describe(self) -> dict:
        """The search setup as JSON: the planner by name with its config, the action box, the frame size."""
        name = next(name for name in PLANNERS if PLANNERS.get(name) is type(self.planner))
        planner = {"name": name, **dataclasses.asdict(self.planner.config), "action_cost": self.action_cost}
        box = {"low": self.planner.low.tolist(), "high": self.planner.high.tolist()}
        return {"planner": planner, "action_box": box, "frame_size": self.frame_size}

    def plan(
        self,
        context_frames: ImageInput | Sequence[ImageInput],
        goal_image: ImageInput,
        state: Sequence[float] | np.ndarray | None = None,
        context_actions: Sequence[float] | np.ndarray | None = None,
    ) -> OfflinePlan:
        """Plan toward `goal_image` from the context: one frame, an array (T0, H, W, 3) uint8 or a
        list of frames or image files, oldest first, ending with the current one. `state` is the
        current frame's state (S,), or (T0, S) for every context frame; `context_actions` (T0 - 1, A)
        are the actions taken between the context frames. Both may also come flat, row after row."""
        frames = [fit_frame(read_image(frame), self.frame_size) for frame in as_frame_list(context_frames)]
        self.check_horizon(len(frames))
        context = self.context(frames, state, context_actions)
        goal = self.model.encode_goal(frame_tensor(fit_frame(read_image(goal_image), self.frame_size)))
        self.planner.generator.manual_seed(self.planner.config.seed)
        result = self.planner.optimize(planning_energy(self.model, context, goal, self.action_cost))
        predicted = self.model.rollout(context, result.actions[None])[0]  # (H, ...): the plan's imagined future
        return OfflinePlan(
            actions=result.actions.cpu().numpy().astype(np.float32),
            energy=float(result.energy),
            energy_trace=result.energy_trace.cpu().numpy(),
            step_energies=self.model.energy(predicted, goal).cpu().numpy(),
        )

    def check_horizon(self, context_length: int) -> None:
        horizon = self.planner.config.horizon
        if self.max_frames is not None and context_length - 1 + horizon > self.max_frames:
            raise PlanningSetupError(
                f"{context_length} context frames and a horizon of {horizon} need {context_length - 1 + horizon} predictor frames, "
                f"but the model holds max_frames={self.max_frames}; plan a shorter horizon or from fewer frames"
            )

    def context(self, frames: list[np.ndarray], state, context_actions) -> Any:
        """The model's planning context from the fitted frames, their states and the actions between them."""
        states = self.context_states(state, len(frames))
        contexts = [self.model.encode_observation(frame_tensor(frame), None if states is None else states[index]) for index, frame in enumerate(frames)]
        if len(frames) == 1:
            if context_actions is not None:
                raise PlanningSetupError("context_actions (--actions) are the actions between context frames, but only one frame was given")
            return contexts[0]
        if not hasattr(self.model, "stack_context"):
            raise PlanningSetupError(f"{len(frames)} context frames: the model plans from one frame (it has no stack_context)")
        if context_actions is None:
            raise PlanningSetupError(f"{len(frames)} context frames need the {len(frames) - 1} actions taken between them (context_actions, --actions)")
        return self.model.stack_context(contexts, list(rows(context_actions, len(frames) - 1, self.action_dim, "context_actions")))

    def context_states(self, state, context_length: int) -> Tensor | None:
        """(T0, S) states for the context frames, or None for a model that reads no states."""
        if not self.state_dim:
            if state is not None:
                raise PlanningSetupError("a state was given (--state), but the model reads no states (state_dim 0)")
            return None
        if state is None:
            raise PlanningSetupError(f"the model reads states of {self.state_dim} values: give the robot's state (--state)")
        return torch.from_numpy(rows(state, context_length, self.state_dim, "state"))


def action_box(settings: OfflinePlanSettings, action_dim: int | None, model_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(A,), (A,) finite float32 bounds from `low`/`high` or `action_bound`, checked against the model's action dimension."""
    given_box = settings.low is not None or settings.high is not None
    if given_box and settings.action_bound is not None:
        raise PlanningSetupError("give the action box as low and high (--low/--high) or as action_bound (--action-bound), not both")
    if settings.action_bound is not None:
        low, high = -abs(settings.action_bound), abs(settings.action_bound)
    elif settings.low is not None and settings.high is not None:
        low, high = settings.low, settings.high
    else:
        raise PlanningSetupError(
            f"{model_dir}: the model folder holds no action bounds; give the robot's action box as low and high (--low/--high) "
            "or as action_bound (--action-bound)"
        )
    low, high = np.atleast_1d(np.asarray(low, np.float32)), np.atleast_1d(np.asarray(high, np.float32))
    size = action_dim or max(low.size, high.size)
    for name, bound in (("low", low), ("high", high)):
        if bound.ndim != 1 or bound.size not in (1, size):
            raise PlanningSetupError(f"{name}: {bound.size} values, but the model takes {size}-d actions (give {size} values, or one for all)")
    low, high = np.broadcast_to(low, size).copy(), np.broadcast_to(high, size).copy()
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (low <= high).all()):
        raise PlanningSetupError(f"the action box must be finite with low <= high, got low {low.tolist()} and high {high.tolist()}")
    return low, high


def as_frame_list(context_frames: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """The context as a list of frames or image files, oldest first."""
    if isinstance(context_frames, (str, Path)):
        return [context_frames]
    if isinstance(context_frames, np.ndarray):
        return list(context_frames) if context_frames.ndim == 4 else [context_frames]
    frames = list(context_frames)
    if not frames:
        raise PlanningSetupError("no context frames: give at least the current frame")
    return frames


def read_image(image: ImageInput) -> np.ndarray:
    """(H, W, 3) uint8 from an image file or array."""
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as opened:
                return np.asarray(opened.convert("RGB"))
        except OSError as error:  # a missing file too
            raise PlanningSetupError(f"{image}: not a readable image ({error})") from error
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise PlanningSetupError(f"a frame must be an (H, W, 3) uint8 image, got {array.dtype} {array.shape}")
    return array


def fit_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) -> (size, size, 3) uint8 with ingestion's geometry: short side to `size`, centre crop, an area filter."""
    height, width = frame.shape[:2]
    geometry = FrameGeometry.fit(width, height, size)
    if (geometry.scaled_width, geometry.scaled_height) != (width, height):
        frame = np.asarray(Image.fromarray(frame).resize((geometry.scaled_width, geometry.scaled_height), Image.BOX))
    top, left = geometry.crop_y, geometry.crop_x
    return np.ascontiguousarray(frame[top : top + geometry.height, left : left + geometry.width])


def rows(values: Sequence[float] | np.ndarray, count: int, width: int, name: str) -> np.ndarray:
    """`values` as (count, width) float32, given in that shape or flat, row after row."""
    array = np.asarray(values, np.float32)
    if array.size != count * width or array.ndim > 2 or (array.ndim == 2 and array.shape != (count, width)):
        raise PlanningSetupError(f"{name}: expected {count} x {width} values ({count} row(s) of {width}, oldest first), got shape {array.shape}")
    return array.reshape(count, width)


def plan_from_files(
    model_dir: str | Path,
    frames: Sequence[Path],
    goal_image: Path,
    settings: OfflinePlanSettings,
    state: Sequence[float] | None = None,
    context_actions: Sequence[float] | None = None,
    json_path: Path | None = None,
) -> OfflinePlan:
    """Plan once from image files (`reverie plan MODEL_DIR --frame ...`): print the first action and
    the energy, and write the plan with its inputs and settings to `json_path` when one is given."""
    planner = OfflinePlanner.from_folder(model_dir, settings)
    plan = planner.plan(frames, goal_image, state=state, context_actions=context_actions)
    print(f"first action: {numbers(plan.actions[0])}")
    print(f"energy: {plan.energy:.4f} after {len(plan.actions)} steps; per step {numbers(plan.step_energies)}, per iteration {numbers(plan.energy_trace)}")
    if json_path:
        inputs = {"model": str(model_dir), "frames": [str(frame) for frame in frames], "goal": str(goal_image)}
        inputs |= {"state": None if state is None else list(state), "context_actions": None if context_actions is None else list(context_actions)}
        write_json(json_path, inputs | planner.describe() | plan.to_dict())
        print(f"json: {json_path}")
    return plan


def numbers(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{value:.4f}" for value in np.asarray(values).reshape(-1)) + "]"
