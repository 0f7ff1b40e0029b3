"""The tokenizers' shared objective: the adversarial switch of both tokenizers, its start step,
and the step that a saved model keeps."""

import pytest
import torch

from reverie.nn.model_folder import load_model_folder, save_model_folder
from reverie.tokenizers.causal_video_autoencoder import CausalVideoAutoencoder, CausalVideoAutoencoderConfig
from reverie.tokenizers.st_vivit import STViViTConfig, STViViTTokenizer
from synthetic_videos import moving_squares

ADVERSARIAL = {"weight": 0.5, "start_step": 3, "discriminator_channels": 8, "discriminator_layers": 2}


def causal_video_autoencoder(**fields):
    config = CausalVideoAutoencoderConfig(channels=8, channel_multipliers=[1, 2], num_res_blocks=1, latent_channels=4,
                                          temporal_compression=4, spatial_compression=8, **fields)  # fmt: skip
    return CausalVideoAutoencoder(config)


def st_vivit(**fields):
    return STViViTTokenizer(STViViTConfig(encoder_width=16, encoder_depth=1, encoder_heads=2, decoder_width=16, decoder_depth=1,
                                          decoder_heads=2, latent_dim=4, codebook_size=16, **fields))  # fmt: skip


@pytest.mark.parametrize("build", [causal_video_autoencoder, st_vivit])
def test_the_adversarial_term_starts_at_its_step_and_trains_the_discriminator(build, tmp_path):
    torch.manual_seed(0)
    model = build(adversarial=ADVERSARIAL).train()
    frames = moving_squares(2, 5, 32)
    before = model.training_losses({"frames": frames})
    assert before["generator"] == 0 and before["adversarial_weight"] == 0  # step 0 < start_step 3
    model.after_optimizer_step(3, 10)
    terms = model.training_losses({"frames": frames})
    assert terms["adversarial_weight"] > 0 and terms["discriminator"] > 0
    reconstruction_only = terms["l1"] * model.config.l1_weight + terms["mse"] * model.config.mse_weight
    assert terms["loss"] > reconstruction_only  # the generator and discriminator terms are in it
    terms["loss"].backward()
    discriminator = model.objective.adversarial.discriminator
    assert all(parameter.grad is not None for parameter in discriminator.parameters())
    # every weight learns; the last bias's hinge gradient, mean(-[D(x) < 1]) + mean([D(x^) > -1]) over
    # equal counts of real and reconstructed patches, cancels to rounding while every logit is within the margin
    assert all(parameter.grad.abs().sum() > 0 for parameter in discriminator.parameters() if parameter.ndim > 1)
    loaded = load_model_folder(save_model_folder(model, tmp_path / "tokenizer"))
    assert int(loaded.objective.step) == 3  # a resumed run keeps the discriminator's schedule


@pytest.mark.parametrize("build", [causal_video_autoencoder, st_vivit])
def test_without_the_switch_the_loss_is_the_reconstruction_and_the_bottleneck(build):
    torch.manual_seed(0)
    model = build().train()
    terms = model.training_losses({"frames": moving_squares(2, 5, 32)})
    assert model.objective.adversarial is None and "generator" not in terms
    bottleneck = sum(value for name, value in terms.items() if name not in ("loss", "l1", "mse"))
    expected = model.config.l1_weight * terms["l1"] + model.config.mse_weight * terms["mse"] + bottleneck
    torch.testing.assert_close(terms["loss"], expected)
