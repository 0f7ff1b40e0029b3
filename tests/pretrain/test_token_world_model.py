"""The autoregressive token world model of IRIS [14]: causality, cache = full pass, sampling,
seeds, the action-free switch, reward and termination heads, bad input named, model folders, the
sliding window, the tiny config trained by `reverie train`, and the real-scale config."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from reverie.nn.model_folder import MODELS, load_model_folder, save_model_folder
from reverie.nn.world_model import ContextError, rollout
from reverie.pretrain.action_tokens import ActionSpaceError
from reverie.pretrain.frozen_tokenizer import TokenizerChoiceError
from reverie.pretrain.token_world_model import TokenWorldModel, TokenWorldModelConfig, TokenWorldModelError, sample_codes
from reverie.shards.clip_tensors import PayloadMismatchError
from tiny_tokenizers import FSQ, per_frame_tokenizer, sliding_square
from training_runs import train_config_briefly

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "world_models" / "iris_tiny.yaml"
CODES = 125  # FSQ levels [5, 5, 5]


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory) -> Path:
    return per_frame_tokenizer(tmp_path_factory.mktemp("fsq") / "model", **FSQ)


def tiny(tokenizer_folder: Path, **fields) -> TokenWorldModel:
    """The model of iris_tiny.yaml on the tiny tokenizer, with `fields` over its YAML's."""
    config = OmegaConf.to_container(OmegaConf.load(TINY).model)
    config.pop("name")
    torch.manual_seed(0)
    return TokenWorldModel(TokenWorldModelConfig(**config | {"tokenizer": str(tokenizer_folder)} | fields))


def square_frames(batch: int = 4, frames: int = 4) -> torch.Tensor:
    """(B, T, 3, 32, 48) in [0, 1]: sliding-square clips of the tiny config's frame size."""
    clips = np.stack([sliding_square(index, frames, 32, 48) for index in range(batch)])
    return torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 255


def random_sequence(model: TokenWorldModel, batch: int = 2, frames: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, CODES, (batch, frames, model.codes_per_frame), generator=generator)
    return codes, torch.randint(0, 2, (batch, frames), generator=generator)


def train(model: TokenWorldModel, batches, steps: int, lr: float = 3e-3) -> list[dict[str, float]]:
    """`steps` AdamW steps, batch i from `batches(i)`; the logged terms of each."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    history = []
    for step in range(steps):
        terms = model.training_losses(batches(step))
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        history.append({name: float(value) for name, value in terms.items()})
    return history


def mean(history, name, part) -> float:
    return float(np.mean([terms[name] for terms in history[part]]))


def test_the_tiny_config_learns_a_fixed_batch_of_clips(tokenizer_folder):
    model = tiny(tokenizer_folder)
    batch = {"frames": square_frames(), "actions": torch.randint(0, 2, (4, 4), generator=torch.Generator().manual_seed(0))}
    history = train(model, lambda step: batch, 50)
    assert set(history[0]) == {"tokens", "loss"}  # no rewards or terminated in the batch: no head terms
    assert mean(history, "loss", slice(-5, None)) < 0.5 * history[0]["loss"]


def test_no_token_sees_a_later_frame(tokenizer_folder):
    model = tiny(tokenizer_folder).double().eval()
    codes, actions = random_sequence(model, frames=4)
    changed_codes, changed_actions = codes.clone(), actions.clone()
    changed_codes[:, 2:] = (codes[:, 2:] + 1) % CODES  # frames 2 and 3
    changed_actions[:, 2:] = 1 - actions[:, 2:]
    hidden, _ = model.transform(model.embed(codes, actions))
    changed, _ = model.transform(model.embed(changed_codes, changed_actions))
    seen = 2 * model.tokens_per_frame  # frames 0 and 1 with their actions; a_1 predicts frame 2's first code
    torch.testing.assert_close(changed[:, :seen], hidden[:, :seen], rtol=0, atol=1e-12)
    assert not torch.allclose(changed[:, seen:], hidden[:, seen:])
    logits, changed_logits = model.code_logits(hidden, 4), model.code_logits(changed, 4)
    predicted_before = 2 * model.codes_per_frame  # the logits of frames 0 and 1 (but z_0^1) and of frame 2's first code
    torch.testing.assert_close(changed_logits[:, :predicted_before], logits[:, :predicted_before], rtol=0, atol=1e-12)


def test_the_cached_pass_token_by_token_equals_the_full_pass(tokenizer_folder):
    model = tiny(tokenizer_folder).double().eval()
    codes, actions = random_sequence(model, frames=3)
    tokens = model.embed(codes, actions[:, :2])
    full, _ = model.transform(tokens)
    cache, outputs = None, []
    for index in range(tokens.shape[1]):
        output, cache = model.transform(tokens[:, index : index + 1], cache)
        outputs.append(output)
    cached = torch.cat(outputs, dim=1)
    torch.testing.assert_close(model.code_logits(cached, 3), model.code_logits(full, 3), rtol=0, atol=1e-10)


def argmax_of_last_frame(model: TokenWorldModel, codes: torch.Tensor, actions: torch.Tensor | None) -> torch.Tensor:
    """The full pass's argmax codes (B, N) for the last of `codes`' frames, given the frames before."""
    hidden, _ = model.transform(model.embed(codes, actions))
    return model.code_logits(hidden, codes.shape[1])[:, -model.codes_per_frame :].argmax(dim=-1)


@pytest.mark.parametrize("actions", [True, False])
def test_greedy_steps_and_the_sliding_window_match_full_passes(tokenizer_folder, actions):
    model = tiny(tokenizer_folder, actions=actions, sampling_temperature=0.0).double().eval()
    model.tokenizer.float()  # the GPT in float64; the FSQ codebook decodes in float32 only
    frames, taken = square_frames(2, 3), torch.tensor([[0, 1, 1], [1, 0, 0]])
    model.start(frames, taken[:, :2] if actions else None)
    for step in range(4):  # from the second step on, the window of max_frames 4 slides
        world = model.step(torch.tensor([step % 2, 1]) if actions else None)
        state = model.rollout_state
        assert world.frame.shape == (2, 3, 32, 48) and state.codes.shape[1] == 4
        window_actions = state.actions if actions else None
        assert torch.equal(state.codes[:, -1], argmax_of_last_frame(model, state.codes, window_actions))
        assert state.cache[0][0].shape[2] == state.codes.shape[1] * model.tokens_per_frame - int(actions)


def test_sampling_at_temperature_0_or_top_k_1_is_the_argmax_and_top_k_keeps_to_the_top():
    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    assert torch.equal(sample_codes(logits, 0.0, 0, generator), logits.argmax(dim=-1))
    assert torch.equal(sample_codes(logits, 1.0, 1, generator), logits.argmax(dim=-1))
    top_three = logits.topk(3, dim=-1).indices
    draws = torch.stack([sample_codes(logits, 2.0, 3, generator) for _ in range(20)], dim=1)  # (64, 20)
    assert (draws[:, :, None] == top_three[:, None, :]).any(dim=-1).all()
    assert len(draws.unique()) > 3 and (draws != logits.argmax(dim=-1, keepdim=True)).any()


def test_the_same_seed_gives_the_same_rollout_and_another_seed_another(tokenizer_folder):
    model = tiny(tokenizer_folder).eval()
    frames, actions = square_frames(2, 2), torch.randint(0, 2, (2, 4), generator=torch.Generator().manual_seed(0))

    def frames_of(seed: int) -> torch.Tensor:
        steps = rollout(model, frames, actions[:, :1], actions[:, 1:], 3, torch.Generator().manual_seed(seed))
        return torch.stack([step.frame for step in steps], dim=1)

    first = frames_of(0)
    assert first.shape == (2, 3, 3, 32, 48)
    assert torch.equal(frames_of(0), first) and not torch.equal(frames_of(1), first)


def test_the_action_free_model_trains_on_video_and_steps_with_none(tokenizer_folder):
    model = tiny(tokenizer_folder, actions=False)
    assert model.tokens_per_frame == model.codes_per_frame and model.action_embedding is None
    batch = {"frames": square_frames(), "has_actions": torch.tensor([False] * 4)}
    history = train(model, lambda step: batch, 30)
    assert mean(history, "tokens", slice(-5, None)) < 0.7 * history[0]["tokens"]
    model.eval().start(square_frames(2, 2), None, torch.Generator().manual_seed(0))
    assert model.step(None).frame.shape == (2, 3, 32, 48)
    with pytest.raises(ContextError, match=r"trained without actions \(actions: false\): step\(None\)"):
        model.step(torch.tensor([0, 1]))


def test_reward_and_termination_heads_learn_rewards_that_depend_on_the_action(tokenizer_folder):
    model = tiny(tokenizer_folder, action_space={"kind": "discrete", "n": 3})
    tokens = model.tokenizer.encode(square_frames())

    def batch(step: int) -> dict:
        actions = torch.randint(0, 3, (4, 4), generator=torch.Generator().manual_seed(step))
        return {"tokens": tokens, "actions": actions, "rewards": (actions - 1).float() * 0.5, "terminated": actions == 2}

    history = train(model, batch, 60)
    assert mean(history, "reward", slice(-5, None)) < 0.3 * history[0]["reward"]
    assert mean(history, "termination", slice(-5, None)) < 0.3 * history[0]["termination"]
    model.eval().start(square_frames(4, 1), None, torch.Generator().manual_seed(0))
    world = model.step(torch.tensor([0, 1, 2, 2]))
    assert torch.equal(world.reward, torch.tensor([-1.0, 0.0, 1.0, 1.0])) and torch.equal(world.terminated, torch.tensor([False, False, True, True]))


def test_token_shards_of_another_tokenizer_are_refused_by_name(tokenizer_folder):
    model = tiny(tokenizer_folder)
    other = {"tokenizer": {"name": "st_vivit_tokenizer", "model_id": "sha256:other", "payload": "tokens"}}
    batch = {"tokens": torch.zeros(1, 4, 4, 6, dtype=torch.int64), "actions": torch.zeros(1, 4, dtype=torch.int64), "meta": [other], "shard": ["episodes-000003.tar"]}
    with pytest.raises(PayloadMismatchError, match="episodes-000003.tar: holds tokens of 'st_vivit_tokenizer' sha256:other"):
        model.training_losses(batch)
    own = {"tokenizer": {"model_id": model.tokenizer.record["model_id"], "payload": "tokens"}}
    assert model.training_losses(batch | {"meta": [own]})["loss"].isfinite()


def test_actions_context_and_frames_that_do_not_fit_are_named(tokenizer_folder):
    model = tiny(tokenizer_folder).eval()
    frames = square_frames(2, 2)
    with pytest.raises(ContextError, match="context of 5 frames: this model takes 1 to 4"):
        model.start(square_frames(2, 5), torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(ActionSpaceError, match=r"context actions: 2 is outside a discrete action space of 2 actions"):
        model.start(frames, torch.tensor([[0], [2]]))
    model.start(frames, torch.tensor([[0], [1]]))
    with pytest.raises(ActionSpaceError, match=r"action of shape \(2, 1\): expected \(2,\) for a discrete action space of 2 actions"):
        model.step(torch.zeros(2, 1, dtype=torch.int64))
    with pytest.raises(ActionSpaceError, match="action of dtype torch.float32: a discrete action space of 2 actions takes integer codes"):
        model.step(torch.zeros(2))
    with pytest.raises(TokenWorldModelError, match=r"codes of shape \(1, 2, 8, 8\): this model takes \(B, T, 4, 6\), the grid of 32x48 frames"):
        model.training_losses({"frames": torch.rand(1, 2, 3, 64, 64), "actions": torch.zeros(1, 2, dtype=torch.int64)})
    with pytest.raises(TokenWorldModelError, match="a window of 5 frames: this model's positions cover max_frames 4"):
        model.training_losses({"tokens": torch.zeros(1, 5, 4, 6, dtype=torch.int64), "actions": torch.zeros(1, 5, dtype=torch.int64)})
    with pytest.raises(TokenWorldModelError, match="a batch without actions .*set model.actions=false"):
        model.training_losses({"frames": square_frames(1, 2)})


def test_continuous_and_multi_discrete_actions_embed_and_a_continuous_tokenizer_is_refused(tokenizer_folder, tmp_path):
    continuous = tiny(tokenizer_folder, action_space={"kind": "continuous", "dim": 2})
    assert continuous.training_losses({"frames": square_frames(1, 3), "actions": torch.randn(1, 3, 2)})["loss"].isfinite()
    keys = tiny(tokenizer_folder, action_space={"kind": "multi_discrete", "nvec": [3, 2]}).eval()
    keys.start(square_frames(1, 2), torch.tensor([[[2, 1]]]))
    assert keys.step(torch.tensor([[1, 0]])).frame.shape == (1, 3, 32, 48)
    with pytest.raises(ActionSpaceError, match=r"action: 2 is outside a multi-discrete action space of nvec \[3, 2\]"):
        keys.step(torch.tensor([[1, 2]]))
    with pytest.raises(ActionSpaceError, match=r"action_space \{'kind': 'box'\}"):
        tiny(tokenizer_folder, action_space={"kind": "box"})
    with pytest.raises(TokenizerChoiceError, match="continuous latents; the token world model predicts codes"):
        tiny(per_frame_tokenizer(tmp_path / "ae"))


def test_a_saved_and_loaded_model_samples_the_same_rollout_without_its_tokenizer_folder(tokenizer_folder, tmp_path):
    tokenizer_copy = per_frame_tokenizer(tmp_path / "tokenizer", **FSQ)
    model = tiny(tokenizer_copy).eval()
    train(model, lambda step: {"frames": square_frames(), "actions": torch.ones(4, 4, dtype=torch.int64)}, 2)
    folder = save_model_folder(model, tmp_path / "world")
    for path in tokenizer_copy.iterdir():
        path.unlink()
    loaded = load_model_folder(folder)
    assert loaded.config.tokenizer == model.config.tokenizer and isinstance(loaded.config.tokenizer, dict)
    frames, actions = square_frames(2, 2), torch.tensor([[1, 0, 1], [0, 0, 1]])
    steps = [rollout(each, frames, actions[:, :1], actions[:, 1:], 2, torch.Generator().manual_seed(3)) for each in (model.eval(), loaded)]
    for original, reloaded in zip(*steps):
        assert torch.equal(original.frame, reloaded.frame) and torch.equal(original.reward, reloaded.reward)


def test_the_real_scale_config_builds_with_its_tokenizer_and_takes_a_step(tmp_path):
    fields = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "tokenizers" / "iris_frame_vq.yaml").model)
    tokenizer_class = MODELS.get(fields.pop("name"))
    tokenizer = save_model_folder(tokenizer_class(tokenizer_class.config_class(**fields)), tmp_path / "iris_frame_vq")
    fields = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "world_models" / "iris_atari.yaml").model)
    model = MODELS.get(fields.pop("name"))(TokenWorldModelConfig(**fields | {"tokenizer": str(tokenizer)}))
    assert model.grid == (4, 4) and model.tokenizer.codebook_size == 512 and model.position_embedding.num_embeddings == 20 * 17
    assert 7e6 < sum(p.numel() for name, p in model.named_parameters() if not name.startswith("tokenizer.")) < 10e6
    generator = torch.Generator().manual_seed(0)
    batch = {
        "frames": torch.rand(1, 20, 3, 64, 64, generator=generator),
        "actions": torch.randint(0, 18, (1, 20), generator=generator),
        "rewards": torch.randn(1, 20, generator=generator),
        "terminated": torch.zeros(1, 20, dtype=torch.bool),
    }
    before = copy.deepcopy(model.code_head.weight)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    terms = model.training_losses(batch)
    terms["loss"].backward()
    optimizer.step()
    assert {"tokens", "reward", "termination", "loss"} == set(terms) and terms["loss"].isfinite()
    assert not torch.equal(model.code_head.weight, before) and model.tokenizer.model.quantizer is not None


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory) -> Path:
    """Shards of 2 recorded CartPole episodes at --size 32 (32 x 48 frames), clips of 8 frames, npy."""
    from reverie.pipelines.record import RecordConfig, run_record

    out = tmp_path_factory.mktemp("cartpole")
    run_record(RecordConfig("CartPole-v1", episodes=2, out=out, size=32, clip_frames=8, clip_format="npy", progress=False))
    return out / "shards"


def test_reverie_train_fits_the_tiny_config_on_recorded_cartpole_episodes(tokenizer_folder, cartpole, tmp_path):
    from reverie.training.export import export_run

    run_dir = train_config_briefly(TINY, tmp_path / "run", f"model.tokenizer={tokenizer_folder}", f"data.shards={cartpole}")
    assert [path.name for path in sorted((run_dir / "checkpoints").glob("step-*.ckpt"))] == ["step-00000006.ckpt"]
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"tokens", "reward", "termination", "loss"} <= {name.removeprefix("train/") for name in header}
    exported = load_model_folder(export_run(run_dir, tmp_path / "model", ema=False))  # the checkpoint holds the tokenizer's record
    assert exported.config.tokenizer["model_id"] == exported.tokenizer.record["model_id"]
    exported.start(square_frames(1, 2), torch.tensor([[1]]), torch.Generator().manual_seed(0))
    assert exported.step(torch.tensor([0])).frame.shape == (1, 3, 32, 48)


def test_it_trains_on_the_token_shards_of_its_tokenizer_and_refuses_another_s(tokenizer_folder, cartpole, tmp_path):
    from reverie.shards.clip_tensors import collate_clips
    from reverie.shards.loader import ClipDataset
    from reverie.tokenizers.latent_shards import TokenizeConfig, run_tokenize

    run_tokenize(TokenizeConfig(model_folder=tokenizer_folder, inputs=[str(cartpole)], out=tmp_path / "tokens", workers=0, progress=False))
    samples = iter(ClipDataset(tmp_path / "tokens" / "shards", window=4, payload="tokens", shuffle_buffer=1))
    batch = collate_clips([next(samples), next(samples)])
    assert batch["tokens"].shape == (2, 4, 4, 6) and "frames" not in batch
    history = train(tiny(tokenizer_folder), lambda step: batch, 20)
    assert {"tokens", "reward", "termination"} <= set(history[0]) and history[-1]["tokens"] < 0.8 * history[0]["tokens"]
    other = tiny(per_frame_tokenizer(tmp_path / "other", bottleneck="fsq", quantizer={"levels": [4, 4, 4]}))
    with pytest.raises(PayloadMismatchError, match=re.escape(batch["shard"][0]) + r": holds tokens of 'causal_video_autoencoder' sha256:"):
        other.training_losses(batch)


def test_sampled_heads_follow_the_heads_distributions_and_the_default_takes_the_likeliest(tokenizer_folder):
    model = tiny(tokenizer_folder)
    with torch.no_grad():
        for head in (model.reward_head, model.termination_head):
            head.weight.zero_()
        model.reward_head.bias.copy_(torch.tensor([0.2, 0.3, 0.5]).log())
        model.termination_head.bias.fill_(float(np.log(0.25 / 0.75)))
    hidden = torch.randn(20_000, model.config.width)
    reward, terminated = model.read_heads(hidden)
    assert bool((reward == 1.0).all()) and not bool(terminated.any())
    model.config.sample_heads = True
    reward, terminated = model.read_heads(hidden, torch.Generator().manual_seed(0))
    frequencies = [float((reward == sign).float().mean()) for sign in (-1.0, 0.0, 1.0)]
    np.testing.assert_allclose(frequencies, [0.2, 0.3, 0.5], atol=0.02)
    assert abs(float(terminated.float().mean()) - 0.25) < 0.02
