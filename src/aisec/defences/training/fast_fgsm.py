"""Fast adversarial training: one FGSM step from a uniform random start ("fast is better than free").

Wong, Rice & Kolter, "Fast is better than free: Revisiting adversarial training", ICLR 2020,
https://arxiv.org/abs/2001.03994

Each batch: ``delta ~ U(-eps, eps)``, one signed-gradient step of size ``alpha`` (default
``1.25 * eps``, the paper's), ``delta`` clipped back to the eps-ball and ``x + delta`` to the value
range, then one optimiser step on the cross-entropy at ``x + delta``. Two forward/backward passes
per batch instead of PGD's ``steps + 1``. The paper pairs it with a cyclic learning rate, so
``schedule`` defaults to ``cyclic`` here. The step uses :func:`aisec.attacks.evasion.fgsm.normalized_step`
(the package's FGSM direction); like PGD-AT, the loop is inline rather than through ``run_attack``.
With ``alpha`` much larger than ``eps`` the method can suffer "catastrophic overfitting" (robustness to
PGD collapses while FGSM accuracy stays high); assess the result with PGD/AutoAttack, not FGSM.

>>> aisec defend -m digits-cnn -d digits --recipe fast-fgsm:eps=0.1,epochs=10 -o fast.safetensors
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from aisec.attacks.evasion.fgsm import normalized_step
from aisec.attacks.evasion.pgd import random_start
from aisec.core.registry import register
from aisec.defences.training.base import AdversarialParams, Forward, project


class FastFGSMParams(AdversarialParams):
    alpha: float | None = Field(default=None, gt=0, description="FGSM step; default 1.25 * eps (Wong et al.).")
    schedule: Literal["constant", "cyclic"] = Field(
        default="cyclic", description="Learning rate: cyclic (the paper's; linear up to lr at mid-training, then "
        "down to 0) or constant.")


@register("training", "fast-fgsm", inner="fgsm", paper="https://arxiv.org/abs/2001.03994",
          aliases=("fgsm-rs", "fast-at", "wong"))
class FastFGSM:
    """Fast adversarial training (Wong et al. 2020): FGSM from a random start, cyclic learning rate."""

    Params = FastFGSMParams

    def loss(self, forward: Forward, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: FastFGSMParams,
             value_range: tuple[float, float]) -> torch.Tensor:
        alpha = params.alpha if params.alpha is not None else 1.25 * params.eps
        model.eval()
        x0 = random_start(x, params.eps, params.norm).clamp(*value_range).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(forward(x0), y, reduction="sum"), x0)
        with torch.no_grad():
            x_adv = project(x0 + alpha * normalized_step(grad, params.norm), x, params.eps, params.norm, value_range)
        model.train()
        return F.cross_entropy(forward(x_adv), y)
