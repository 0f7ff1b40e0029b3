"""`reverie evaluate tokenizer MODEL_DIR SHARDS... --json FILE` on recorded CartPole shards (48 x 32
frames, clips of 9) and the tiny causal video autoencoder, continuous and FSQ; bad input exits 1
with the file named and no report written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from reverie.cli.main import main
from reverie.pipelines.record import RecordConfig, run_record
from tiny_tokenizers import FSQ, REPORT_FIELDS, clip_shard, tiny_tokenizer


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """2 CartPole episodes of 18 steps in clips of 9 frames, 32 px high: 4 clips in 2 shards."""
    out = tmp_path_factory.mktemp("recorded") / "cartpole"
    run_record(RecordConfig("CartPole-v1", episodes=2, out=out, size=32, clip_frames=9, clip_format="npy", max_steps=18, shard_max_count=2, progress=False))
    return out / "shards"


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    return {"ae": tiny_tokenizer(root / "ae"), "fsq": tiny_tokenizer(root / "fsq", **FSQ)}


def evaluate(model_dir: Path, shards, report: Path, *options: str) -> int:
    shards = [str(shard) for shard in (shards if isinstance(shards, list) else [shards])]
    return main(["evaluate", "tokenizer", str(model_dir), *shards, "--json", str(report), "--device", "cpu", *options])


def test_the_report_of_a_continuous_tokenizer_has_every_field(recorded, tokenizers, tmp_path, capsys):
    report_file = tmp_path / "reports" / "ae.json"
    assert evaluate(tokenizers["ae"], recorded, report_file, "--clip-frames", "9", "--batch-size", "3") == 0
    report = json.loads(report_file.read_text())
    assert set(report) == REPORT_FIELDS
    assert (report["clips"], report["clip_frames"], report["frame_size"], report["latent_shape"]) == (4, 9, [32, 48], [4, 3, 4, 6])
    assert report["shards"] == sorted(str(path) for path in recorded.glob("*.tar")) and len(report["shards"]) == 2
    assert math.isfinite(report["psnr"]) and -1 < report["ssim"] < 1 and report["bits_per_pixel"] is None
    assert [path.name for path in report_file.parent.iterdir()] == ["ae.json"]  # written whole, no temporary left
    assert str(report_file) in capsys.readouterr().out


def test_a_discrete_tokenizer_reports_bits_per_pixel_and_usage(recorded, tokenizers, tmp_path):
    report_file = tmp_path / "fsq.json"
    report_file.write_text("an older report")
    assert evaluate(tokenizers["fsq"], recorded, report_file, "--clip-frames", "5", "--max-clips", "3") == 0
    report = json.loads(report_file.read_text())
    assert (report["clips"], report["codebook_size"], report["token_shape"]) == (3, 125, [2, 4, 6])
    assert report["bits_per_pixel"] == pytest.approx(math.log2(125) * 2 * 4 * 6 / (5 * 32 * 48))
    assert 0 < report["codebook_usage"] <= 1 and report["perplexity"] >= 1


def test_a_clip_shorter_than_asked_exits_1_naming_the_shard(recorded, tokenizers, tmp_path, capsys):
    report_file = tmp_path / "short.json"
    assert evaluate(tokenizers["ae"], recorded, report_file, "--clip-frames", "17") == 1
    error = capsys.readouterr().err
    assert error.startswith(f"reverie evaluate tokenizer: {recorded}/") and "has 9 frames, fewer than the 17 asked for" in error
    assert not report_file.exists()


def test_a_folder_that_is_not_a_model_folder_exits_1_naming_it(tokenizers, tmp_path, capsys):
    shard = clip_shard(tmp_path / "clips.tar", 2)
    assert evaluate(tmp_path / "nowhere", shard, tmp_path / "report.json", "--clip-frames", "5") == 1
    assert f"{tmp_path / 'nowhere'}: not a model folder" in capsys.readouterr().err
    assert not (tmp_path / "report.json").exists()


def test_help_names_the_tokenizer_kind(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "tokenizer" in capsys.readouterr().out
