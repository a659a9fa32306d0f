"""PGD adversarial training: minimise the loss on PGD examples crafted against the model being trained.

Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018,
https://arxiv.org/abs/1706.06083

Each batch: ``steps`` steps of projected gradient ascent on the cross-entropy from a uniform random
start in the eps-ball (the attack of :mod:`aisec.attacks.evasion.pgd`, whose ``random_start`` and
``normalized_step`` it reuses), then one optimiser step on the cross-entropy of the adversarial
batch only (Madry's objective). The inner loop is written here, batched, instead of calling
``run_attack("pgd", ...)``: the attack driver wraps a :class:`~aisec.core.target.Target`, checks
inputs and scores success with extra forward passes, none of which a training step needs; this
loop does exactly ``steps`` forward/backward passes per batch. Examples are crafted in eval mode.

>>> aisec defend -m digits-cnn -d digits --recipe pgd-at:eps=0.1,steps=7,epochs=10 -o defended.safetensors
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from aisec.attacks.evasion.fgsm import normalized_step
from aisec.attacks.evasion.pgd import random_start
from aisec.core.registry import register
from aisec.core.types import Norm
from aisec.defences.training.base import AdversarialParams, Forward, project


class PGDATParams(AdversarialParams):
    steps: int = Field(default=10, ge=1, le=10_000, description="PGD steps of the inner maximisation.")
    step_size: float | None = Field(
        default=None, gt=0, description="Step of the inner PGD; default 2.5 * eps / steps (Madry et al.).")


def pgd_examples(forward: Forward, x: torch.Tensor, y: torch.Tensor, params: PGDATParams,
                 value_range: tuple[float, float]) -> torch.Tensor:
    """PGD (cross-entropy, random start) examples for the batch, detached."""
    alpha = params.step_size if params.step_size is not None else 2.5 * params.eps / params.steps
    if params.norm is Norm.LINF:
        return _linf_examples(forward, x, y, params.eps, alpha, params.steps, value_range)
    x_adv = random_start(x, params.eps, params.norm).clamp(*value_range).detach()
    for _ in range(params.steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(forward(x_adv), y, reduction="sum"), x_adv)
        with torch.no_grad():
            x_adv = project(x_adv + alpha * normalized_step(grad, params.norm), x, params.eps, params.norm,
                            value_range)
    return x_adv.detach()


def _linf_examples(forward: Forward, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
                   value_range: tuple[float, float]) -> torch.Tensor:
    """The Linf case of :func:`pgd_examples` with the box ``[max(x - eps, lo), min(x + eps, hi)]`` built once
    per batch and each step done in place (sign, add, two clamps): the same iterates as :func:`project`
    up to float rounding, with fewer temporaries per step (the training loop runs this every batch)."""
    lo = (x - eps).clamp_(min=value_range[0])
    hi = (x + eps).clamp_(max=value_range[1])
    x_adv = torch.max(torch.min(random_start(x, eps, Norm.LINF), hi), lo)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(forward(x_adv), y, reduction="sum"), x_adv)
        with torch.no_grad():
            x_adv = torch.max(torch.min(x_adv.detach().add_(grad.sign_(), alpha=alpha), hi), lo)
    return x_adv.detach()


@register("training", "pgd-at", inner="pgd", paper="https://arxiv.org/abs/1706.06083", aliases=("madry", "pgd"))
class PGDAT:
    """PGD adversarial training (Madry et al. 2018): train on PGD examples of each batch."""

    Params = PGDATParams

    def loss(self, forward: Forward, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: PGDATParams,
             value_range: tuple[float, float]) -> torch.Tensor:
        model.eval()  # as ART's AdversarialTrainerMadryPGD (its loss_gradient runs training_mode=False)
        weights = [w for w in model.parameters() if w.requires_grad]
        for w in weights:  # the inner steps need d loss / d x only: no weight-gradient graph is recorded
            w.requires_grad_(False)
        try:
            x_adv = pgd_examples(forward, x, y, params, value_range)
        finally:
            for w in weights:
                w.requires_grad_(True)
        model.train()
        return F.cross_entropy(forward(x_adv), y)
