"""FAB: Fast Adaptive Boundary attack, a minimum-norm white-box attack (l2, linf, l1).

Croce & Hein, "Minimally distorted adversarial examples with a fast adaptive boundary attack",
ICML 2020, https://arxiv.org/abs/1907.02044

Norms: linf, l2, l1. Needs: gradients. Untargeted (the nearest linearised boundary, all class
gradients per step) or targeted (the boundary with the target class, one gradient per step).
Kind: minimum norm. FAB looks for the *closest* adversarial example, so one run gives the robust
accuracy at every eps; the driver does not project onto an eps-ball and reports the distance
found. ``eps`` still matters, as in AutoAttack, where FAB runs with an eps and a sample counts as
broken when the distance found is ``<= eps``: it sets the radius of the random restarts
(``min(best, eps) / 2``) and a sample whose best distance is within ``eps`` gets no more restarts.
Samples never fooled come back unchanged. The math (projection onto the linearised boundary
inside the value range, the ``alpha_max`` / ``eta`` / ``beta`` extrapolation) is in :mod:`._fab`.

Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape.

>>> out = run_attack("fab", target, x, y, {"norm": "linf", "eps": 8 / 255, "steps": 100})
>>> broken = (out.pred_adv != out.y) & (out.distance <= 8 / 255 + 1e-6)
"""

from __future__ import annotations

import torch

from aisec.attacks.base import needs_gradients
from aisec.attacks.evasion._fab import FABParams, fab_search
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm


@register_attack(
    "fab",
    requires=needs_gradients(),
    norms={Norm.LINF, Norm.L2, Norm.L1},
    targeted=True,
    kind=AttackKind.MIN_NORM,
    paper="https://arxiv.org/abs/1907.02044",
    iterative=True,
)
class FAB:
    """Fast Adaptive Boundary attack: minimum-norm adversarial examples by boundary projections."""

    Params = FABParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: FABParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x.detach()
        with torch.no_grad():
            pred = target.logits(x).argmax(1)
        # Already adversarial on the clean input: distance 0, nothing to search.
        done = pred == target_labels if target_labels is not None else pred != y
        best_d = torch.where(done, 0.0, torch.inf)
        x_adv, _ = fab_search(target, x, y, params, target_labels=target_labels, best_d=best_d)
        return x_adv
