"""FAB-T: AutoAttack's targeted FAB, run against each of the top runner-up classes in turn.

Croce & Hein, "Minimally distorted adversarial examples with a fast adaptive boundary attack",
ICML 2020, https://arxiv.org/abs/1907.02044; the targeted sweep is AutoAttack's (Croce & Hein,
"Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks", ICML 2020, https://arxiv.org/abs/2003.01690).

Norms: linf, l2, l1. Needs: gradients. Untargeted in effect: the goal is any wrong class; the
target classes are the attack's own choice, so it takes no ``target_labels``.
For ``k = 2 .. n_target_classes + 1`` it runs targeted FAB (:mod:`._fab`) against the class ranked
``k``-th by the clean logits: each step linearises only the boundary between the true class and
that target, one gradient instead of one per class, which is why AutoAttack prefers it on many
classes. Success is any misclassification (as in the reference code). A sample whose closest
adversarial example is within ``eps`` is done and skips the remaining classes; the others keep the
closest example over all classes tried.
Kind: minimum norm, like :mod:`.fab` (same reading of ``eps``).

Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape.

>>> out = run_attack("fab-t", target, x, y, {"norm": "linf", "eps": 8 / 255, "n_target_classes": 9})
>>> broken = (out.pred_adv != out.y) & (out.distance <= 8 / 255 + 1e-6)
"""

from __future__ import annotations

import torch
from pydantic import Field

from aisec.attacks.base import needs_gradients
from aisec.attacks.evasion._fab import FABParams, fab_search
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm


class FABTParams(FABParams):
    n_target_classes: int = Field(
        default=9, ge=1, description="Runner-up classes tried as targets, best first (AutoAttack: 9)."
    )


@register_attack(
    "fab-t",
    requires=needs_gradients(),
    norms={Norm.LINF, Norm.L2, Norm.L1},
    targeted=False,
    kind=AttackKind.MIN_NORM,
    paper="https://arxiv.org/abs/1907.02044",
    iterative=True,
)
class FABT:
    """Targeted FAB over the top runner-up classes (AutoAttack's 'fab-t'), minimum norm."""

    Params = FABTParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: FABTParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x.detach()
        with torch.no_grad():
            z = target.logits(x).float()
        ranked = z.argsort(1, descending=True)
        best_d = torch.where(ranked[:, 0] != y, 0.0, torch.inf)  # misclassified already
        best_x = x.clone()

        def wrong(logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            return logits.argmax(1) != y[idx]

        for k in range(1, min(params.n_target_classes, z.shape[1] - 1) + 1):
            best_x, best_d = fab_search(
                target, x, y, params, target_labels=ranked[:, k], best_x=best_x, best_d=best_d,
                is_adversarial=wrong,
            )
        return best_x
