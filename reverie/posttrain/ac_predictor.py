"""V-JEPA 2-AC: action-conditioned post-training of a frozen V-JEPA encoder ([26] Assran et al.
2025, "V-JEPA 2: Self-Supervised Video Models Enable Understanding, Prediction and Planning", sec. 3).

A pretrained V-JEPA encoder E, frozen, turns each frame x_k into patch features z_k = E(x_k)
(layer-normed). A block-causal predictor P (`reverie.posttrain.ac_transformer`) reads the features,
actions a_k and states s_k of frames 0..k and predicts z_{k+1}; frame k is the observation before
action k. It is trained with two L1 losses on episodes of T frames:

    teacher forcing   L_tf = 1/(T-1) sum_k | P(z_0..k, a_0..k, s_0..k) - z_{k+1} |_1
    rollout           L_ro = 1/K sum_n | z^_n - z_n |_1,  z^_0 = z_0,  z^_{n+1} = P(z^_0..n, a_0..n, s_0..n)

the rollout feeding the predictor its own predictions for K steps (K = 2 in the paper) and
differentiating through them; loss = L_tf + rollout_weight * L_ro. Rollouts in training read the
recorded states, as the paper's code does; imagined rollouts for planning advance them by
`state_update`.

Planning (`reverie.planning.planners`) minimises the paper's energy, the mean L1 distance between
the features predicted at the end of an action sequence and the goal frame's features:
`energy(rollout(context, actions)[:, -1], encode_goal(goal_frame))`.

The model folder is self-contained: its config holds the encoder's own config (`encoder`) and the
state dict holds the frozen encoder. `encoder_folder` (a `vjepa` folder) and `init_folder` (a
post-trained `vjepa_ac` folder to fine-tune, e.g. with LoRA, Hu et al. 2021: `lora_rank`) only
initialise weights when the model is first built; the model clears them in its own config, so the
folder it exports loads anywhere. (`reverie export` rebuilds the model from the run's config before
it loads the checkpoint, so the encoder folder must still exist when a run is exported.)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from reverie.nn.model_folder import MODELS, load_model_folder
from reverie.nn.running_standardizer import RunningStandardizer
from reverie.nn.transformer import TransformerBlock
from reverie.posttrain.ac_transformer import ACPredictor, expand_cache, first_frames_of
from reverie.posttrain.lora import add_lora

STATE_UPDATES = ("integrate", "hold")


@dataclass
class VJEPAACConfig:
    encoder: dict = field(default_factory=dict)  # VJEPAConfig fields of the frozen encoder
    encoder_folder: str | None = None  # a `vjepa` model folder: its config and weights make the encoder
    init_folder: str | None = None  # a `vjepa_ac` folder to start from: architecture and weights
    frame_size: list[int] | None = None  # (H, W) of the training frames; None: the encoder's image_size
    action_dim: int = 7
    state_dim: int = 0  # 0: the episodes have no states
    width: int = 1024  # the paper's predictor: 24 blocks, 16 heads, width 1024 (about 300M parameters)
    depth: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    max_frames: int = 16
    normalize_features: bool = True  # layer-norm encoder features (inputs and targets) and predictions
    standardize_features: bool = False  # then z-score each token's features with the training data's statistics
    standardize_actions: bool = False  # z-score actions with the training data's statistics before embedding them
    rollout_steps: int = 2  # K of the rollout loss; 0 turns it off
    rollout_weight: float = 1.0
    state_update: str = "integrate"  # imagined states: integrate (s + a, delta actions) | hold (last known)
    lora_rank: int = 0  # >0: train LoRA adapters of this rank on the predictor, nothing else
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["qkv", "proj", "fc1", "fc2"])


# what a fine-tuning run sets itself when it starts from `init_folder`; the rest is the folder's
ADAPTATION_FIELDS = ("rollout_steps", "rollout_weight", "state_update", "lora_rank", "lora_alpha", "lora_dropout", "lora_targets")


def teacher_forcing_loss(
    predictor: ACPredictor, features: torch.Tensor, actions: torch.Tensor, states: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, list]:
    """L_tf on features (B, T, N, D), actions (B, T, A), states (B, T, S) or None.

    Returns the loss, the predictions of frames 1..T-1 and the predictor's cache (for the rollout)."""
    predicted, cache = predictor(features[:, :-1], actions[:, :-1], None if states is None else states[:, :-1])
    return F.l1_loss(predicted, features[:, 1:]), predicted, cache


def rollout_loss(
    predictor: ACPredictor,
    features: torch.Tensor,
    actions: torch.Tensor,
    states: torch.Tensor | None,
    steps: int,
    first_prediction: torch.Tensor,  # (B, 1, N, D): P(z_0, a_0, s_0), from the teacher-forcing pass
    cache: list,  # that pass's cache
) -> torch.Tensor:
    """L_ro: K = `steps` autoregressive steps from frame 0, L1 against frames 1..K."""
    cache = first_frames_of(cache, 1, predictor.frame_tokens)
    imagined = [first_prediction]
    for step in range(1, steps):
        step_states = None if states is None else states[:, step : step + 1]
        prediction, cache = predictor(imagined[-1], actions[:, step : step + 1], step_states, past=cache)
        imagined.append(prediction)
    return F.l1_loss(torch.cat(imagined, dim=1), features[:, 1 : steps + 1])


def imagine(
    predictor: ACPredictor,
    context: torch.Tensor,  # (B, T0, N, D) features of the context frames; B = 1 or the candidates' N
    action_sequences: torch.Tensor,  # (N, H, A) candidate actions from the last context frame on
    context_actions: torch.Tensor | None = None,  # (B, T0 - 1, A) the actions between context frames
    context_states: torch.Tensor | None = None,  # (B, T0, S)
    state_update: str = "integrate",
) -> torch.Tensor:
    """Features of the H frames after the context under each candidate, (N, H, N_tok, D).

    The context (all but its last frame) runs once, at its own batch size; its cache is then shared
    by all candidates, and each step runs one frame of N candidates against the cache."""
    candidates, horizon = action_sequences.shape[:2]
    if context.shape[0] not in (1, candidates):
        raise ValueError(f"a context batch of {context.shape[0]} does not go with {candidates} action sequences (use 1 or {candidates})")
    cache = None
    if context.shape[1] > 1:
        if context_actions is None:
            raise ValueError(f"a context of {context.shape[1]} frames needs the {context.shape[1] - 1} actions taken between them (context_actions)")
        past_states = None if context_states is None else context_states[:, :-1]
        _, cache = predictor(context[:, :-1], context_actions, past_states)
        cache = expand_cache(cache, candidates)
    frame = context[:, -1:].expand(candidates, -1, -1, -1)
    state = None if context_states is None else context_states[:, -1:].expand(candidates, -1, -1)
    imagined = []
    for step in range(horizon):
        action = action_sequences[:, step : step + 1]
        frame, cache = predictor(frame, action, state, past=cache)
        imagined.append(frame)
        if state is not None and state_update == "integrate":
            state = state + action
    return torch.cat(imagined, dim=1)


def batch_actions(batch: dict) -> torch.Tensor:
    """batch["actions"] (B, T, A) float, or an error that says why this batch cannot train V-JEPA 2-AC."""
    has_actions = torch.as_tensor(batch.get("has_actions", "actions" in batch))
    if not bool(has_actions.all()):
        keys = batch.get("key", [])
        missing = [key for key, present in zip(keys, has_actions.reshape(-1).tolist()) if not present]
        raise ValueError(
            f"vjepa_ac post-trains on episodes with actions, but {len(missing) or 'some'} samples of this batch have none "
            f"(has_actions false: {', '.join(map(str, missing[:4]))}); give data.shards of recorded or imported episodes"
        )
    actions = batch["actions"]
    if not torch.is_tensor(actions) or not actions.is_floating_point() or actions.ndim != 3:
        shape = getattr(actions, "shape", type(actions).__name__)
        raise ValueError(f"vjepa_ac needs continuous actions (B, T, A) float, got {getattr(actions, 'dtype', '')} {shape}")
    return actions


def read_folder_config(folder: str | Path, model_name: str) -> dict:
    """The dataclass fields in `folder/config.json`, checked to be a `model_name` folder."""
    config_file = Path(folder) / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{folder}: not a model folder (no config.json)")
    saved = json.loads(config_file.read_text())
    if saved.get("model") != model_name:
        raise ValueError(f"{folder}: holds a {saved.get('model')!r} model, expected {model_name!r}")
    return saved["config"]


def from_init_folder(config: VJEPAACConfig) -> tuple[VJEPAACConfig, dict | None]:
    """With `init_folder`: the folder's config with this run's adaptation fields, and its weights."""
    if not config.init_folder:
        return config, None
    if config.encoder_folder:
        raise ValueError("set encoder_folder (a new predictor on a V-JEPA encoder) or init_folder (a post-trained vjepa_ac to fine-tune), not both")
    base = VJEPAACConfig(**read_folder_config(config.init_folder, "vjepa_ac"))
    if base.lora_rank:
        raise ValueError(f"{config.init_folder}: holds LoRA adapters; start from a folder without them")
    state = load_file(str(Path(config.init_folder) / "model.safetensors"))
    return dataclasses.replace(base, **{name: getattr(config, name) for name in ADAPTATION_FIELDS}), state


def check_config(config: VJEPAACConfig) -> None:
    if config.state_update not in STATE_UPDATES:
        raise ValueError(f"state_update must be one of {STATE_UPDATES}, not {config.state_update!r}")
    if config.state_update == "integrate" and config.state_dim not in (0, config.action_dim):
        raise ValueError(
            f"state_update: integrate adds actions to states, but state_dim={config.state_dim} != action_dim={config.action_dim}; "
            "set state_update: hold"
        )


def as_context_batch(tensor: torch.Tensor | None, batched: bool, like: torch.Tensor) -> torch.Tensor | None:
    """An unbatched (T, ...) context tensor as (1, T, ...), on the device and in the dtype of `like`."""
    if tensor is None:
        return None
    return (tensor if batched else tensor[None]).to(like)


@MODELS.register("vjepa_ac")
class VJEPAAC(nn.Module):
    registry_name = "vjepa_ac"
    config_class = VJEPAACConfig
    checkpoint_blocks = (TransformerBlock,)  # the predictor's blocks and those of the frozen encoder

    def __init__(self, config: VJEPAACConfig):
        super().__init__()
        config, init_state = from_init_folder(config)
        check_config(config)
        self.encoder, encoder_fields = self.build_encoder(config)
        self.config = dataclasses.replace(config, encoder=encoder_fields, encoder_folder=None, init_folder=None)
        self.encoder.requires_grad_(False)
        self.predictor = ACPredictor(
            feature_dim=self.encoder.feature_dim,
            action_dim=config.action_dim,
            state_dim=config.state_dim,
            tokens_per_frame=self.encoder.tokens_per_frame(*(config.frame_size or [self.encoder.config.image_size] * 2)),
            width=config.width,
            depth=config.depth,
            heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            max_frames=config.max_frames,
            normalize_output=config.normalize_features and not config.standardize_features,
            standardize_actions=config.standardize_actions,
        )
        self.feature_statistics = (
            RunningStandardizer((self.predictor.tokens_per_frame, self.encoder.feature_dim)) if config.standardize_features else None
        )
        if init_state is not None:
            self.load_state_dict(init_state)
        if config.lora_rank:
            add_lora(self.predictor, config.lora_rank, config.lora_alpha, config.lora_dropout, config.lora_targets)
        self.train()

    @staticmethod
    def build_encoder(config: VJEPAACConfig) -> tuple[nn.Module, dict]:
        """The V-JEPA encoder and its config fields: from `encoder_folder` when set, else built from `encoder`."""
        if config.encoder_folder:
            fields = read_folder_config(config.encoder_folder, "vjepa")
            return load_model_folder(config.encoder_folder), fields
        vjepa = MODELS.get("vjepa")
        return vjepa(vjepa.config_class(**config.encoder)), dict(config.encoder)

    def train(self, mode: bool = True) -> "VJEPAAC":
        """Train mode for the predictor; the frozen encoder stays in eval mode."""
        super().train(mode)
        self.encoder.eval()
        return self

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, 3, H, W) in [0, 1] -> features (B, T, N, D), layer-normed with `normalize_features`
        and then standardised with `standardize_features` (in training, the statistics take them in)."""
        features = self.encoder.encode_frames(frames, normalize_features=self.config.normalize_features)
        return features if self.feature_statistics is None else self.feature_statistics(features)

    def encode_goal(self, frame: torch.Tensor) -> torch.Tensor:
        """A goal frame (3, H, W) in [0, 1] -> its features (N, D)."""
        return self.encode(frame[None, None])[0, 0]

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """L_tf and L_ro on a loader batch of episodes (frames, actions and, with state_dim, states)."""
        actions, states = batch_actions(batch), self.batch_states(batch)
        features = self.encode(batch["frames"])
        return self.feature_losses(features, actions.to(features), None if states is None else states.to(features))

    def feature_losses(self, features: torch.Tensor, actions: torch.Tensor, states: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The loss terms on encoder features (B, T, N, D) with their actions (B, T, A) and states."""
        steps = self.config.rollout_steps
        if features.shape[1] < max(2, steps + 1):
            raise ValueError(f"episodes of {features.shape[1]} frames are too short for rollout_steps={steps}; data.window must be at least {max(2, steps + 1)}")
        teacher_forcing, predicted, cache = teacher_forcing_loss(self.predictor, features, actions, states)
        rollout = rollout_loss(self.predictor, features, actions, states, steps, predicted[:, :1], cache) if steps else torch.zeros_like(teacher_forcing)
        return {"loss": teacher_forcing + self.config.rollout_weight * rollout, "teacher_forcing": teacher_forcing, "rollout": rollout}

    def batch_states(self, batch: dict) -> torch.Tensor | None:
        if not self.config.state_dim:
            return None
        if not torch.is_tensor(batch.get("states")):
            raise ValueError(f"vjepa_ac was configured with state_dim={self.config.state_dim} but the batch has no states; set state_dim: 0")
        return batch["states"]

    @torch.no_grad()
    def rollout(
        self,
        context_features: torch.Tensor,  # (T0, N_tok, D) or (B, T0, N_tok, D), B = 1 or N
        action_sequences: torch.Tensor,  # (N, H, A)
        states: torch.Tensor | None = None,  # (T0, S) or (B, T0, S): the context frames' states
        context_actions: torch.Tensor | None = None,  # (T0 - 1, A) or (B, T0 - 1, A)
    ) -> torch.Tensor:
        """Imagined features (N, H, N_tok, D) of the H frames after the context, per candidate.

        Without gradients: planners sample and score, they do not differentiate (`imagine` does)."""
        batched = context_features.ndim == 4
        context = as_context_batch(context_features, batched, context_features)
        return imagine(
            self.predictor,
            context,
            action_sequences.to(context),
            as_context_batch(context_actions, batched, context),
            as_context_batch(states, batched, context),
            self.config.state_update,
        )

    @staticmethod
    def energy(predicted_last: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """The paper's planning energy: mean L1 distance of (N, N_tok, D) predictions to the goal (N_tok, D) -> (N,)."""
        return (predicted_last - goal).abs().mean(dim=(-2, -1))
