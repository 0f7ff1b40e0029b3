"""The tokenizer inside a world model: recorded in place of its path, rebuilt from the record, frozen,
per-frame only, and strict about whose codes a batch brings."""

import pytest
import torch

from reverie.pretrain.frozen_tokenizer import FrozenTokenizer, TokenizerChoiceError
from reverie.shards.clip_tensors import PayloadMismatchError
from tiny_tokenizers import FSQ, per_frame_tokenizer, tiny_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def discrete_folder(tmp_path_factory):
    return per_frame_tokenizer(tmp_path_factory.mktemp("fsq") / "model", **FSQ)


def frames(batch=2, count=3, seed=0):
    return torch.rand(batch, count, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_the_record_rebuilds_the_tokenizer_without_its_folder(discrete_folder):
    loaded = FrozenTokenizer(discrete_folder)
    assert loaded.record["model"] == "causal_video_autoencoder" and loaded.record["model_id"].startswith("sha256:")
    rebuilt = FrozenTokenizer(loaded.record)
    differs = not torch.equal(rebuilt.encode(frames()), loaded.encode(frames()))  # fresh weights until the state dict arrives
    rebuilt.load_state_dict(loaded.state_dict())
    assert differs and torch.equal(rebuilt.encode(frames()), loaded.encode(frames()))


def test_codes_are_per_frame_and_decode_to_frames(discrete_folder):
    tokenizer = FrozenTokenizer(discrete_folder)
    codes = tokenizer.encode(frames(count=3))
    assert codes.shape == (2, 3, *tokenizer.grid(32, 32)) and codes.dtype == torch.int64 and int(codes.max()) < tokenizer.codebook_size
    assert tokenizer.decode(codes).shape == (2, 3, 3, 32, 32)


def test_it_stays_frozen_inside_a_training_model(discrete_folder):
    tokenizer = FrozenTokenizer(discrete_folder).train()
    assert not tokenizer.model.training and not any(p.requires_grad for p in tokenizer.parameters())


def test_a_tokenizer_that_compresses_time_is_refused(tmp_path):
    with pytest.raises(TokenizerChoiceError, match="compresses time 4x"):
        FrozenTokenizer(tiny_tokenizer(tmp_path / "causal"))


def test_a_record_without_its_fields_is_named():
    with pytest.raises(TokenizerChoiceError, match="lacks config, model_id"):
        FrozenTokenizer({"model": "causal_video_autoencoder"})


def test_a_batch_brings_its_own_codes_or_frames_to_encode(discrete_folder):
    tokenizer = FrozenTokenizer(discrete_folder)
    own = {"tokenizer": {"model_id": tokenizer.record["model_id"], "payload": "tokens"}}
    tokens = torch.zeros(2, 3, 4, 4, dtype=torch.int64)
    assert tokenizer.codes_of({"tokens": tokens, "meta": [own, own], "shard": ["a.tar", "b.tar"]}) is tokens
    assert torch.equal(tokenizer.codes_of({"frames": frames(), "meta": [{}, {}]}), tokenizer.encode(frames()))


def test_codes_of_another_tokenizer_name_their_shard(discrete_folder):
    tokenizer = FrozenTokenizer(discrete_folder)
    other = {"tokenizer": {"name": "st_vivit_tokenizer", "model_id": "sha256:other", "payload": "tokens"}}
    with pytest.raises(PayloadMismatchError, match="b.tar: holds tokens of 'st_vivit_tokenizer' sha256:other"):
        tokenizer.codes_of({"tokens": torch.zeros(1, 3, 4, 4, dtype=torch.int64), "meta": [other], "shard": ["b.tar"]})
    with pytest.raises(PayloadMismatchError, match="neither frames nor tokens"):
        tokenizer.codes_of({"actions": torch.zeros(1, 3)})
