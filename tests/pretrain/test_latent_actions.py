"""Genie's latent action model [18]: the decoder sees each next frame only through its code, the
encoder is causal, the loss falls, unused codes restart, model folders, batches without actions,
token input, bad config fields named, the tiny config trained by `reverie train`, and the
real-scale config."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from reverie.nn.model_folder import MODELS, load_model_folder, save_model_folder
from reverie.pretrain.frozen_tokenizer import TokenizerChoiceError
from reverie.pretrain.latent_actions import LatentActionModel, LatentActionModelConfig, LatentActionModelError
from reverie.tokenizers.clip_shape import FrameShapeError
from tiny_tokenizers import FSQ, clip_shard, per_frame_tokenizer, sliding_square
from training_runs import metric_rows, train_config_briefly

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "genie"


def from_yaml(name: str, **fields) -> LatentActionModel:
    config = OmegaConf.to_container(OmegaConf.load(CONFIGS / name).model)
    model_class = MODELS.get(config.pop("name"))
    return model_class(model_class.config_class(**config | fields))


def tiny(**fields) -> LatentActionModel:
    """The model of lam_tiny.yaml (32 px frames, 4 x 4 patches of 8 px), with `fields` over its YAML's."""
    torch.manual_seed(0)
    return from_yaml("lam_tiny.yaml", **fields)


def square_frames(batch: int = 2, frames: int = 4, size: int = 32, first: int = 0) -> torch.Tensor:
    """(B, T, 3, size, size) in [0, 1]: sliding-square clips."""
    clips = np.stack([sliding_square(index, frames, size, size) for index in range(first, first + batch)])
    return torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 255


def train(model: LatentActionModel, batch: dict, steps: int, lr: float = 3e-3) -> list[dict[str, float]]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    history = []
    for _ in range(steps):
        terms = model.training_losses(batch)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        history.append({name: float(value.detach()) for name, value in terms.items()})
    return history


def test_the_decoder_sees_each_next_frame_only_through_its_latent_action():
    model = tiny().eval()
    frames = square_frames()
    actions = model.infer_actions(frames)  # (B, 3)
    predictions = model.decode_actions(frames[:, :-1], actions)  # of frames 2 .. 4
    assert actions.shape == (2, 3) and predictions.shape == (2, 3, 3, 32, 32)
    for changed in range(1, 3):  # with the codes held, a past frame changes only the predictions after it
        perturbed = frames.clone()
        perturbed[:, changed] = torch.rand_like(perturbed[:, changed], generator=torch.Generator().manual_seed(changed))
        moved = model.decode_actions(perturbed[:, :-1], actions)
        torch.testing.assert_close(moved[:, :changed], predictions[:, :changed], rtol=0, atol=1e-6)  # frame `changed` itself included
        assert (moved[:, changed] - predictions[:, changed]).abs().max() > 1e-3
    # the whole model, with the last frame replaced: the other transitions are untouched, and its
    # prediction is exactly the decoder's for whatever code the encoder gave the new last frame
    perturbed = frames.clone()
    perturbed[:, -1] = torch.rand_like(perturbed[:, -1], generator=torch.Generator().manual_seed(5))
    full, full_actions = model(perturbed)
    assert torch.equal(full_actions[:, :-1], actions[:, :-1])
    torch.testing.assert_close(full[:, :-1], predictions[:, :-1], rtol=0, atol=1e-6)
    torch.testing.assert_close(full, model.decode_actions(frames[:, :-1], full_actions), rtol=0, atol=1e-6)
    other = actions.clone()
    other[:, -1] = (other[:, -1] + 1) % model.config.num_actions  # another code does change the prediction
    assert (model.decode_actions(frames[:, :-1], other)[:, -1] - predictions[:, -1]).abs().max() > 1e-3


def test_the_encoder_is_causal_in_time():
    model = tiny().eval()
    frames = square_frames()
    with torch.no_grad():
        latents = model.encode(model.patches(frames))  # (B, 3, D): transition t reads frames 1 .. t + 1
        for changed in range(1, 4):
            perturbed = frames.clone()
            perturbed[:, changed] = 1 - perturbed[:, changed]
            moved = model.encode(model.patches(perturbed))
            torch.testing.assert_close(moved[:, : changed - 1], latents[:, : changed - 1], rtol=0, atol=1e-6)
            assert (moved[:, changed - 1] - latents[:, changed - 1]).abs().max() > 1e-4


def test_the_loss_falls_on_a_fixed_batch():
    model = tiny()
    history = train(model, {"frames": square_frames(batch=4)}, 40)
    assert {"mse", "commitment", "loss", "actions_used"} == set(history[0])
    first, last = history[0]["mse"], np.mean([terms["mse"] for terms in history[-5:]])
    assert last < 0.5 * first, (first, last)


def test_codes_no_transition_takes_for_reset_after_steps_batches_are_restarted():
    model = tiny(reset_after_steps=3).train()
    batch = {"frames": square_frames(batch=4)}  # 12 transitions, enough to restart all 8 codes at once
    for _ in range(2):
        model.training_losses(batch)
    waited = model.batches_unused == 2
    taken_next = torch.zeros_like(waited).index_fill_(0, model.infer_actions(batch["frames"]).flatten(), True)
    due = (waited & ~taken_next).nonzero().flatten()
    assert due.numel() >= 2 and int(model.batches_unused.max()) == 2
    with torch.no_grad():
        latents = model.encode(model.patches(batch["frames"])).flatten(0, 1)  # (12, D), what a restart draws from
    distance = torch.cdist(model.quantizer.codebook[due], latents).min(dim=1).values
    assert distance.min() > 1e-2  # the due codes lie away from every latent of the batch before
    model.training_losses(batch)
    distance = torch.cdist(model.quantizer.codebook[due], latents).min(dim=1).values
    assert distance.max() < 1e-5  # ... and each sits on one of them after
    assert model.quantizer.codebook[due].unique(dim=0).shape[0] == due.numel()  # on different ones
    assert torch.all(model.batches_unused[due] == 0) and int(model.batches_unused.max()) < 3

    few = tiny(reset_after_steps=1).train()  # 7 codes due and 2 transitions: 2 restart now, 5 wait
    latents = torch.randn(1, 2, few.config.latent_dim, generator=torch.Generator().manual_seed(0))
    restarted = few.restart_unused_codes(latents, torch.zeros(1, 2, dtype=torch.int64))
    assert restarted.numel() == 2 and 0 not in restarted.tolist()
    assert torch.cdist(few.quantizer.codebook[restarted], latents[0]).min(dim=1).values.max() < 1e-5
    assert few.quantizer.codebook[restarted].unique(dim=0).shape[0] == 2  # each on its own transition
    waiting = [code for code in range(1, 8) if code not in restarted.tolist()]
    assert few.batches_unused[restarted].tolist() == [0, 0] and few.batches_unused[waiting].tolist() == [1] * 5

    never = tiny(reset_after_steps=0).train()
    for _ in range(3):
        never.training_losses(batch)
    assert int(never.batches_unused.max()) == 3  # reset_after_steps 0: unused codes stay


def test_a_saved_model_folder_loads_with_identical_outputs(tmp_path):
    model = tiny(reset_after_steps=100)
    train(model, {"frames": square_frames()}, 3)
    model.eval()
    loaded = load_model_folder(save_model_folder(model, tmp_path / "lam"))
    assert isinstance(loaded, LatentActionModel) and loaded.config == model.config
    assert torch.equal(loaded.batches_unused, model.batches_unused) and int(model.batches_unused.max()) > 0
    frames = square_frames(first=7)
    with torch.no_grad():
        predictions, actions = model(frames)
        loaded_predictions, loaded_actions = loaded(frames)
    assert torch.equal(loaded_actions, actions) and torch.equal(loaded.infer_actions(frames), actions)
    torch.testing.assert_close(loaded_predictions, predictions, rtol=0, atol=0)


def test_a_batch_of_video_without_actions_trains_and_actions_are_never_read():
    model = tiny()
    frames = square_frames()
    unlabeled = {"frames": frames, "has_actions": torch.tensor([False, False]), "shard": ["clips-000000.tar"] * 2, "key": ["a", "b"], "meta": [{}, {}]}
    labeled = {"frames": frames, "has_actions": torch.tensor([True, True]), "actions": torch.randint(0, 4, (2, 4))}
    with torch.no_grad():  # in eval mode, where the codebook stays put between the two
        model.eval()
        assert float(model.training_losses(labeled)["loss"]) == pytest.approx(float(model.training_losses(unlabeled)["loss"]), abs=1e-6)
    model.train()
    before = copy.deepcopy(model.state_dict())
    history = train(model, unlabeled, 2)
    assert all(np.isfinite(terms["loss"]) for terms in history)
    changed = [name for name, tensor in model.state_dict().items() if not torch.equal(tensor, before[name])]
    assert any(name.startswith("encoder.") for name in changed) and any(name.startswith("decoder.") for name in changed)


def test_the_tiny_config_trains_with_reverie_train_on_ingested_video(tmp_path):
    shards = clip_shard(tmp_path / "shards" / "clips-000000.tar", clips=4, frames=5, size=(32, 32))  # no actions, as `reverie ingest` writes
    run_dir = train_config_briefly(CONFIGS / "lam_tiny.yaml", tmp_path / "run", f"data.shards={shards.parent}", steps=4)
    rows = metric_rows(run_dir)
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4] and {"mse", "commitment", "actions_used"} <= set(rows[0])
    assert all(np.isfinite(float(row["loss"])) for row in rows)


def test_token_input_reads_a_frozen_tokenizers_codes_from_frames_or_tokens(tmp_path):
    tokenizer = per_frame_tokenizer(tmp_path / "fsq", **FSQ)  # 32 px -> 4 x 4 codes of 125
    model = tiny(input="tokens", tokenizer=str(tokenizer))
    assert model.config.tokenizer["model"] == "causal_video_autoencoder"  # recorded in the config, not the path
    frames = square_frames()
    codes = model.tokenizer.encode(frames)  # (2, 4, 4, 4)
    history = train(model, {"frames": frames}, 2)
    assert {"cross_entropy", "commitment", "loss", "actions_used"} == set(history[0]) and np.isfinite(history[-1]["loss"])
    model.eval()  # where the codebook stays put between the two
    with torch.no_grad():
        from_frames = model.training_losses({"frames": frames})
        from_tokens = model.training_losses({"tokens": codes})
    assert float(from_tokens["loss"]) == pytest.approx(float(from_frames["loss"]), abs=1e-6)
    actions = model.infer_actions(frames)
    assert actions.shape == (2, 3) and model.decode_actions(frames[:, :-1], actions).shape == (2, 3, 4, 4, 125)
    loaded = load_model_folder(save_model_folder(model, tmp_path / "lam"))
    assert torch.equal(loaded.infer_actions(frames), actions)
    continuous = per_frame_tokenizer(tmp_path / "ae")
    with pytest.raises(TokenizerChoiceError, match="continuous latents"):
        tiny(input="tokens", tokenizer=str(continuous))


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"input": "video"}, "input 'video'"),
        ({"input": "tokens"}, "tokenizer: input tokens"),
        ({"tokenizer": "runs/tokenizer/model"}, "tokenizer: set, but input is pixels"),
        ({"num_actions": 1}, "num_actions 1"),
        ({"patch_size": 0}, "patch_size 0"),
        ({"encoder_heads": 3}, "encoder_width 32, encoder_heads 3"),
        ({"decoder_width": 8, "decoder_heads": 2}, "decoder_width 8, decoder_heads 2"),
        ({"reset_after_steps": -1}, "reset_after_steps -1"),
        ({"codebook_decay": 1.0}, "codebook_decay 1.0"),
    ],
)
def test_bad_config_fields_are_named(fields, named):
    config = OmegaConf.to_container(OmegaConf.load(CONFIGS / "lam_tiny.yaml").model)
    config.pop("name")
    with pytest.raises(LatentActionModelError, match=named):
        LatentActionModel(LatentActionModelConfig(**config | fields))


def test_bad_batches_are_named():
    model = tiny()
    with pytest.raises(FrameShapeError, match="patch size 8"):
        model.training_losses({"frames": torch.rand(1, 4, 3, 30, 32)})
    with pytest.raises(LatentActionModelError, match="a window of 1 frame"):
        model.training_losses({"frames": torch.rand(1, 1, 3, 32, 32)})
    with pytest.raises(LatentActionModelError, match="needs frames"):
        model.training_losses({"tokens": torch.zeros(1, 4, 4, 4, dtype=torch.int64)})
    with pytest.raises(LatentActionModelError, match=r"actions of shape \(1, 2\)"):
        model.decode_actions(torch.rand(1, 3, 3, 32, 32), torch.zeros(1, 2, dtype=torch.int64))


def test_the_genie_config_has_the_papers_sizes():
    with torch.device("meta"):
        model = from_yaml("lam_genie.yaml")
    config = model.config
    assert (config.encoder_depth, config.encoder_width, config.encoder_heads) == (20, 1024, 16)
    assert (config.decoder_depth, config.decoder_width, config.decoder_heads) == (20, 1024, 16)
    assert (config.num_actions, config.latent_dim, config.patch_size, config.input) == (8, 32, 16, "pixels")
    parameters = sum(parameter.numel() for parameter in model.parameters())
    assert 670e6 < parameters < 680e6, parameters


@pytest.mark.slow
def test_the_genie_config_builds_and_takes_a_training_step():
    torch.manual_seed(0)
    model = from_yaml("lam_genie.yaml")
    frames = square_frames(batch=1, frames=2)  # two frames of 2 x 2 patches
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    terms = model.training_losses({"frames": frames})
    terms["loss"].backward()
    optimizer.step()
    assert terms["loss"].isfinite() and model.infer_actions(frames).shape == (1, 1)
