"""PGD: projected gradient descent on the cross-entropy (or a margin/DLR loss), with a random start.

Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018,
https://arxiv.org/abs/1706.06083

Norms: linf, l2. Needs: gradients. Untargeted or targeted.
Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape, inside
the eps-ball and the valid range after every step.

The loop holds only what the math needs — one forward and one backward pass per step — so it runs
at the speed of a bare torch loop (see ``bench/bench_robustness.py``). ``amp`` runs the passes
under bfloat16 autocast; gradients are cast back to fp32 before the step. ``loss`` picks the
objective: ``ce`` (Madry et al.), ``margin`` (C&W) or ``dlr`` (Croce & Hein 2020,
https://arxiv.org/abs/2003.01690; scale-invariant, for models whose softmax saturates) — see
:mod:`aisec.attacks.evasion._losses`.

>>> out = run_attack("pgd", target, x, y, {"eps": 8 / 255, "steps": 10})
>>> out = run_attack("pgd", target, x, y, {"eps": 8 / 255, "loss": "dlr"})
"""

from __future__ import annotations

import contextlib
from typing import cast

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams, needs_gradients, trace_margin
from aisec.attacks.evasion._losses import Loss, objective
from aisec.attacks.evasion.fgsm import normalized_step
from aisec.core.constraints import constrain_step
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm


class PGDParams(EvasionParams):
    steps: int = Field(default=10, ge=1, description="Number of gradient steps.")
    step_size: float | None = Field(
        default=None, gt=0, description="Step size; default 2.5 * eps / steps (Madry et al.)."
    )
    random_start: bool = Field(default=True, description="Start from a uniform point in the ball.")
    amp: bool = Field(default=False, description="Run passes under bfloat16 autocast.")
    loss: Loss = Field(
        default="ce", description="Objective: ce (cross-entropy), margin (C&W) or dlr (scale-invariant)."
    )


def random_start(x: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """A uniform random point in the ``norm`` ball of radius ``eps`` around ``x``."""
    if norm is Norm.LINF:
        return x + torch.empty_like(x).uniform_(-eps, eps)
    # Uniform in the L2 ball: Gaussian direction, radius eps * U^(1/d).
    flat = torch.randn_like(x).reshape(x.shape[0], -1)
    d = flat.shape[1]
    r = eps * torch.rand(x.shape[0], 1, device=x.device) ** (1.0 / d)
    flat = flat / cast(torch.Tensor, flat.norm(dim=1, keepdim=True)).clamp_min(1e-12) * r
    return x + flat.view_as(x)


def pgd_loop(
    target: Target,
    x: torch.Tensor,
    y: torch.Tensor,
    params: PGDParams,
    target_labels: torch.Tensor | None,
    *,
    start: bool,
) -> torch.Tensor:
    lo, hi = target.spec.value_range
    eps, norm = params.eps, params.norm
    alpha = params.step_size if params.step_size is not None else 2.5 * eps / params.steps
    labels = y if target_labels is None else target_labels
    x_adv = random_start(x, eps, norm).clamp(lo, hi) if start else x.clone()
    autocast = (
        torch.autocast(device_type=x.device.type, dtype=torch.bfloat16)
        if params.amp
        else contextlib.nullcontext()
    )
    for _ in range(params.steps):
        x_adv.requires_grad_(True)
        with autocast:
            logits = target.logits(x_adv)
        per_sample = objective(logits, y, target_labels, params.loss)
        (grad,) = torch.autograd.grad(per_sample.sum(), x_adv)
        trace_margin(logits, labels, targeted=target_labels is not None)
        with torch.no_grad():
            x_adv = x_adv + alpha * normalized_step(grad.float(), norm)
            delta = x_adv - x
            if norm is Norm.LINF:
                delta = delta.clamp_(-eps, eps)
            else:
                n = delta.reshape(delta.shape[0], -1).norm(dim=1).clamp_min(1e-12)
                delta = delta * (eps / n).clamp(max=1.0).view(-1, *([1] * (x.ndim - 1)))
            x_adv = constrain_step((x + delta).clamp_(lo, hi), x)  # no-op unless tabular constraints are bound
    return x_adv.detach()


@register_attack(
    "pgd",
    requires=needs_gradients(),
    norms={Norm.LINF, Norm.L2},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/1706.06083",
    iterative=True,
)
class PGD:
    """Projected Gradient Descent with random start (Madry et al. 2018)."""

    Params = PGDParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: PGDParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return pgd_loop(target, x, y, params, target_labels, start=params.random_start)
