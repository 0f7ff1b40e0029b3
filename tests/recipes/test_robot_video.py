"""Post-training on your own robot video, end to end at tiny scale, with the README's commands:
a LeRobot v3.0 dataset through `reverie ingest`, V-JEPA pretrained on it and exported, the
action-conditioned predictor post-trained over that frozen encoder and exported, then
`reverie plan --frame/--goal --json` from camera images with no env: H actions inside the box, a
finite energy, and the same plan again for the same seed."""

from __future__ import annotations

import json
import math
from pathlib import Path

from PIL import Image

from pipelines.lerobot.lerobot_folders import LENGTHS, frame_of, write_v30
from reverie.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
LOW, HIGH = [0.0, 0.0], [2.0, 14.0]  # the fixture's actions are (episode, step): episodes 0-2, steps 0-14
HORIZON, ITERATIONS = 3, 2


def reverie(*command: str) -> None:
    assert main([str(part) for part in command]) == 0, command


def test_a_lerobot_dataset_post_trains_a_model_that_plans_from_camera_images(tmp_path, capsys):
    dataset, robot = write_v30(tmp_path / "so100_dataset"), tmp_path / "robot"
    reverie("ingest", dataset, "--out", robot, "--size", 32, "--clip-frames", 8, "--format", "npy", "--no-progress")
    assert len((robot / "manifest.jsonl").read_text().splitlines()) == len(LENGTHS)

    tiny = ["trainer.max_steps=4", "checkpoint.every_n_steps=4", "data.batch_size=2"]
    reverie("train", ROOT / "configs/vjepa/tiny.yaml", f"data.shards={robot / 'shards'}", f"run.dir={tmp_path / 'vjepa'}", *tiny)
    reverie("export", tmp_path / "vjepa", "--out", tmp_path / "vjepa/model", "--no-ema")
    fields = [f"model.encoder_folder={tmp_path / 'vjepa/model'}", "model.action_dim=2", "model.state_dim=3"]  # the dataset's action and observation.state
    reverie("train", ROOT / "configs/vjepa_ac/tiny.yaml", *fields, f"data.shards={robot / 'shards'}", f"run.dir={tmp_path / 'robot-ac'}", *tiny)
    reverie("export", tmp_path / "robot-ac", "--out", tmp_path / "robot-ac/model", "--no-ema")
    config = json.loads((tmp_path / "robot-ac/model/config.json").read_text())
    assert config["model"] == "vjepa_ac" and config["config"]["encoder_folder"] is None  # self-contained

    now, goal = tmp_path / "now.png", tmp_path / "goal.png"  # camera images at the camera's 64 x 48 px
    Image.fromarray(frame_of(0, 0, 0)).save(now)
    Image.fromarray(frame_of(0, LENGTHS[0] - 1, 0)).save(goal)
    plans = []
    for index, seed in enumerate((1, 1, 2)):
        capsys.readouterr()
        out = tmp_path / f"plan-{index}.json"
        reverie(
            "plan", tmp_path / "robot-ac/model", "--frame", now, "--goal", goal, "--state", 0, 0, 0.5, "--low", *LOW, "--high", *HIGH,
            "--horizon", HORIZON, "--samples", 16, "--iterations", ITERATIONS, "--seed", seed, "--json", out,
        )  # fmt: skip
        plans.append(json.loads(out.read_text()))
        assert capsys.readouterr().out.startswith("first action: [")

    first, again, other_seed = plans
    assert len(first["actions"]) == HORIZON and len(first["energy_trace"]) == ITERATIONS and len(first["step_energies"]) == HORIZON
    assert all(low <= value <= high for action in first["actions"] for value, low, high in zip(action, LOW, HIGH))
    assert math.isfinite(first["energy"])
    assert (again["actions"], again["energy"]) == (first["actions"], first["energy"])
    assert other_seed["actions"] != first["actions"]
