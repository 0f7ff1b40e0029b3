"""`add_lora`: peft LoRA adapters injected in place into a plain module. Only the adapters train,
the output is the base network's until a step is taken, the update is W x + (alpha / r) B A x, and
targets match layer names by their last parts. LoRA inside V-JEPA 2-AC is in `test_ac_predictor.py`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reverie.posttrain.lora import add_lora

RANK, ALPHA = 2, 8.0


class TinyBlock(nn.Module):
    """A stand-in with layers named as attention and MLP blocks name theirs."""

    def __init__(self, width: int = 6):
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.attn = nn.Module()
        self.attn.proj = nn.Linear(3 * width, width)
        self.out_proj = nn.Linear(3 * width, width)  # ends in "proj" but not in ".proj"
        self.head = nn.Linear(width, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, width) -> (B, 2)
        mixed = self.qkv(tokens)
        return self.head(torch.tanh(self.attn.proj(mixed) + self.out_proj(mixed)))

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.qkv(tokens)


def adapted(seed: int = 0) -> TinyBlock:
    torch.manual_seed(seed)
    return add_lora(TinyBlock(), rank=RANK, alpha=ALPHA, dropout=0.0, targets=["qkv", "proj"])


def tokens(batch: int = 5) -> torch.Tensor:
    return torch.randn(batch, 6, generator=torch.Generator().manual_seed(1))


def test_adapters_go_into_the_module_itself_which_keeps_its_class_and_methods():
    torch.manual_seed(0)
    block = TinyBlock()
    result = add_lora(block, rank=RANK, alpha=ALPHA, dropout=0.0, targets=["qkv"])
    assert result is block and type(result) is TinyBlock
    assert result.features(tokens()).shape == (5, 18)


def test_targets_match_the_last_parts_of_layer_names():
    keys = set(adapted().state_dict())
    for name in ("qkv", "attn.proj"):
        assert {f"{name}.base_layer.weight", f"{name}.lora_A.default.weight", f"{name}.lora_B.default.weight"} <= keys
    assert {"out_proj.weight", "head.weight"} <= keys  # not adapted: plain Linear keys
    assert not any(key.startswith(("out_proj.lora", "head.lora")) for key in keys)


def test_only_the_adapters_train_with_rank_r_matrices():
    block = adapted()
    trainable = {name: parameter.shape for name, parameter in block.named_parameters() if parameter.requires_grad}
    assert trainable == {
        "qkv.lora_A.default.weight": (RANK, 6),
        "qkv.lora_B.default.weight": (18, RANK),
        "attn.proj.lora_A.default.weight": (RANK, 18),
        "attn.proj.lora_B.default.weight": (6, RANK),
    }
    assert not any(parameter.requires_grad for name, parameter in block.named_parameters() if "lora_" not in name)


def test_the_output_is_the_base_networks_until_a_step_changes_it():
    torch.manual_seed(0)
    base = TinyBlock()
    block = adapted(seed=0)  # the same base weights: the same seed
    inputs = tokens()
    torch.testing.assert_close(block(inputs), base(inputs))  # B starts at zero
    frozen = {name: parameter.clone() for name, parameter in block.named_parameters() if not parameter.requires_grad}
    optimizer = torch.optim.SGD([parameter for parameter in block.parameters() if parameter.requires_grad], lr=0.1)
    for _ in range(2):  # A gets a gradient only once B is non-zero
        optimizer.zero_grad()
        (block(inputs) - 1.0).pow(2).mean().backward()
        optimizer.step()
    assert (block(inputs) - base(inputs)).abs().max() > 1e-4
    for name, parameter in block.named_parameters():
        if not parameter.requires_grad:
            assert torch.equal(parameter, frozen[name]), name


def test_an_adapted_layer_adds_alpha_over_r_times_b_a_x():
    block = adapted()
    layer = block.qkv
    with torch.no_grad():
        layer.lora_B.default.weight.normal_(generator=torch.Generator().manual_seed(2))
    inputs = tokens()
    base = layer.base_layer
    expected = base(inputs) + ALPHA / RANK * inputs @ layer.lora_A.default.weight.T @ layer.lora_B.default.weight.T
    torch.testing.assert_close(layer(inputs), expected, rtol=1e-4, atol=1e-5)


def test_a_state_dict_loads_into_a_module_given_the_same_adapters():
    trained = adapted(seed=0)
    with torch.no_grad():
        for name, parameter in trained.named_parameters():
            if "lora_B" in name:
                parameter.normal_(generator=torch.Generator().manual_seed(3))
    fresh = adapted(seed=5)
    inputs = tokens()
    assert not torch.allclose(fresh(inputs), trained(inputs))
    fresh.load_state_dict(trained.state_dict())  # strict: the same keys on both sides
    assert torch.equal(fresh(inputs), trained(inputs))


def test_a_target_that_names_no_layer_is_refused_by_name():
    with pytest.raises(ValueError, match="fc9"):
        add_lora(TinyBlock(), rank=RANK, alpha=ALPHA, dropout=0.0, targets=["fc9"])
