"""Access to the torch module behind a white-box target, and its penultimate features."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from aisec.core.errors import CapabilityError
from aisec.core.target import Target


class _Normalize(nn.Module):
    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], ndim: int) -> None:
        super().__init__()
        shape = (1, -1) + (1,) * (ndim - 1)
        self.register_buffer("mean", torch.tensor(mean).view(shape))
        self.register_buffer("std", torch.tensor(std).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def module_copy(target: Target) -> nn.Module:
    """A deep copy of the target's module (normalisation folded in), trainable, in eval mode.

    The user's model is never touched: every poisoning experiment works on copies.
    """
    module = getattr(target, "module", None)
    if not isinstance(module, nn.Module):
        raise CapabilityError(
            f"poisoning and backdoor detection need the model's torch module (white box); target "
            f"'{target.spec.name}' ({target.spec.access.value} box) does not expose one. Load it as a torch model."
        )
    m = copy.deepcopy(module)
    norm = target.spec.normalization
    if norm is not None:
        m = nn.Sequential(_Normalize(norm.mean, norm.std, len(target.spec.input_shape)), m)
    m = m.to(target.spec.device)
    for p in m.parameters():
        p.requires_grad_(True)
    return m.eval()


def last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CapabilityError(
            f"{type(model).__name__} has no nn.Linear layer; penultimate features cannot be located"
        )
    return linears[-1]


def feature_fn(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> penultimate activations`` (the input of the last linear layer), differentiable."""
    layer = last_linear(model)

    def features(x: torch.Tensor) -> torch.Tensor:
        box: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda _m, inp, _out: box.append(inp[0]))
        try:
            model(x)
        finally:
            handle.remove()
        return box[0].flatten(1)

    return features


@torch.no_grad()
def batched_features(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    f = feature_fn(model)
    return torch.cat([f(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


@torch.no_grad()
def batched_predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)])
