"""LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"; not in the
survey) through `peft`: post-training a few low-rank matrices instead of a whole network, e.g. to
fine-tune a post-trained predictor on a user's own robot data.

`add_lora` injects the adapters into a plain `nn.Module` in place (no `PeftModel` wrapper, so the
module keeps its class and methods) and freezes everything else in that module. The state dict
then holds `name.base_layer.weight` and `name.lora_A/B.default.weight` for every adapted layer: a
model that applies the same adapters when it is built loads such a state dict as it is.
"""

from __future__ import annotations

from torch import nn


def add_lora(module: nn.Module, rank: int, alpha: float, dropout: float, targets: list[str]) -> nn.Module:
    """Adapt the linear layers of `module` whose names end in one of `targets`; only adapters train."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as error:
        raise ImportError(f"LoRA needs peft (pip install 'peft>=0.11'): {error}") from error
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
    return inject_adapter_in_model(config, module)
