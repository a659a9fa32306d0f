"""FGSM: one signed-gradient step of size eps.

Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015,
https://arxiv.org/abs/1412.6572

Norms: linf (sign of the gradient), l2 (normalised gradient). Needs: gradients. ``loss``: ce
(default), margin or dlr (see :mod:`aisec.attacks.evasion._losses`).
Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape.

>>> from aisec.attacks import run_attack
>>> out = run_attack("fgsm", target, x, y, {"eps": 8 / 255})
>>> out.robust.float().mean()
"""

from __future__ import annotations

from typing import cast

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams, needs_gradients
from aisec.attacks.evasion._losses import Loss, objective
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm


class FGSMParams(EvasionParams):
    loss: Loss = Field(
        default="ce", description="Objective: ce (cross-entropy), margin (C&W) or dlr (scale-invariant)."
    )


def loss_gradient(
    target: Target, x: torch.Tensor, y: torch.Tensor, target_labels: torch.Tensor | None, loss: Loss = "ce"
) -> torch.Tensor:
    """Gradient of the summed objective ``loss`` (ascent direction; for a targeted attack with ``ce``
    it points *down* the target label's cross-entropy)."""
    x = x.detach().requires_grad_(True)
    logits = target.logits(x)
    (grad,) = torch.autograd.grad(objective(logits, y, target_labels, loss).sum(), x)
    return grad


def normalized_step(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Steepest-ascent direction of unit ``norm`` for the gradient."""
    if norm is Norm.LINF:
        return grad.sign()
    n = cast(torch.Tensor, grad.reshape(grad.shape[0], -1).norm(dim=1)).clamp_min(1e-12)
    return grad / n.view(-1, *([1] * (grad.ndim - 1)))


@register_attack(
    "fgsm",
    requires=needs_gradients(),
    norms={Norm.LINF, Norm.L2},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/1412.6572",
)
class FGSM:
    """Fast Gradient Sign Method: a single gradient step of size eps."""

    Params = FGSMParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: FGSMParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        grad = loss_gradient(target, x, y, target_labels, params.loss)
        return x + params.eps * normalized_step(grad, params.norm)
