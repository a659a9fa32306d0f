"""The shared training loop of every training defence, and the parameters they all take.

A training defence is one small class (one file each, like an attack): a nested ``Params`` model
that extends :class:`TrainingParams` with the defence's own knobs, and
``loss(model, x, y, params, value_range) -> scalar`` for one batch — the objective the optimiser
minimises, with the defence's inner maximisation inside it. :func:`train_defence` does the rest
once, for all of them: seeding, the optimiser and learning-rate schedule, shuffled batches, a
divergence check, per-epoch progress and the loss curve.

The optimiser fields are those of :class:`aisec.models.recipe.TrainingRecipe` (``optimizer``,
``lr``, ``momentum``, ``epochs``, ``batch_size``, ``weight_decay``, ``mode``), so a recipe reads
the same in both places.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from aisec.core.errors import ConfigError
from aisec.core.progress import Progress, no_progress
from aisec.core.types import Norm

Forward = Callable[[torch.Tensor], torch.Tensor]
"""``x -> logits`` of the model being trained (normalisation, if any, folded in)."""


class DefenceDivergedError(ConfigError, FloatingPointError):
    """The defence's training loss became NaN/inf (a ``ConfigError``: the recipe is at fault)."""


class TrainingParams(BaseModel):
    """What every training defence takes: the optimiser, the schedule and where training starts."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: int = Field(default=10, ge=1, le=100_000, description="Passes over the training data.")
    lr: float = Field(default=1e-3, gt=0, le=10, description="Learning rate (the peak one under 'cyclic').")
    optimizer: Literal["adam", "adamw", "sgd"] = Field(default="adam", description="adam, adamw or sgd.")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="SGD only.")
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    batch_size: int = Field(default=64, ge=1, le=1_000_000)
    schedule: Literal["constant", "cyclic"] = Field(
        default="constant", description="Learning rate: constant, or cyclic (linear up to lr at mid-training, "
        "then down to 0, per step: Wong et al. 2020's schedule for fast adversarial training).")
    mode: Literal["finetune", "retrain"] = Field(
        default="finetune", description="finetune: continue from a copy of the given model; retrain: start from "
        "a fresh initialisation of its architecture.")


class AdversarialParams(TrainingParams):
    """Training defences whose inner maximisation is an eps-bounded attack."""

    eps: float = Field(default=0.1, gt=0, le=1e6, description="Perturbation budget in the data range.")
    norm: Norm = Field(default=Norm.LINF, description="Norm of the budget: linf or l2.")

    @field_validator("norm")
    @classmethod
    def _lp(cls, v: Norm) -> Norm:
        if v not in (Norm.LINF, Norm.L2):
            raise ValueError(f"training defences support the linf and l2 norms, got '{v.value}'")
        return v


class TrainingDefence(Protocol):
    """One training defence: ``Params`` and the per-batch training objective."""

    Params: ClassVar[type[TrainingParams]]

    def loss(self, forward: Forward, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Any,
             value_range: tuple[float, float]) -> torch.Tensor:
        """The scalar to minimise on the batch ``(x, y)``. ``model`` is in train mode on entry; a defence
        that crafts examples sets eval mode while it does (batch-norm statistics stay those of clean and
        training inputs) and train mode back before the returned loss is computed."""
        ...


# A defence may also define ``compose(model, params, seed) -> (module, arch_kwargs)``: the module to train
# instead of a copy of ``model`` (the denoiser puts a fresh autoencoder in front of a frozen copy), and the
# integer arguments of its zoo architecture, which the written file records.


@dataclass
class TrainingLog:
    """What the loop measured: the mean training loss of each epoch and the seconds it took."""

    epoch_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0


def _optimizer(params: TrainingParams, weights: list[nn.Parameter]) -> torch.optim.Optimizer:
    if params.optimizer == "sgd":
        return torch.optim.SGD(weights, lr=params.lr, momentum=params.momentum, weight_decay=params.weight_decay)
    if params.optimizer == "adamw":
        return torch.optim.AdamW(weights, lr=params.lr, weight_decay=params.weight_decay)
    return torch.optim.Adam(weights, lr=params.lr, weight_decay=params.weight_decay)


def start_model(model: nn.Module, params: TrainingParams, seed: int) -> nn.Module:
    """The module training starts from: a deep copy of ``model`` (``finetune``) or, for ``retrain``, the copy
    with every layer's parameters re-initialised (its own ``reset_parameters``, seeded). ``model`` is untouched."""
    net = copy.deepcopy(model)
    if params.mode == "retrain":
        torch.manual_seed(seed)
        reset = [m for m in net.modules() if callable(getattr(m, "reset_parameters", None))]
        if not reset:
            raise ConfigError(f"mode=retrain needs layers with reset_parameters(); {type(model).__name__} has none. "
                              "Use mode=finetune")
        for m in reset:
            m.reset_parameters()  # type: ignore[operator]
    for p in net.parameters():
        p.requires_grad_(True)
    return net


def train_defence(
    defence: TrainingDefence,
    params: TrainingParams,
    net: nn.Module,
    forward: Forward,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    value_range: tuple[float, float],
    seed: int = 0,
    progress: Progress = no_progress,
    task: str = "defend",
) -> TrainingLog:
    """Train ``net`` in place with ``defence``'s objective on ``(x, y)`` (already on ``net``'s device).

    ``forward`` is the logits function built on ``net`` (it may fold in normalisation). Batches are a
    seeded permutation per epoch, so a seed gives the same model on the same device. Progress is
    reported once per epoch (``task``, epoch, epochs).

    On CPU with image batches (4-D ``x``) ``net`` and ``x`` are run channels-last while training (oneDNN's
    convolutions and max-pooling are about 1.25x faster in that layout at one thread; measured in
    ``bench/bench_defences.py``), the way :class:`aisec.targets.torch.TorchTarget` runs models; ``net`` is
    put back to the contiguous layout on return, so its tensors save as they are (safetensors needs that).

    Raises:
        DefenceDivergedError: the loss became NaN/inf; nothing is returned (and nothing written).
    """
    import time

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = _optimizer(params, list(net.parameters()))
    n = x.shape[0]
    per_epoch = math.ceil(n / params.batch_size)
    total = params.epochs * per_epoch
    sched = None
    if params.schedule == "cyclic":
        half = max(total / 2, 1.0)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / half if s + 1 <= half else max(0.0, (total - s - 1) / (total - half)))
    log = TrainingLog()
    t0 = time.perf_counter()
    channels_last = x.device.type == "cpu" and x.ndim == 4
    if channels_last:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        x = x.contiguous(memory_format=torch.channels_last)
    try:
        _epochs(defence, params, net, forward, x, y, value_range, g, opt, sched, log, progress, task)
    finally:
        if channels_last:
            net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    net.eval()
    log.seconds = time.perf_counter() - t0
    return log


def _epochs(defence: TrainingDefence, params: TrainingParams, net: nn.Module, forward: Forward, x: torch.Tensor,
            y: torch.Tensor, value_range: tuple[float, float], g: torch.Generator, opt: torch.optim.Optimizer,
            sched: torch.optim.lr_scheduler.LambdaLR | None, log: TrainingLog, progress: Progress,
            task: str) -> None:
    """The epochs of :func:`train_defence` (split out so the layout is restored however they end)."""
    n = x.shape[0]
    progress(task, 0, params.epochs)
    for epoch in range(params.epochs):
        perm = torch.randperm(n, generator=g).to(x.device)
        running = torch.zeros((), device=x.device)
        for i in range(0, n, params.batch_size):
            idx = perm[i : i + params.batch_size]
            net.train()
            loss = defence.loss(forward, net, x[idx], y[idx], params, value_range)
            if not torch.isfinite(loss):
                raise DefenceDivergedError(
                    f"the training loss became {loss.item()} in epoch {epoch + 1}; lower the learning rate "
                    f"(lr={params.lr:g}) or the budget; nothing was written")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            running += loss.detach() * idx.numel()
            log.steps += 1
        log.epoch_loss.append(float(running) / n)
        progress(task, epoch + 1, params.epochs)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm,
            value_range: tuple[float, float]) -> torch.Tensor:
    """``x_adv`` moved back into the ``norm`` ball of radius ``eps`` around ``x`` and into the value range."""
    delta = x_adv - x
    if norm is Norm.LINF:
        delta = delta.clamp(-eps, eps)
    else:
        n = delta.reshape(delta.shape[0], -1).norm(dim=1).clamp_min(1e-12)
        delta = delta * (eps / n).clamp(max=1.0).view(-1, *([1] * (x.ndim - 1)))
    return (x + delta).clamp(*value_range)
