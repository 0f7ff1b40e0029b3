"""What every video tokenizer of reverie minimises beside its bottleneck's own terms: the
reconstruction, and optionally the perceptual and adversarial terms of the Cosmos tokenizers
([25] NVIDIA 2025, Sec. 4) and VQGAN (Esser et al. 2021, eq. 5-7),

    L = w_1 |x^ - x|_1 + w_2 |x^ - x|^2  (+ LPIPS(x^, x))  (+ lambda L_GAN + L_D),

with L_rec the first terms, the adversarial weight lambda from eq. 7 against the decoder's last
layer (`reverie.tokenizers.adversarial`), and L_D the discriminator's loss on the same backward.
The adversarial term is off unless `adversarial.weight > 0`, and zero before its `start_step`; the
perceptual term is on only with a local LPIPS weights file (`perceptual.lpips_weights`). The step
is a saved buffer, so a resumed run keeps the discriminator's schedule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reverie.tokenizers.adversarial import AdversarialConfig, AdversarialLoss
from reverie.tokenizers.perceptual import PerceptualConfig, PerceptualLoss


class TokenizerObjective(nn.Module):
    """The reconstruction, perceptual and adversarial terms of a tokenizer's loss."""

    def __init__(self, l1_weight: float, mse_weight: float, adversarial: dict, perceptual: dict, image_channels: int = 3):
        super().__init__()
        self.l1_weight, self.mse_weight = l1_weight, mse_weight
        adversarial_config, perceptual_config = AdversarialConfig(**adversarial), PerceptualConfig(**perceptual)
        self.adversarial = AdversarialLoss(adversarial_config, image_channels) if adversarial_config.weight > 0 else None
        self.perceptual = PerceptualLoss(perceptual_config) if perceptual_config.lpips_weights else None
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def forward(self, frames: torch.Tensor, reconstruction: torch.Tensor, last_layer: torch.Tensor) -> dict[str, torch.Tensor]:
        """Frames and their reconstruction (B, T, C, H, W) in [0, 1] -> {"loss": the sum, and each term}."""
        l1, mse = F.l1_loss(reconstruction, frames), F.mse_loss(reconstruction, frames)
        reconstruction_loss = self.l1_weight * l1 + self.mse_weight * mse
        terms = {"l1": l1, "mse": mse}
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(frames, reconstruction)
            reconstruction_loss = reconstruction_loss + terms["perceptual"]
        loss = reconstruction_loss
        if self.adversarial is not None:
            terms |= self.adversarial(frames, reconstruction, reconstruction_loss, last_layer, step=int(self.step))
            loss = loss + terms["generator"] + terms["discriminator"]
        return {"loss": loss, **terms}

    def set_step(self, step: int) -> None:
        self.step.fill_(step)
