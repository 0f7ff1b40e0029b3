"""Genie's MaskGIT dynamics model [18]: the training mask, the masked loss, the cosine schedule and
the sampler that follows it, causality in time and not in space, both action-conditioning
switches, a loss that falls, seeds, the sliding window, model folders, bad input named, and the
real-scale config on the meta device."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from reverie.nn.model_folder import MODELS, load_model_folder, save_model_folder
from reverie.nn.world_model import ContextError, rollout
from reverie.pretrain.action_tokens import ActionSpaceError
from reverie.pretrain.frozen_tokenizer import TokenizerChoiceError
from reverie.pretrain.maskgit_dynamics import (
    MaskGITDynamics,
    MaskGITDynamicsConfig,
    MaskGITDynamicsError,
    draw_mask,
    masked_cross_entropy,
    reveal_schedule,
)
from tiny_tokenizers import FSQ, per_frame_tokenizer, sliding_square

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "genie" / "dynamics_tiny.yaml"
GENIE = ROOT / "configs" / "genie" / "dynamics_genie.yaml"
CODES = 125  # FSQ levels [5, 5, 5]
GRID = (4, 6)  # the tiny tokenizer's codes of a 32 x 48 frame


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory) -> Path:
    return per_frame_tokenizer(tmp_path_factory.mktemp("fsq") / "model", **FSQ)


def tiny(tokenizer_folder: Path, **fields) -> MaskGITDynamics:
    """The model of dynamics_tiny.yaml on the tiny tokenizer, labelled by its batches' own actions
    (no latent action model), with `fields` over its YAML's."""
    config = OmegaConf.to_container(OmegaConf.load(TINY).model)
    config.pop("name")
    torch.manual_seed(0)
    return MaskGITDynamics(MaskGITDynamicsConfig(**config | {"tokenizer": str(tokenizer_folder), "latent_action_model": None} | fields))


def square_frames(batch: int = 4, frames: int = 4) -> torch.Tensor:
    """(B, T, 3, 32, 48) in [0, 1]: sliding-square clips of the tiny config's frame size."""
    clips = np.stack([sliding_square(index, frames, 32, 48) for index in range(batch)])
    return torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 255


def train(model: MaskGITDynamics, batches, steps: int, lr: float = 3e-3) -> list[float]:
    """`steps` AdamW steps, batch i from `batches(i)`; the loss of each."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    history = []
    for step in range(steps):
        loss = model.training_losses(batches(step))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    return history


def test_the_mask_ratio_per_sample_lies_in_half_to_one_and_frame_0_is_never_masked():
    ratios, masked = draw_mask(512, 3, 1000, generator=torch.Generator().manual_seed(0))
    assert ratios.shape == (512,) and masked.shape == (512, 3, 1000) and masked.dtype == torch.bool
    assert bool((ratios >= 0.5).all()) and bool((ratios < 1.0).all())
    assert ratios.min() < 0.51 and ratios.max() > 0.99  # spread over the whole interval
    assert not masked[:, 0].any()
    fractions = masked[:, 1:].float().mean(dim=(1, 2))  # each sample's frames 1, 2 at its own ratio
    assert (fractions - ratios).abs().max() < 0.05
    _, again = draw_mask(512, 3, 1000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, masked)


def test_the_cross_entropy_counts_the_masked_codes_only():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 7, generator=generator, dtype=torch.float64)
    codes = torch.randint(0, 7, (2, 3, 5), generator=generator)
    _, masked = draw_mask(2, 3, 5, generator=generator)
    loss = masked_cross_entropy(logits, codes, masked)
    moved = logits + 10 * (~masked)[..., None] * torch.randn(2, 3, 5, 7, generator=generator, dtype=torch.float64)
    assert torch.allclose(masked_cross_entropy(moved, codes, masked), loss, rtol=0, atol=1e-12)
    expected = -torch.log_softmax(logits, dim=-1).gather(-1, codes[..., None]).squeeze(-1)[masked].mean()
    assert torch.allclose(loss, expected)
    assert masked_cross_entropy(logits, codes, torch.zeros_like(masked)) == 0


@pytest.mark.parametrize("codes, steps", [(900, 25), (24, 8), (16, 16), (5, 1), (256, 12)])
def test_the_cosine_schedule_reveals_more_each_step_and_all_at_the_end(codes, steps):
    revealed = reveal_schedule(codes, steps)
    per_step = np.diff([0, *revealed])
    assert len(revealed) == steps and revealed[-1] == codes and (per_step >= 1).all()
    unclamped = [codes - math.floor(codes * math.cos(math.pi / 2 * (step + 1) / steps)) for step in range(steps)]
    if codes >= 4 * steps:  # MaskGIT's clamp does not bind: exactly the cosine
        assert revealed == unclamped
    if codes > steps > 2:  # the cosine reveals few codes first and more later (1 a step where clamped throughout)
        assert per_step[0] <= per_step[1:].min() and per_step[: steps // 2].sum() < per_step[steps // 2 :].sum()


def test_the_sampler_follows_the_schedule_and_keeps_what_it_revealed(tokenizer_folder):
    model = tiny(tokenizer_folder).eval()
    hidden_counts, frames_seen = [], []
    logits = model.logits

    def counting(codes, actions):
        hidden_counts.append((codes[:, -1] == model.mask_code).sum(dim=-1))
        frames_seen.append(codes[:, -1].clone())
        return logits(codes, actions)

    model.logits = counting
    codes = torch.randint(0, CODES, (3, 2, 24), generator=torch.Generator().manual_seed(0))
    frame = model.sample_next_codes(codes, torch.tensor([[0, 1], [2, 3], [4, 5]]), torch.Generator().manual_seed(1))
    revealed = reveal_schedule(24, 8)
    assert [counts.tolist() for counts in hidden_counts] == [[24 - shown] * 3 for shown in [0, *revealed[:-1]]]
    assert frame.shape == (3, 24) and bool(((frame >= 0) & (frame < CODES)).all())
    for before, after in zip(frames_seen, frames_seen[1:] + [frame]):
        shown = before != model.mask_code
        assert torch.equal(after[shown], before[shown])
    with pytest.raises(MaskGITDynamicsError, match=r"sampling_steps 25: give 1 to 24, the codes of a frame"):
        tiny(tokenizer_folder, sampling_steps=25)


@pytest.mark.parametrize("conditioning", ["add", "prepend"])
def test_no_token_sees_a_future_frame_and_every_token_sees_its_whole_frame(tokenizer_folder, conditioning):
    model = tiny(tokenizer_folder, action_conditioning=conditioning).double().eval()
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, CODES + 1, (2, 4, 24), generator=generator)  # [MASK] among them
    actions = torch.randint(0, 8, (2, 3), generator=generator)
    logits = model.logits(codes, actions)
    assert logits.shape == (2, 4, 24, CODES)
    later_codes, later_actions = codes.clone(), actions.clone()
    later_codes[:, 2] = (codes[:, 2] + 1) % CODES
    later_actions[:, 1] = (actions[:, 1] + 1) % 8  # a_1 leads to frame 2
    changed = model.logits(later_codes, later_actions)
    torch.testing.assert_close(changed[:, :2], logits[:, :2], rtol=0, atol=1e-12)
    assert not torch.allclose(changed[:, 2:], logits[:, 2:])
    last_code = codes.clone()
    last_code[:, 1, -1] = (codes[:, 1, -1] + 1) % CODES
    assert not torch.allclose(model.logits(last_code, actions)[:, 1, 0], logits[:, 1, 0])  # space is bidirectional


def action_decides_batch(step: int) -> dict:
    """Frame 0 random codes; frame 1 all code 3 after action 0 and all code 7 after action 5."""
    generator = torch.Generator().manual_seed(step)
    first = torch.randint(0, CODES, (16, *GRID), generator=generator)
    taken = torch.randint(0, 2, (16,), generator=generator) * 5
    second = torch.where(taken == 0, 3, 7)[:, None, None].expand(16, *GRID)
    return {"tokens": torch.stack([first, second], dim=1), "actions": torch.stack([taken, torch.zeros_like(taken)], dim=1)}


@pytest.mark.parametrize("conditioning", ["add", "prepend"])
def test_both_action_conditionings_learn_that_the_action_decides_the_next_frame(tokenizer_folder, conditioning):
    model = tiny(tokenizer_folder, action_conditioning=conditioning, sampling_temperature=0.0)
    assert model.prepend == (conditioning == "prepend")
    train(model, action_decides_batch, 80)
    model.eval()
    first = torch.randint(0, CODES, (8, 1, 24), generator=torch.Generator().manual_seed(1000))
    after_0 = model.sample_next_codes(first, torch.zeros(8, 1, dtype=torch.int64))
    after_5 = model.sample_next_codes(first, torch.full((8, 1), 5))
    assert (after_0 == 3).float().mean() > 0.9 and (after_5 == 7).float().mean() > 0.9


def test_the_tiny_config_learns_a_fixed_batch_of_clips(tokenizer_folder):
    model = tiny(tokenizer_folder)
    batch = {"frames": square_frames(), "actions": torch.randint(0, 8, (4, 4), generator=torch.Generator().manual_seed(0))}
    assert set(model.training_losses(batch)) == {"tokens", "loss"}
    history = train(model, lambda step: batch, 40)
    assert np.mean(history[-5:]) < 0.5 * history[0]


def test_the_same_seed_gives_the_same_rollout_and_another_seed_another(tokenizer_folder):
    model = tiny(tokenizer_folder).eval()
    frames, actions = square_frames(2, 2), torch.randint(0, 8, (2, 4), generator=torch.Generator().manual_seed(0))

    def frames_of(seed: int) -> torch.Tensor:
        steps = rollout(model, frames, actions[:, :1], actions[:, 1:], 3, torch.Generator().manual_seed(seed))
        assert all(step.reward is None and step.terminated is None for step in steps)
        return torch.stack([step.frame for step in steps], dim=1)

    first = frames_of(0)
    assert first.shape == (2, 3, 3, 32, 48) and bool(((first >= 0) & (first <= 1)).all())
    assert torch.equal(frames_of(0), first) and not torch.equal(frames_of(1), first)


def test_greedy_steps_and_the_sliding_window_match_sampling_from_the_window(tokenizer_folder):
    model = tiny(tokenizer_folder, sampling_temperature=0.0).eval()
    model.start(square_frames(2, 3), torch.tensor([[0, 1], [2, 3]]))
    for step in range(4):  # from the second step on, the window of max_frames 4 slides
        world = model.step(torch.tensor([step, 7 - step]))
        state = model.rollout_state
        assert world.frame.shape == (2, 3, 32, 48) and state.codes.shape == (2, 4, 24) and state.actions.shape == (2, 3)
        assert torch.equal(state.actions[:, -1], torch.tensor([step, 7 - step]))
        assert torch.equal(state.codes[:, -1], model.sample_next_codes(state.codes[:, :-1], state.actions))


def test_a_saved_and_loaded_model_samples_the_same_rollout_without_its_tokenizer_folder(tmp_path):
    tokenizer_copy = per_frame_tokenizer(tmp_path / "tokenizer", **FSQ)
    model = tiny(tokenizer_copy, action_conditioning="add")
    train(model, lambda step: {"frames": square_frames(), "actions": torch.ones(4, 4, dtype=torch.int64)}, 2)
    folder = save_model_folder(model, tmp_path / "dynamics")
    for path in tokenizer_copy.iterdir():
        path.unlink()
    loaded = load_model_folder(folder)
    assert loaded.config == model.config and isinstance(loaded.config.tokenizer, dict)
    frames, actions = square_frames(2, 2), torch.tensor([[1, 0, 6], [0, 3, 1]])
    steps = [rollout(each, frames, actions[:, :1], actions[:, 1:], 2, torch.Generator().manual_seed(3)) for each in (model.eval(), loaded)]
    for original, reloaded in zip(*steps):
        assert torch.equal(original.frame, reloaded.frame)


def test_bad_config_batch_and_context_are_named(tokenizer_folder, tmp_path):
    with pytest.raises(MaskGITDynamicsError, match="tokenizer: not set"):
        MaskGITDynamics(MaskGITDynamicsConfig())
    bad_fields = [
        ({"action_conditioning": "concat"}, "action_conditioning 'concat': one of add, prepend"),
        ({"heads": 5}, "width 64, heads 5: the width must split into heads"),
        ({"num_actions": 0}, "num_actions 0"),
        ({"max_frames": 1}, "max_frames 1: a dynamics model needs at least 2 frames"),
        ({"sampling_temperature": -1.0}, r"sampling_temperature -1.0: must be 0 \(argmax\) or more"),
    ]
    for fields, message in bad_fields:
        with pytest.raises(MaskGITDynamicsError, match=message):
            tiny(tokenizer_folder, **fields)
    with pytest.raises(TokenizerChoiceError, match="continuous latents; the MaskGIT dynamics model predicts codes"):
        tiny(per_frame_tokenizer(tmp_path / "ae"))
    model = tiny(tokenizer_folder).eval()
    frames, actions = square_frames(1, 4), torch.zeros(1, 4, dtype=torch.int64)
    with pytest.raises(MaskGITDynamicsError, match="a batch without actions .*give actions \\(B, T\\) int64 in \\[0, num_actions 8\\)"):
        model.training_losses({"frames": frames})
    with pytest.raises(ActionSpaceError, match=r"batch actions of shape \(1, 3\): expected \(1, 4\)"):
        model.training_losses({"frames": frames, "actions": actions[:, :3]})
    with pytest.raises(ActionSpaceError, match="batch actions: 8 is outside a discrete action space of 8 actions"):
        model.training_losses({"frames": frames, "actions": actions + 8})
    with pytest.raises(MaskGITDynamicsError, match="a window of 1 frames: this model trains on 2 to max_frames 4"):
        model.training_losses({"frames": frames[:, :1], "actions": actions[:, :1]})
    with pytest.raises(MaskGITDynamicsError, match="a window of 5 frames"):
        model.training_losses({"tokens": torch.zeros(1, 5, *GRID, dtype=torch.int64), "actions": torch.zeros(1, 5, dtype=torch.int64)})
    with pytest.raises(MaskGITDynamicsError, match=r"codes of shape \(1, 2, 8, 8\): this model takes \(B, T, 4, 6\), the grid of 32x48 frames"):
        model.training_losses({"frames": torch.rand(1, 2, 3, 64, 64), "actions": actions[:, :2]})
    with pytest.raises(ContextError, match="step before start"):
        model.step(torch.zeros(1, dtype=torch.int64))
    with pytest.raises(ContextError, match="context of 5 frames: this model takes 1 to 4"):
        model.start(square_frames(1, 5), torch.zeros(1, 4, dtype=torch.int64))
    with pytest.raises(ContextError, match="a context of 2 frames needs the 1 actions between them; got none"):
        model.start(square_frames(1, 2), None)
    model.start(square_frames(1, 1), None)
    with pytest.raises(ContextError, match=r"step\(None\): the MaskGIT dynamics model needs the latent action"):
        model.step(None)
    with pytest.raises(ActionSpaceError, match="action of dtype torch.float32: a discrete action space of 8 actions takes integer codes"):
        model.step(torch.zeros(1))


def test_the_genie_config_builds_at_full_size_on_the_meta_device_and_takes_a_step():
    fields = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "tokenizers" / "genie_st_vivit.yaml").model)
    tokenizer_class = MODELS.get(fields.pop("name"))
    record = {"model": tokenizer_class.registry_name, "config": dataclasses.asdict(tokenizer_class.config_class(**fields)), "model_id": "sha256:meta"}
    fields = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "genie" / "lam_genie.yaml").model)
    lam_class = MODELS.get(fields.pop("name"))
    lam_record = {"model": lam_class.registry_name, "config": dataclasses.asdict(lam_class.config_class(**fields)), "model_id": "sha256:meta"}
    fields = OmegaConf.to_container(OmegaConf.load(GENIE).model)
    model_class = MODELS.get(fields.pop("name"))
    with torch.device("meta"):  # about 80 GB of float32 weights: shapes only
        model = model_class(MaskGITDynamicsConfig(**fields | {"tokenizer": record, "latent_action_model": lam_record}))
        assert model.grid == (30, 30) and model.tokenizer.codebook_size == 1024 and len(model.schedule) == 25
        assert model.latent_actions.num_actions == 8
        own = [p.numel() for name, p in model.named_parameters() if not name.startswith(("tokenizer.", "latent_actions."))]
        assert 19e9 < sum(own) < 21e9
        codes = torch.zeros(1, 16, 900, dtype=torch.int64)
        _, masked = draw_mask(1, 16, 900, device="meta")
        loss = model.masked_loss(codes, torch.zeros(1, 15, dtype=torch.int64), masked)
        loss.backward()
    assert loss.shape == () and model.code_head.weight.grad.shape == (1024, 5120)
