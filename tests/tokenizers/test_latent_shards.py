"""Latent shards (`reverie.tokenizers.latent_shards`, `reverie.tokenizers.latents`): CartPole clips
recorded here, tokenized by tiny untrained tokenizers (the causal video autoencoder, continuous and
FSQ, and ST-ViViT), read back by the shard loader and decoded; token dtypes; windows of latent
frames and the per-frame arrays beside them; a clip that does not fit s_T; kill -9 and resume;
refusals that name the file; bad clips and a broken tar."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from reverie.nn.model_folder import MODELS, save_model_folder
from reverie.pipelines.record import RecordConfig, run_record
from reverie.shards.clip_tensors import PayloadMismatchError
from reverie.shards.episodes import ARRAY_MEMBERS, Episode, episode_samples
from reverie.shards.loader import ClipDataset
from reverie.shards.manifest import read_manifest
from reverie.shards.writer import ShardWriter
from reverie.tokenizers import decode
from reverie.tokenizers.latent_shards import LatentFolderError, TokenizeConfig, TokenizeInputError, run_tokenize
from reverie.tokenizers.latents import LatentShapeError, NotAVideoTokenizerError, model_identity, token_dtype, video_tokenizer

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "tokenizers"
TOKENIZERS = {  # name -> (YAML, fields over it)
    "ae": ("causal_video_ae_tiny.yaml", {}),
    "fsq": ("causal_video_ae_tiny.yaml", {"bottleneck": "fsq", "quantizer": {"levels": [5, 5, 5, 5]}}),  # 625 codes
    "vivit": ("st_vivit_tiny.yaml", {}),  # 64 codes, no temporal compression
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def saved_tokenizer(folder: Path, yaml: str, **fields) -> Path:
    config = OmegaConf.to_container(OmegaConf.load(CONFIGS / yaml).model)
    model_class = MODELS.get(config.pop("name"))
    torch.manual_seed(0)
    return save_model_folder(model_class(model_class.config_class(**config | fields)), folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: saved_tokenizer(root / name, yaml, **fields) for name, (yaml, fields) in TOKENIZERS.items()}


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """`reverie record CartPole-v1` at 32 px (32 x 48 frames): clips of 9 = 1 + 2 s_T frames, npy."""
    out = tmp_path_factory.mktemp("recording")
    config = RecordConfig("CartPole-v1", episodes=3, out=out, size=32, clip_frames=9, stride=6, clip_format="npy", max_steps=24)
    run_record(RecordConfig(**vars(config) | {"shard_max_count": 3, "progress": False}))
    return out / "shards"


def tokenize(model: Path, inputs: list, out: Path, **settings) -> list[dict]:
    settings = {"workers": 0, "batch_size": 1, "progress": False} | settings
    return run_tokenize(TokenizeConfig(model_folder=model, inputs=[str(i) for i in inputs], out=out, **settings))


@pytest.fixture(scope="module")
def latent_folders(models, recording, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("latents")
    for name, model in models.items():
        tokenize(model, [recording], root / name, shard_max_count=2)
    return {name: root / name for name in models}


def samples(source, **expect) -> dict[str, dict]:
    """Every sample of a shard folder, whole clips, by key."""
    return {sample["key"]: sample for sample in ClipDataset(source, shuffle_buffer=1, **expect)}


def tar_members(folder: Path) -> dict[str, dict[str, bytes]]:
    """shard name -> member name -> bytes, for every finished shard in folder/shards."""
    contents = {}
    for shard in sorted((folder / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            contents[shard.name] = {member.name: tar.extractfile(member).read() for member in tar}
    return contents


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_tokenize_then_load_then_decode_keeps_shapes_and_actions(models, recording, latent_folders, name):
    model = video_tokenizer(models[name])
    source = samples(recording)
    latent = samples(latent_folders[name], payload="tokens" if model.discrete else "latents", tokenizer=model_identity(models[name]))
    assert sorted(latent) == sorted(source) and len(source) >= 4
    for key, sample in latent.items():
        clip = source[key]
        frames, _, height, width = clip["frames"].shape
        channels, latent_frames, h, w = model.latent_shape(frames, height, width)
        expected = torch.from_numpy(np.load(io.BytesIO(encoded_member(latent_folders[name], key, model.discrete))))
        if model.discrete:
            assert sample["tokens"].shape == (latent_frames, h, w) and sample["tokens"].dtype == torch.int64
            assert torch.equal(sample["tokens"], model.tokenize(clip["frames"][None])[0])
            payload = sample["tokens"]
        else:
            assert sample["latents"].shape == (latent_frames, channels, h, w) and sample["latents"].dtype == torch.float32
            with torch.inference_mode():
                own = model.encode(clip["frames"][None])[0].transpose(0, 1)
            assert torch.equal(sample["latents"], own.half().float()) and torch.equal(sample["latents"], expected.float())
            payload = sample["latents"]
        for array in ARRAY_MEMBERS:
            assert torch.equal(sample[array], clip[array]), array
        fields = sample["meta"]["tokenizer"]
        assert fields["compression"] == list(model.compression) and fields["frames"] == frames == 9
        assert fields["fitted_frames"] == 9 and fields["latent_shape"] == list(payload.shape)
        assert fields["source_shard"] == clip["shard"] and fields["source_key"] == key
        assert sample["meta"] | {"tokenizer": None} == clip["meta"] | {"tokenizer": None}  # the clip's JSON, extended
        assert decode(models[name], payload).shape == clip["frames"].shape
        assert decode(model, payload[None]).shape == (1, *clip["frames"].shape)


def encoded_member(folder: Path, key: str, discrete: bool) -> bytes:
    member = f"{key}.{'tokens' if discrete else 'latents'}.npy"
    return next(members[member] for members in tar_members(folder).values() if member in members)


@pytest.mark.parametrize("codebook_size, dtype", [(2, np.uint8), (256, np.uint8), (257, np.uint16), (64000, np.uint16), (65537, np.uint32), (2**18, np.uint32)])
def test_the_token_dtype_is_the_smallest_that_fits(codebook_size, dtype):
    assert token_dtype(codebook_size) == dtype


def test_stored_dtypes_are_float16_latents_and_the_smallest_token_dtype(models, latent_folders):
    stored = {}
    for name, folder in latent_folders.items():
        members = next(iter(tar_members(folder).values()))
        payload = next(value for member, value in members.items() if member.endswith(("latents.npy", "tokens.npy")))
        stored[name] = np.load(io.BytesIO(payload)).dtype
    assert stored == {"ae": np.float16, "fsq": np.uint16, "vivit": np.uint8}  # 625 and 64 codes


@pytest.mark.parametrize("name, window, frames_per_window", [("ae", 2, 5), ("fsq", 1, 1), ("vivit", 4, 4)])
def test_a_window_of_latent_frames_carries_the_per_frame_arrays_it_spans(recording, latent_folders, name, window, frames_per_window):
    """s_T = 4: latent frames j .. j + w - 1 come with frames 4j .. 4(j + w - 1); s_T = 1: one to one."""
    source, whole = samples(recording), samples(latent_folders[name])
    stride = 1 if name == "vivit" else 4
    starts = set()
    for sample in ClipDataset(latent_folders[name], window=window, seed=3, shuffle_buffer=1):
        start, payload = sample["window_start"], "tokens" if "tokens" in sample else "latents"
        assert torch.equal(sample[payload], whole[sample["key"]][payload][start : start + window])
        for array in ARRAY_MEMBERS:
            assert torch.equal(sample[array], source[sample["key"]][array][start * stride : start * stride + frames_per_window])
        starts.add(start)
    assert len(starts) > 1


def test_a_clip_that_does_not_fit_is_padded_and_its_frame_count_kept(models, tmp_path):
    """7 frames at s_T 4: the tokenizer encodes 9 (the last frame twice more), 3 latent frames;
    the per-frame arrays keep 7 entries, decode gives 9 frames or, asked, the clip's 7."""
    steps = np.arange(7)
    frames = np.broadcast_to((steps * 30).astype(np.uint8)[:, None, None, None], (7, 32, 32, 3)).copy()
    episode = Episode(frames, steps.astype(np.int64), steps * 0.5, steps == 6, np.zeros(7, bool), meta={"episode": 0})
    writer = ShardWriter(tmp_path / "clips")
    for sample in episode_samples(episode, "odd", 7, None, 8.0, "npy"):
        writer.write(sample)
    writer.finalize()
    tokenize(models["ae"], [tmp_path / "clips"], tmp_path / "latents")
    (sample,) = samples(tmp_path / "latents").values()
    fields = sample["meta"]["tokenizer"]
    assert (fields["frames"], fields["fitted_frames"], sample["latents"].shape[0]) == (7, 9, 3)
    assert torch.equal(sample["actions"], torch.arange(7)) and sample["rewards"].shape == (7,)
    assert decode(models["ae"], sample["latents"]).shape == (9, 3, 32, 32)
    assert decode(models["ae"], sample["latents"], frames=7).shape == (7, 3, 32, 32)
    windows = list(ClipDataset(tmp_path / "latents", window=2, seed=0))  # frames 0..4 only: 4..8 would pass frame 6
    assert [sample["window_start"] for sample in windows] == [0] and windows[0]["actions"].tolist() == [0, 1, 2, 3, 4]


def synthetic_clip_shards(folder: Path, episodes: int, per_shard: int) -> Path:
    """Episodes of 36 random frames (32 x 32) with actions and states, 4 clips of 9 frames each."""
    rng = np.random.default_rng(0)
    writer = ShardWriter(folder, max_count=per_shard)
    for index in range(episodes):
        steps = np.arange(36)
        frames = rng.integers(0, 256, (36, 32, 32, 3), dtype=np.uint8)
        actions = rng.normal(size=(36, 2)).astype(np.float32)
        episode = Episode(frames, actions, steps * 1.0, steps == 35, np.zeros(36, bool), rng.normal(size=(36, 3)).astype(np.float32), {"episode": index})
        for sample in episode_samples(episode, f"ep{index:03d}", 9, None, 8.0, "npy"):
            writer.write(sample)
    writer.finalize()
    return folder


def test_kill_9_during_tokenize_then_rerun_gives_the_same_latent_shards(models, tmp_path):
    inputs = synthetic_clip_shards(tmp_path / "clips", episodes=16, per_shard=16)  # 64 clips in 4 shards
    settings = ["--workers", "1", "--batch-size", "2", "--shard-size", "2", "--no-progress"]
    command = [sys.executable, "-m", "reverie.cli.main", "tokenize", str(models["ae"]), str(inputs), *settings]
    tokenize(models["ae"], [inputs], tmp_path / "whole", workers=1, batch_size=2, shard_max_count=2)
    killed, env = tmp_path / "killed", os.environ | {"OMP_NUM_THREADS": "1"}
    kills_mid_run = 0
    for _ in range(2):
        finished_before = len(list((killed / "shards").glob("*.tar")))
        process = subprocess.Popen([*command, "--out", str(killed)], start_new_session=True, stderr=subprocess.DEVNULL, env=env)
        while process.poll() is None and len(list((killed / "shards").glob("*.tar"))) <= finished_before:
            time.sleep(0.002)
        if process.poll() is not None:
            break
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        kills_mid_run += len(read_manifest(killed / "manifest.jsonl")) < 4
    assert kills_mid_run >= 1
    assert 0 < len(list((killed / "shards").glob("*.tar"))) < 32
    tokenize(models["ae"], [inputs], killed, workers=1, batch_size=2, shard_max_count=2)
    assert tar_members(killed) == tar_members(tmp_path / "whole")  # the same shards, members and bytes
    assert read_manifest(killed / "manifest.jsonl") == read_manifest(tmp_path / "whole" / "manifest.jsonl")
    assert not list((killed / "shards").glob("*.tmp"))


def test_a_shard_of_another_tokenizer_or_of_raw_frames_is_refused_naming_the_file(models, recording, latent_folders):
    ae_shard = sorted((latent_folders["ae"] / "shards").glob("*.tar"))[0]
    cases = [
        (ClipDataset(latent_folders["ae"], tokenizer=model_identity(models["fsq"])), f"{latent_folders['ae']}/shards/0000"),
        (ClipDataset(recording, tokenizer=model_identity(models["ae"])), f"{recording}/0000"),
        (ClipDataset(recording, payload="latents"), f"{recording}/0000"),
        (ClipDataset(latent_folders["ae"], payload="frames"), f"{latent_folders['ae']}/shards/0000"),
        (ClipDataset(latent_folders["fsq"], payload="latents"), f"{latent_folders['fsq']}/shards/0000"),
    ]
    for dataset, named in cases:
        with pytest.raises(PayloadMismatchError, match=named):
            next(iter(dataset))  # skip_bad is on: a wrong dataset is not a bad sample
    with pytest.raises(TokenizeInputError, match=f"{ae_shard}: a latent shard"):
        tokenize(models["fsq"], [ae_shard], latent_folders["ae"].parent / "never")
    assert not (latent_folders["ae"].parent / "never").exists()


def test_another_model_into_a_folder_of_latents_is_refused(models, recording, latent_folders):
    before = tar_members(latent_folders["ae"]), (latent_folders["ae"] / "tokenize.json").read_text()
    with pytest.raises(LatentFolderError, match=f"{latent_folders['ae']} holds latents of causal_video_autoencoder"):
        tokenize(models["fsq"], [recording], latent_folders["ae"])
    assert (tar_members(latent_folders["ae"]), (latent_folders["ae"] / "tokenize.json").read_text()) == before


def test_the_per_frame_autoencoder_is_not_a_video_tokenizer(recording, tmp_path):
    model_class = MODELS.get("frame_autoencoder")
    folder = save_model_folder(model_class(model_class.config_class(channels=[8], latent_channels=2)), tmp_path / "frame_ae")
    with pytest.raises(NotAVideoTokenizerError, match=f"{folder}: model 'frame_autoencoder' is not a video tokenizer"):
        tokenize(folder, [recording], tmp_path / "out")
    with pytest.raises(NotAVideoTokenizerError):
        decode(folder, torch.zeros(3, 2, 4, 4))
    assert not (tmp_path / "out").exists()


def test_decode_names_frames_passed_for_latents_and_codes_of_the_wrong_kind(models):
    with pytest.raises(LatentShapeError, match=r"latents of shape \(9, 3, 32, 48\).*frames, not latents"):
        decode(models["ae"], torch.rand(9, 3, 32, 48))
    with pytest.raises(LatentShapeError, match="integer codes .* for a continuous tokenizer"):
        decode(models["ae"], torch.zeros(3, 4, 6, dtype=torch.int64))
    with pytest.raises(LatentShapeError, match="outside the codebook 0..624"):
        decode(models["fsq"], torch.full((3, 4, 6), 700))


def test_bad_clips_cost_themselves_and_a_broken_tar_is_marked_failed(models, recording, tmp_path):
    good = np.zeros((9, 32, 32, 3), np.uint8)
    clips = tmp_path / "clips"
    writer = ShardWriter(clips, prefix="mixed-")
    writer.write({"__key__": "good", "npy": good, "json": {"frames": 9, "height": 32, "width": 32}})
    writer.write({"__key__": "lying", "npy": good.tobytes()[:100], "json": {}})
    writer.write({"__key__": "odd-size", "npy": np.zeros((9, 30, 30, 3), np.uint8), "json": {}})
    writer.finalize()
    first, second = sorted(recording.glob("*.tar"))[:2]
    shutil.copy(first, clips / "copy.tar")  # the same keys again
    payload = second.read_bytes()
    (clips / "cut.tar").write_bytes(payload[: len(payload) // 2])
    lines = {Path(line["path"]).name: line for line in tokenize(models["ae"], [first, *sorted(clips.glob("*.tar"))], tmp_path / "out")}
    mixed = lines["mixed-000000.tar"]
    assert (mixed["status"], mixed["clips"], mixed["dropped"]) == ("ok", 1, {"undecodable": 1, "unencodable": 1, "key_taken": 0})
    assert mixed["errors"][0].startswith("lying: npy") and mixed["errors"][1].startswith("odd-size: 9 frames of 30x30")
    copy, cut = lines["copy.tar"], lines["cut.tar"]
    assert copy["status"] == "ok" and copy["clips"] == 0 and copy["dropped"]["key_taken"] == lines[first.name]["clips"] == 3
    assert cut["status"] == "failed" and cut["reason"].startswith("the tar breaks off after") and cut["clips"] >= 1
    landed = set(samples(tmp_path / "out"))
    assert landed >= set(samples((str(first),))) | {"good"} and len(landed) == 3 + 1 + cut["clips"]


def test_latents_that_do_not_line_up_with_their_frames_at_s_t_are_skipped_naming_the_shard(tmp_path):
    meta = {"tokenizer": {"compression": [4, 8, 8], "frames": 9}}
    steps = np.arange(9)
    good = {"__key__": "good", "latents.npy": np.zeros((3, 4, 2, 2), np.float16), "actions.npy": steps, "json": meta}
    short = good | {"__key__": "short", "actions.npy": steps[:5]}  # 5 frames give 2 latent frames, not 3
    writer = ShardWriter(tmp_path)
    for sample in (good, short):
        writer.write(sample)
    writer.finalize()
    with pytest.warns(UserWarning, match=r"000000.tar: sample short: arrays are not aligned in time at s_T 4"):
        yielded = list(ClipDataset(tmp_path, shuffle_buffer=1))  # the bad one skipped, the good one again in its place
    assert [sample["key"] for sample in yielded] == ["good", "good"]
    assert yielded[0]["latents"].dtype == torch.float32 and yielded[0]["actions"].shape == (9,)
