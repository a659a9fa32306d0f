"""APGD-CE: Auto-PGD on the cross-entropy, the first attack of AutoAttack.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690

Norms: linf, l2. Needs: gradients. Untargeted, or targeted (minus the cross-entropy of the target).
No step size to tune: it starts at ``2 eps`` and halves when progress stalls (see :mod:`._apgd`).
Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape, inside the
eps-ball and the valid range. A sample stops being attacked as soon as it is misclassified.

>>> out = run_attack("apgd-ce", target, x, y, {"eps": 8 / 255, "steps": 100})
>>> out.robust.float().mean()
"""

from __future__ import annotations

import torch

from aisec.attacks.base import needs_gradients
from aisec.attacks.evasion._apgd import APGDParams, apgd_attack, ce_loss, clean_logits
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm


@register_attack(
    "apgd-ce",
    requires=needs_gradients(),
    norms={Norm.LINF, Norm.L2},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/2003.01690",
    iterative=True,
)
class APGDCE:
    """Auto-PGD on the cross-entropy loss (Croce & Hein 2020): PGD with an automatic step-size schedule."""

    Params = APGDParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: APGDParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        pred = clean_logits(target, x).argmax(1)
        done = (pred == target_labels) if target_labels is not None else (pred != y)
        x_adv, _ = apgd_attack(target, x, y, params, ce_loss, aim=target_labels,
                               targeted=target_labels is not None, done=done)
        return x_adv
