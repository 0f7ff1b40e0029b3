"""IRIS's discrete autoencoder: each frame's codes depend on that frame alone, codes decode to the
reconstruction, a world model takes it as its frozen tokenizer and decodes only the last frame,
and its loss falls on a frame set it can learn."""

from __future__ import annotations

import dataclasses

import torch

from reverie.pretrain.frozen_tokenizer import FrozenTokenizer
from reverie.tokenizers.discrete_frame_autoencoder import DiscreteFrameAutoencoder, DiscreteFrameAutoencoderConfig
from reverie.tokenizers.latents import video_tokenizer

TINY = DiscreteFrameAutoencoderConfig(channels=[8, 16], latent_channels=16, codebook_size=32)


def tiny(seed: int = 0) -> DiscreteFrameAutoencoder:
    torch.manual_seed(seed)
    return DiscreteFrameAutoencoder(TINY).eval()


def test_each_frame_is_coded_alone():
    model = tiny()
    clip = torch.rand(2, 5, 3, 16, 16)
    codes = model.tokenize(clip)
    assert codes.shape == (2, 5, 4, 4) and codes.dtype == torch.int64
    assert torch.equal(model.tokenize(clip[:, 2:3]), codes[:, 2:3])
    shuffled = clip[:, [4, 0, 3, 1, 2]]
    assert torch.equal(model.tokenize(shuffled), codes[:, [4, 0, 3, 1, 2]])


def test_codes_decode_to_the_reconstruction_and_shapes_are_declared():
    model = tiny(1)
    clip = torch.rand(1, 3, 3, 16, 16)
    torch.testing.assert_close(model.decode_indices(model.tokenize(clip)), model(clip))
    assert model.latent_shape(3, 16, 16) == (16, 3, 4, 4) and tuple(model.encode(clip).shape) == (1, 16, 3, 4, 4)
    assert model.compression == (1, 4, 4) and video_tokenizer(model) is model


def test_a_world_model_decodes_only_the_last_frame():
    model = tiny(2)
    record = {"model": model.registry_name, "config": dataclasses.asdict(model.config), "model_id": "test"}
    frozen = FrozenTokenizer(record)
    frozen.model.load_state_dict(model.state_dict())
    codes = model.tokenize(torch.rand(2, 4, 3, 16, 16))
    torch.testing.assert_close(frozen.decode_last(codes), model.decode_indices(codes[:, -1:])[:, 0])


def test_loss_falls_on_frames_it_can_learn():
    torch.manual_seed(3)
    model = DiscreteFrameAutoencoder(TINY).train()
    squares = torch.zeros(16, 1, 3, 16, 16)
    for index in range(16):  # a bright 4 x 4 square at one of 16 places
        row, column = divmod(index, 4)
        squares[index, 0, :, 4 * row : 4 * row + 4, 4 * column : 4 * column + 4] = 1.0
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(150):
        loss = model.training_losses({"frames": squares})["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
