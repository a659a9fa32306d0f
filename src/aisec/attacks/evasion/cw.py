"""Carlini–Wagner L2: the smallest L2 perturbation found by optimisation in tanh space.

Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017,
https://arxiv.org/abs/1608.04644

Norms: l2. Needs: gradients. Untargeted or targeted. Minimum-norm: ``eps`` is ignored; the
driver reports the L2 distance of what was found.

For each sample it minimises ``||x' - x||_2^2 + c * max(margin, -confidence)`` with Adam over
``w``, where ``x' = lo + (hi - lo) * (tanh(w) + 1) / 2`` keeps every iterate inside the target's
value range ``[lo, hi]``. ``margin`` is the best other logit minus the true logit (untargeted) or
minus the target logit, negated (targeted). A binary search over ``c`` per sample (``c`` grows
tenfold until the first success, then bisects) runs ``binary_search_steps`` times, ``steps``
iterations each. The result is the successful iterate of smallest L2 distance per sample, or the
clean input where no iterate succeeded.

Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape.

>>> out = run_attack("cw", target, x, y, {"steps": 100, "binary_search_steps": 5})
>>> out.distance[out.success].median()
"""

from __future__ import annotations

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams, margin_loss, needs_gradients
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm

# Keeps atanh finite for inputs on the range's edges (as in the authors' code).
_TANH_SMOOTHER = 1 - 1e-6
# Once c reaches this, a sample is given up on.
_C_MAX = 1e10


class CWParams(EvasionParams):
    norm: Norm = Field(default=Norm.L2, description="Norm of the perturbation (C&W L2 only).")
    confidence: float = Field(default=0.0, ge=0, description="Logit margin kappa required for success.")
    initial_const: float = Field(default=1e-2, gt=0, description="Starting trade-off constant c.")
    binary_search_steps: int = Field(default=5, ge=1, description="Rounds of the binary search over c.")
    steps: int = Field(default=100, ge=1, description="Adam steps per binary-search round.")
    lr: float = Field(default=0.01, gt=0, description="Adam learning rate in tanh space.")


def _margin(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per-sample margin that is <= 0 exactly when the attack succeeds (before confidence)."""
    m = margin_loss(logits, labels)  # max other - label
    return m if targeted else -m


@register_attack(
    "cw",
    requires=needs_gradients(),
    norms={Norm.L2},
    targeted=True,
    kind=AttackKind.MIN_NORM,
    paper="https://arxiv.org/abs/1608.04644",
    natural_norm=Norm.L2,
    iterative=True,
)
class CarliniWagnerL2:
    """Carlini–Wagner L2: minimum-L2 adversarial examples by tanh-space optimisation."""

    Params = CWParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: CWParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lo, hi = target.spec.value_range
        targeted = target_labels is not None
        labels = target_labels if target_labels is not None else y
        n = x.shape[0]
        view = (-1, *([1] * (x.ndim - 1)))
        x = x.detach()
        unit = ((x - lo) / (hi - lo)).clamp(0, 1)
        w0 = torch.atanh((2 * unit - 1) * _TANH_SMOOTHER)

        c = torch.full((n,), params.initial_const, device=x.device, dtype=x.dtype)
        c_lo = torch.zeros_like(c)
        c_hi = torch.full_like(c, _C_MAX)
        best_dist = torch.full((n,), torch.inf, device=x.device, dtype=x.dtype)
        best_adv = x.clone()

        for _ in range(params.binary_search_steps):
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=params.lr)
            round_success = torch.zeros(n, dtype=torch.bool, device=x.device)
            for _ in range(params.steps):
                x_adv = lo + (hi - lo) * (torch.tanh(w) + 1) / 2
                dist = (x_adv - x).reshape(n, -1).pow(2).sum(1)
                logits = target.logits(x_adv)
                margin = _margin(logits.float(), labels, targeted)
                loss = dist + c * margin.clamp_min(-params.confidence)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                with torch.no_grad():
                    # Score the iterate whose logits we just computed (before the step).
                    ok = margin <= -params.confidence if params.confidence > 0 else margin < 0
                    better = ok & (dist < best_dist)
                    best_dist = torch.where(better, dist, best_dist)
                    best_adv = torch.where(better.view(view), x_adv.detach(), best_adv)
                    round_success |= ok
                opt.step()
            with torch.no_grad():
                # Success: c can shrink (bisect down); failure: c must grow (x10 until bracketed).
                c_hi = torch.where(round_success, torch.minimum(c_hi, c), c_hi)
                c_lo = torch.where(round_success, c_lo, torch.maximum(c_lo, c))
                bracketed = c_hi < _C_MAX
                c = torch.where(bracketed, (c_lo + c_hi) / 2, (c * 10).clamp(max=_C_MAX))
        return best_adv.detach()
