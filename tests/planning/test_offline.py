"""Planning from camera images with no env (`reverie.planning.offline`): plans inside the action
box with the energies they claim, the same plan for the same seed, camera images fitted as
ingestion fits them, the context of several frames, and each input that does not fit the model
refused by name. The model is the tiny V-JEPA 2-AC of tests/tiny_planning_model.py, untrained."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from reverie.nn.model_folder import save_model_folder
from reverie.planning.control import PlanningSetupError
from reverie.planning.offline import OfflinePlanner, OfflinePlanSettings, fit_frame, plan_from_files
from reverie.posttrain.ac_predictor import VJEPAAC, VJEPAACConfig
from tiny_planning_model import ENCODER, MODEL_SIZE, PREDICTOR

SEARCH = dict(action_bound=1.0, horizon=3, samples=16, iterations=3)
STATE = np.linspace(-1, 1, PREDICTOR["state_dim"], dtype=np.float32)


def model_folder(path, **overrides):
    torch.manual_seed(0)
    return save_model_folder(VJEPAAC(VJEPAACConfig(encoder=ENCODER, **(PREDICTOR | overrides))), path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return model_folder(tmp_path_factory.mktemp("model") / "vjepa_ac")


@pytest.fixture(scope="module")
def camera():
    """Two camera images of 48 x 64 px (a larger, wider camera than the model's 16 px frames) and a goal."""
    generator = np.random.default_rng(0)
    return generator.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)


def test_a_plan_has_h_actions_in_the_box_and_the_energy_of_its_last_step(folder, camera):
    plan = OfflinePlanner.from_folder(folder, **SEARCH).plan(camera[1], camera[2], state=STATE)
    assert plan.actions.shape == (3, PREDICTOR["action_dim"]) and plan.actions.dtype == np.float32
    assert np.all(np.abs(plan.actions) <= 1.0)
    assert np.isfinite(plan.energy) and plan.energy_trace.shape == (3,) and plan.step_energies.shape == (3,)
    assert plan.energy <= plan.energy_trace.min() + 1e-6  # the best sequence seen, never worse than an iteration's best
    assert plan.step_energies[-1] == pytest.approx(plan.energy, rel=1e-5)  # no action cost: the energy is the last step's


def test_the_action_cost_adds_lambda_times_the_mean_absolute_action(folder, camera):
    plan = OfflinePlanner.from_folder(folder, **SEARCH, action_cost=0.5).plan(camera[1], camera[2], state=STATE)
    assert plan.energy == pytest.approx(plan.step_energies[-1] + 0.5 * np.abs(plan.actions).mean(), rel=1e-5)


def test_the_same_inputs_and_seed_give_the_same_plan_whatever_was_planned_before(folder, camera):
    planner = OfflinePlanner.from_folder(folder, **SEARCH, seed=3)
    first = planner.plan(camera[1], camera[2], state=STATE)
    planner.plan(camera[0], camera[1], state=-STATE)
    again = planner.plan(camera[1], camera[2], state=STATE)
    fresh = OfflinePlanner.from_folder(folder, **SEARCH, seed=3).plan(camera[1], camera[2], state=STATE)
    for plan in (again, fresh):
        np.testing.assert_array_equal(plan.actions, first.actions)
        assert plan.energy == first.energy
    other = OfflinePlanner.from_folder(folder, **SEARCH, seed=4).plan(camera[1], camera[2], state=STATE)
    assert not np.array_equal(other.actions, first.actions)


def test_image_files_plan_as_the_arrays_they_hold(folder, camera, tmp_path):
    paths = [tmp_path / f"{name}.png" for name in ("now", "goal")]
    for path, image in zip(paths, camera[1:]):
        Image.fromarray(image).save(path)
    planner = OfflinePlanner.from_folder(folder, **SEARCH)
    from_files = planner.plan([paths[0]], paths[1], state=STATE)
    np.testing.assert_array_equal(from_files.actions, planner.plan(camera[1:2], camera[2], state=STATE).actions)


def test_camera_images_are_fitted_as_ingestion_stores_frames():
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:, :16], frame[:, 16:48], frame[:, 48:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    fitted = fit_frame(frame, MODEL_SIZE)  # short side 32 -> 16, so 64 -> 32 wide; the centre 16 columns kept
    assert fitted.shape == (MODEL_SIZE, MODEL_SIZE, 3) and fitted.dtype == np.uint8
    assert np.all(fitted == (0, 255, 0))
    same_size = np.arange(MODEL_SIZE * MODEL_SIZE * 3, dtype=np.uint8).reshape(MODEL_SIZE, MODEL_SIZE, 3)
    np.testing.assert_array_equal(fit_frame(same_size, MODEL_SIZE), same_size)


def test_a_context_of_frames_reads_the_actions_between_them_flat_or_in_rows(folder, camera):
    planner = OfflinePlanner.from_folder(folder, **SEARCH)
    states = np.stack([STATE, -STATE])
    in_rows = planner.plan(camera[:2], camera[2], state=states, context_actions=[[0.5, -0.5]])
    flat = planner.plan(list(camera[:2]), camera[2], state=states.reshape(-1), context_actions=[0.5, -0.5])
    np.testing.assert_array_equal(flat.actions, in_rows.actions)
    other_motion = planner.plan(camera[:2], camera[2], state=states, context_actions=[[-1.0, 1.0]])
    assert not np.allclose(other_motion.step_energies, in_rows.step_energies)  # the predictor reads the motion
    with pytest.raises(PlanningSetupError, match="need the 1 actions taken between them"):
        planner.plan(camera[:2], camera[2], state=states)
    with pytest.raises(PlanningSetupError, match="only one frame was given"):
        planner.plan(camera[1], camera[2], state=STATE, context_actions=[0.5, -0.5])
    with pytest.raises(PlanningSetupError, match="context_actions: expected 1 x 2 values"):
        planner.plan(camera[:2], camera[2], state=states, context_actions=[0.5])


@pytest.mark.parametrize(
    "state, message",
    [
        (None, "reads states of 10 values: give the robot's state"),
        (np.zeros(3), r"state: expected 1 x 10 values"),
    ],
)
def test_a_model_that_reads_states_names_the_state_it_needs(folder, camera, state, message):
    with pytest.raises(PlanningSetupError, match=message):
        OfflinePlanner.from_folder(folder, **SEARCH).plan(camera[1], camera[2], state=state)


def test_states_for_a_context_of_frames_are_one_row_per_frame(folder, camera):
    with pytest.raises(PlanningSetupError, match=r"state: expected 2 x 10 values"):
        OfflinePlanner.from_folder(folder, **SEARCH).plan(camera[:2], camera[2], state=STATE, context_actions=[0.0, 0.0])


def test_a_model_without_states_refuses_one(tmp_path, camera):
    stateless = model_folder(tmp_path / "stateless", state_dim=0)
    planner = OfflinePlanner.from_folder(stateless, **SEARCH)
    assert planner.plan(camera[1], camera[2]).actions.shape == (3, 2)
    with pytest.raises(PlanningSetupError, match="the model reads no states"):
        planner.plan(camera[1], camera[2], state=STATE)


@pytest.mark.parametrize(
    "box, low, high",
    [
        (dict(action_bound=0.25), [-0.25, -0.25], [0.25, 0.25]),
        (dict(low=-1.0, high=2.0), [-1.0, -1.0], [2.0, 2.0]),  # one value for every dimension
        (dict(low=[-1.0, 0.0], high=[1.0, 0.5]), [-1.0, 0.0], [1.0, 0.5]),
    ],
)
def test_the_action_box_is_given_as_bounds_or_one_symmetric_bound(folder, camera, box, low, high):
    planner = OfflinePlanner.from_folder(folder, OfflinePlanSettings(horizon=3, samples=16, iterations=2, **box))
    assert planner.describe()["action_box"] == {"low": low, "high": high}
    actions = planner.plan(camera[1], camera[2], state=STATE).actions
    assert np.all(actions >= np.array(low)) and np.all(actions <= np.array(high))


@pytest.mark.parametrize(
    "box, message",
    [
        ({}, "holds no action bounds; give the robot's action box as low and high"),
        (dict(low=-1.0), "holds no action bounds"),
        (dict(low=-1.0, high=1.0, action_bound=1.0), "not both"),
        (dict(low=[-1.0, -1.0, -1.0], high=1.0), "low: 3 values, but the model takes 2-d actions"),
        (dict(low=1.0, high=-1.0), "low <= high"),
        (dict(low=-np.inf, high=1.0), "must be finite"),
    ],
)
def test_an_action_box_that_does_not_fit_is_refused_by_name(folder, box, message):
    with pytest.raises(PlanningSetupError, match=message):
        OfflinePlanner.from_folder(folder, **box)


def test_a_horizon_past_the_predictors_frames_is_refused_before_the_search(folder, camera):
    planner = OfflinePlanner.from_folder(folder, action_bound=1.0, horizon=PREDICTOR["max_frames"], samples=8, iterations=1)
    assert planner.plan(camera[1], camera[2], state=STATE).actions.shape == (PREDICTOR["max_frames"], 2)  # 1 + H - 1 frames fit
    with pytest.raises(PlanningSetupError, match="need 9 predictor frames, but the model holds max_frames=8"):
        planner.plan(camera[:2], camera[2], state=np.stack([STATE, STATE]), context_actions=[0.0, 0.0])


def test_an_unreadable_image_and_an_unknown_planner_are_named(folder, camera, tmp_path):
    planner = OfflinePlanner.from_folder(folder, **SEARCH)
    with pytest.raises(PlanningSetupError, match="missing.png: not a readable image"):
        planner.plan([tmp_path / "missing.png"], camera[2], state=STATE)
    with pytest.raises(PlanningSetupError, match=r"an \(H, W, 3\) uint8 image, got float32"):
        planner.plan(camera[1].astype(np.float32), camera[2], state=STATE)
    with pytest.raises(KeyError, match="unknown planner 'nope'"):
        OfflinePlanner.from_folder(tmp_path / "not-loaded", planner="nope")


def test_plan_from_files_prints_the_first_action_and_writes_the_plan(folder, camera, tmp_path, capsys):
    paths = [tmp_path / f"{name}.png" for name in ("before", "now", "goal")]
    for path, image in zip(paths, camera):
        Image.fromarray(image).save(path)
    settings = OfflinePlanSettings(low=-1.0, high=1.0, planner="mppi", horizon=3, samples=16, iterations=2, seed=5)
    states, actions = np.concatenate([STATE, -STATE]).tolist(), [0.1, 0.2]
    plan = plan_from_files(folder, paths[:2], paths[2], settings, states, actions, tmp_path / "out" / "plan.json")
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "first action: [" + ", ".join(f"{value:.4f}" for value in plan.actions[0]) + "]"
    assert printed[1].startswith(f"energy: {plan.energy:.4f} after 3 steps")
    report = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert report["frames"] == [str(path) for path in paths[:2]] and report["goal"] == str(paths[2])
    assert report["state"] == states and report["context_actions"] == actions
    assert report["planner"]["name"] == "mppi" and report["planner"]["seed"] == 5 and report["frame_size"] == MODEL_SIZE
    assert report["actions"] == plan.actions.tolist() and report["energy"] == plan.energy
    assert len(report["energy_trace"]) == 2 and len(report["step_energies"]) == 3
