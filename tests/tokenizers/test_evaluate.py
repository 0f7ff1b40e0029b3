"""`evaluate_tokenizer` on tiny causal video autoencoders and clip shards made here: the report's
figures equal those computed from the model directly, clips that need padding, discrete codes,
and bad input named by its file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reverie.nn.model_folder import load_model_folder, save_model_folder
from reverie.shards.clip_tensors import frames_tensor
from reverie.tokenizers import metrics
from reverie.tokenizers.evaluate import SkippedSampleWarning, TokenizerEvaluationError, evaluate_tokenizer
from reverie.tokenizers.frame_autoencoder import FrameAutoencoder, FrameAutoencoderConfig
from reverie.tokenizers.latents import NotAVideoTokenizerError
from tiny_tokenizers import FSQ, REPORT_FIELDS, clip_sample, clip_shard, sliding_square, tiny_tokenizer, write_shard


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The tiny autoencoder (ae and fsq) and two shards of 3 + 2 clips of 6 frames at 32 x 32."""
    root = tmp_path_factory.mktemp("evaluate")
    shards = [clip_shard(root / "shards" / "000000.tar", 3, frames=6), clip_shard(root / "shards" / "000001.tar", 2, frames=6, first=3)]
    return {"ae": tiny_tokenizer(root / "ae"), "fsq": tiny_tokenizer(root / "fsq", **FSQ), "shards": shards}


def evaluate(model_dir, shards, **options) -> dict:
    return evaluate_tokenizer(model_dir, shards, **{"clip_frames": 5, "batch_size": 2, "device": "cpu", "progress": False} | options)


def fixture_clips(clip_frames: int) -> torch.Tensor:
    """(5, T, 3, 32, 32): the first frames of the fixture's clips, in the order the evaluation reads them."""
    return torch.stack([frames_tensor(sliding_square(index, 6, 32, 32)[:clip_frames]) for index in range(5)])


def test_a_continuous_tokenizer_reports_every_figure_as_computed_from_the_model(folders):
    report = evaluate(folders["ae"], folders["shards"])
    assert set(report) == REPORT_FIELDS
    assert (report["model"], report["discrete"], report["clips"], report["frame_size"]) == ("causal_video_autoencoder", False, 5, [32, 32])
    assert (report["compression"], report["latent_shape"]) == ([4, 8, 8], [4, 2, 4, 4])
    assert report["latent_values_per_pixel"] == pytest.approx(4 * 2 * 4 * 4 / (5 * 32 * 32))
    assert report["bits_per_pixel"] is None and report["codebook_usage"] is None and report["skipped"] == []
    model, frames = load_model_folder(folders["ae"]), fixture_clips(5)
    with torch.inference_mode():
        reconstruction = model(frames)
    assert report["psnr"] == pytest.approx(float(metrics.psnr(reconstruction, frames).mean()), abs=1e-4)
    assert report["ssim"] == pytest.approx(float(metrics.ssim(reconstruction, frames).mean()), abs=1e-5)
    assert report["encode_clips_per_second"] > 0 and report["decode_clips_per_second"] > 0


def test_a_discrete_tokenizer_reports_bits_per_pixel_and_codebook_usage(folders):
    report = evaluate(folders["fsq"], folders["shards"])
    assert (report["discrete"], report["codebook_size"], report["token_shape"]) == (True, 125, [2, 4, 4])
    assert report["bits_per_pixel"] == pytest.approx(math.log2(125) * 2 * 4 * 4 / (5 * 32 * 32))
    model = load_model_folder(folders["fsq"])
    with torch.inference_mode():
        codes = model.tokenize(fixture_clips(5))
    assert (report["codebook_usage"], report["perplexity"]) == pytest.approx(metrics.codebook_usage(codes, 125))
    assert 0 < report["codebook_usage"] <= 1 and 1 <= report["perplexity"] <= 125


def test_a_clip_that_does_not_fit_the_temporal_compression_is_padded_by_the_model(folders):
    """6 frames are not 1 + 4 k: the model pads them to 9, three latent frames; the figures count the 6."""
    report = evaluate(folders["ae"], folders["shards"], clip_frames=6)
    assert report["latent_shape"] == [4, 3, 4, 4]
    assert report["latent_values_per_pixel"] == pytest.approx(4 * 3 * 4 * 4 / (6 * 32 * 32))
    assert math.isfinite(report["psnr"]) and 0 < report["ssim"] < 1


def test_max_clips_and_a_last_batch_that_is_not_full(folders):
    report = evaluate(folders["ae"], folders["shards"], max_clips=3, batch_size=2)
    assert report["clips"] == 3


def test_an_undecodable_sample_is_skipped_and_listed(folders, tmp_path):
    broken = clip_sample("broken", sliding_square(9, 5, 32, 32)) | {"npy": b"not an npy"}
    shard = write_shard(tmp_path / "mixed.tar", [broken, clip_sample("good", sliding_square(1, 5, 32, 32))])
    with pytest.warns(SkippedSampleWarning, match="broken"):
        report = evaluate(folders["ae"], [shard])
    assert report["clips"] == 1 and len(report["skipped"]) == 1 and f"{shard}: sample broken" in report["skipped"][0]


def test_a_model_folder_that_is_not_a_tokenizer_is_named(tmp_path, folders):
    folder = save_model_folder(FrameAutoencoder(FrameAutoencoderConfig(channels=[4], latent_channels=2)), tmp_path / "frames")
    with pytest.raises(NotAVideoTokenizerError, match=rf"{folder}: model 'frame_autoencoder' is not a video tokenizer"):
        evaluate(folder, folders["shards"])


@pytest.mark.parametrize(
    "samples, reason",
    [
        ([], "no clips"),
        ([clip_sample("short", sliding_square(0, 3, 32, 32))], "sample short: has 3 frames, fewer than the 5 asked for"),
        ([clip_sample("odd", sliding_square(0, 5, 36, 36))], "sample odd: 5 frames of 36x36: height and width must divide by the spatial compression 8"),
        ([clip_sample("a", sliding_square(0, 5, 32, 32)), clip_sample("b", sliding_square(1, 5, 48, 32))], "sample b: frames of 48x32, the clips before are 32x32"),
        ([{"__key__": "latent", "latents.npy": np.zeros((2, 4, 4, 4), np.float32)}], "sample latent: holds latents or tokens, not frames"),
    ],
    ids=["empty", "short", "size", "mixed-sizes", "latents"],
)
def test_bad_shards_are_errors_naming_the_shard_and_the_reason(folders, tmp_path, samples, reason):
    shard = write_shard(tmp_path / "bad.tar", samples)
    with pytest.raises(TokenizerEvaluationError) as error:
        evaluate(folders["ae"], [shard])
    assert str(error.value).startswith(str(shard)) and reason in str(error.value)


def test_missing_and_unreadable_shards_are_named(folders, tmp_path):
    with pytest.raises(TokenizerEvaluationError, match=f"{tmp_path / 'absent.tar'}: no such shard file"):
        evaluate(folders["ae"], [tmp_path / "absent.tar"])
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"\x00\x01 this is not a tar archive" * 40)
    with pytest.raises(TokenizerEvaluationError, match=f"{garbage}: cannot be read as a tar shard"):
        evaluate(folders["ae"], [garbage])
