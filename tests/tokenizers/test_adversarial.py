"""The adversarial term (reverie.tokenizers.adversarial) and the perceptual term's file handling
(reverie.tokenizers.perceptual): one backward of generator + discriminator gives each player the
gradient of its own loss alone, eq. 7's weight is the ratio of gradient norms, nothing counts
before start_step, and a discriminator trained through the single loss learns."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from reverie.tokenizers.adversarial import (
    AdaptiveWeightError,
    AdversarialConfig,
    AdversarialConfigError,
    AdversarialLoss,
    DiscriminatorInputError,
)
from reverie.tokenizers.perceptual import PerceptualConfig, PerceptualLoss

SIZE = 12  # frame side: the least a 2-layer patch discriminator takes


class LinearDecoder(nn.Module):
    """Latents (B, T, D) -> frames (B, T, 3, SIZE, SIZE) through one linear layer, its last."""

    def __init__(self, latent: int = 6):
        super().__init__()
        self.last = nn.Linear(latent, 3 * SIZE * SIZE, bias=False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return rearrange(self.last(latents), "b t (c h w) -> b t c h w", c=3, h=SIZE)


def adversarial(**overrides) -> AdversarialLoss:
    fields = {"weight": 0.5, "start_step": 10, "discriminator_channels": 8, "discriminator_layers": 2} | overrides
    return AdversarialLoss(AdversarialConfig(**fields))


def setup_float64(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    decoder, loss = LinearDecoder().double(), adversarial(**overrides).double()
    latents = torch.randn(2, 2, 6, dtype=torch.float64)
    real = torch.rand(2, 2, 3, SIZE, SIZE, dtype=torch.float64)
    return decoder, loss, latents, real


def gradients(module: nn.Module) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in module.parameters()]


def zero_grad(*modules: nn.Module) -> None:
    for module in modules:
        module.zero_grad(set_to_none=True)


@pytest.mark.parametrize("discriminator, loss_name", [("2d", "hinge"), ("3d", "non_saturating")])
def test_one_backward_gives_each_player_its_own_gradient(discriminator, loss_name):
    decoder, loss, latents, real = setup_float64(discriminator=discriminator, loss=loss_name)
    reconstructed = decoder(latents)
    terms = loss(real, reconstructed, (reconstructed - real).abs().mean(), decoder.last.weight, step=10)
    (terms["generator"] + terms["discriminator"]).backward()
    combined_decoder, combined_discriminator = gradients(decoder), gradients(loss.discriminator)

    to_input = loss.discriminator_input
    zero_grad(decoder, loss)
    logits_real, logits_fake = loss.discriminator(to_input(real)), loss.discriminator(to_input(decoder(latents).detach()))
    loss.discriminator_loss(logits_real, logits_fake).backward()
    alone_discriminator = gradients(loss.discriminator)
    assert all(g.abs().max() == 0 for g in gradients(decoder))

    zero_grad(decoder, loss)
    (terms["adversarial_weight"] * loss.generator_loss(loss.discriminator(to_input(decoder(latents))))).backward()
    alone_decoder = gradients(decoder)

    assert terms["adversarial_weight"] > 0
    for combined, alone in zip(combined_discriminator, alone_discriminator, strict=True):
        torch.testing.assert_close(combined, alone, rtol=1e-10, atol=1e-12)
    for combined, alone in zip(combined_decoder, alone_decoder, strict=True):
        assert alone.abs().max() > 0
        torch.testing.assert_close(combined, alone, rtol=1e-10, atol=1e-12)


def test_adaptive_weight_is_the_ratio_of_gradient_norms():
    decoder, loss, latents, real = setup_float64(weight=0.5)
    reconstructed = decoder(latents)
    reconstruction_loss = ((reconstructed - real) ** 2).mean()
    terms = loss(real, reconstructed, reconstruction_loss, decoder.last.weight, step=10)

    # By hand through the linear decoder y = W z: dL/dW = sum over (b, t) of dL/dy z^T.
    flat_latents = rearrange(latents, "b t d -> (b t) d")
    residual = rearrange(reconstructed - real, "b t c h w -> (b t) (c h w)").detach()
    reconstruction_gradient = (2 / residual.numel()) * residual.T @ flat_latents
    frames = reconstructed.detach().requires_grad_(True)
    generator_loss = -loss.discriminator(rearrange(frames, "b t c h w -> (b t) c h w")).mean()
    (frames_gradient,) = torch.autograd.grad(generator_loss, frames)
    generator_gradient = rearrange(frames_gradient, "b t c h w -> (b t) (c h w)").T @ flat_latents
    expected = 0.5 * reconstruction_gradient.norm() / (generator_gradient.norm() + 1e-4)

    torch.testing.assert_close(terms["adversarial_weight"], expected, rtol=1e-10, atol=0)
    torch.testing.assert_close(terms["generator"], expected * generator_loss.detach(), rtol=1e-10, atol=0)
    assert not terms["adversarial_weight"].requires_grad

    huge = loss(real, reconstructed, 1e12 * reconstruction_loss, decoder.last.weight, step=10)
    assert huge["adversarial_weight"].item() == pytest.approx(0.5 * 1e4)


def test_terms_are_zero_before_start_step_and_when_off():
    decoder, loss, latents, real = setup_float64(start_step=10)
    reconstructed = decoder(latents)
    before = loss(real, reconstructed, reconstructed.abs().mean(), decoder.last.weight, step=9)
    assert all(value.item() == 0 for value in before.values())
    (before["generator"] + before["discriminator"]).backward()
    assert all(p.grad is not None and p.grad.abs().max() == 0 for p in loss.discriminator.parameters())  # all take part (DDP)

    after = loss(real, reconstructed, reconstructed.abs().mean(), decoder.last.weight, step=10)
    assert after["discriminator"].item() > 0 and after["adversarial_weight"].item() > 0
    off = adversarial(weight=0.0, start_step=0).double()(real, reconstructed, reconstructed.abs().mean(), decoder.last.weight, step=10**6)
    assert all(value.item() == 0 for value in off.values())


def test_no_grad_gives_a_zero_weight():
    decoder, loss, latents, real = setup_float64()
    with torch.no_grad():
        reconstructed = decoder(latents)
        terms = loss(real, reconstructed, reconstructed.abs().mean(), decoder.last.weight, step=10)
    assert terms["adversarial_weight"].item() == 0 and terms["discriminator"].item() > 0


def test_discriminator_learns_through_the_single_loss():
    """Blurry reconstructions of sharp checkerboards: D's hinge loss falls from about 1 while the
    generator trains on the same loss and optimizer."""
    torch.manual_seed(0)
    rows = torch.arange(SIZE)
    checkerboard = ((rows[:, None] // 2 + rows[None, :] // 2) % 2).float()

    def batch() -> torch.Tensor:
        contrast = 0.2 + 0.8 * torch.rand(8, 1, 3, 1, 1)
        return 0.5 + (checkerboard - 0.5) * contrast  # (8, 1, 3, SIZE, SIZE)

    generator = nn.Conv2d(3, 3, kernel_size=3, padding=1)
    loss = adversarial(weight=0.5, start_step=0)
    optimizer = torch.optim.Adam([*generator.parameters(), *loss.parameters()], lr=2e-3, betas=(0.5, 0.9))
    discriminator_losses = []
    for step in range(40):
        real = batch()
        blurred = F.avg_pool2d(rearrange(real, "b t c h w -> (b t) c h w"), 4)
        upsampled = F.interpolate(blurred, scale_factor=4.0, mode="nearest")
        reconstructed = rearrange(generator(upsampled), "(b t) c h w -> b t c h w", t=1)
        reconstruction_loss = (reconstructed - real).abs().mean()
        terms = loss(real, reconstructed, reconstruction_loss, generator.weight, step=step)
        optimizer.zero_grad()
        (reconstruction_loss + terms["generator"] + terms["discriminator"]).backward()
        optimizer.step()
        discriminator_losses.append(terms["discriminator"].item())
    assert discriminator_losses[0] == pytest.approx(1.0, abs=0.1)
    assert sum(discriminator_losses[-10:]) / 10 < 0.8 * discriminator_losses[0], discriminator_losses


def test_bad_inputs_are_named():
    decoder, loss, latents, real = setup_float64(discriminator_layers=3)
    reconstructed = decoder(latents)
    with pytest.raises(DiscriminatorInputError, match="12x12: too small for a 3-layer patch discriminator"):
        loss(real, reconstructed, reconstructed.abs().mean(), decoder.last.weight, step=10)
    with pytest.raises(DiscriminatorInputError, match=r"\(B, T, C, H, W\)"):
        loss(real[:, 0], reconstructed[:, 0], reconstructed.abs().mean(), decoder.last.weight, step=10)
    unrelated = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(AdaptiveWeightError, match="reconstruction_loss does not depend on last_layer"):
        adversarial().double()(real, reconstructed, reconstructed.abs().mean(), unrelated, step=10)
    with pytest.raises(AdversarialConfigError, match="loss='wasserstein': unknown; known: hinge, non_saturating"):
        adversarial(loss="wasserstein")


def test_a_missing_lpips_weights_file_is_named(tmp_path):
    missing = tmp_path / "lpips_vgg.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(f"{missing}: LPIPS weights file not found")):
        PerceptualLoss(PerceptualConfig(lpips_weights=str(missing)))


def test_lpips_weights_without_the_trunk_are_named(tmp_path):
    try:
        import lpips
    except (ImportError, RuntimeError):  # RuntimeError: a torchvision built for another torch
        pytest.skip("lpips with a torchvision built for this torch is not installed")
    heads_only = tmp_path / "heads.pth"
    network = lpips.LPIPS(pretrained=False, net="vgg", pnet_rand=True, verbose=False)
    torch.save({name: value for name, value in network.state_dict().items() if not name.startswith("net.")}, heads_only)
    with pytest.raises(Exception, match=re.escape(f"{heads_only}: no weights for net.") + ".*the trunk"):
        PerceptualLoss(PerceptualConfig(lpips_weights=str(heads_only)))

    whole = tmp_path / "whole.pth"
    torch.save(network.state_dict(), whole)
    perceptual = PerceptualLoss(PerceptualConfig(lpips_weights=str(whole))).train()
    assert not perceptual.network.training and not any(p.requires_grad for p in perceptual.parameters())
    real = torch.rand(1, 2, 3, 32, 32)
    reconstructed = real.flip(-1).requires_grad_(True)
    distance = perceptual(real, reconstructed)
    distance.backward()
    assert distance.item() > 0 and perceptual(real, real).item() == pytest.approx(0.0, abs=1e-6)
    assert reconstructed.grad.abs().max() > 0
