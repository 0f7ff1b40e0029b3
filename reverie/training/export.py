"""A run's checkpoint as a model folder (`config.json` + `model.safetensors`): `reverie export`.

The checkpoint is read with `torch.load(weights_only=True)` (`load_data`); without `checkpoint`,
the run's newest one that loads is taken (`resume_checkpoint`, which names any it skips). The
model is rebuilt from the config it recorded when it was built (`model_config`), so nothing the
run read then (an encoder folder, say) has to exist now. With EMA on, its `state_dict` holds the averaged weights and
`current_model_state` the raw ones (Lightning's `WeightAveraging` layout); `ema=False` exports the
raw weights. The folder loads with `load_model_folder` or plain safetensors.
"""

from __future__ import annotations

from pathlib import Path

from reverie.nn.model_folder import MODELS, save_model_folder
from reverie.training.checkpoint_io import load_data
from reverie.training.trainer import resume_checkpoint

MODEL_PREFIX = "model."  # ModelTask keeps the model under `self.model`


def export_run(run_dir: Path, out: Path, checkpoint: Path | None = None, ema: bool = True) -> Path:
    """Write the model of `run_dir`'s newest (or the given) checkpoint to the folder `out`."""
    run_dir = Path(run_dir)
    config_file = run_dir / "config.yaml"
    if not config_file.exists():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no config.yaml)")
    path = checkpoint or resume_checkpoint(run_dir)
    if path is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint in {run_dir / 'checkpoints'}")
    state = load_data(path)
    if ema and "current_model_state" not in state:
        raise ValueError(f"{path}: the run kept no EMA weights (ema: null); export with --no-ema")
    weights = state["state_dict"] if ema else state.get("current_model_state", state["state_dict"])
    model_class = MODELS.get(state["model_config"]["model"])
    model = model_class(model_class.config_class(**state["model_config"]["config"]))
    model.load_state_dict({name[len(MODEL_PREFIX) :]: value for name, value in weights.items() if name.startswith(MODEL_PREFIX)})
    return save_model_folder(model, out)
