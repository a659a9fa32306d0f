"""APGD-T: Auto-PGD on the targeted DLR loss, aimed in turn at the top-ranked wrong classes.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690

As in AutoAttack: for rank ``r = 2 .. n_target_classes + 1`` the samples not yet broken are attacked
with the targeted DLR loss ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` toward the class ranked
``r``-th by the model on the clean input, ``restarts`` times each, and a sample is broken by any
misclassification. With ``target_labels`` given it attacks those labels only, and success means
reaching them. Needs a model with at least 4 classes; ``n_target_classes`` is capped at the number
of wrong classes.

Norms: linf, l2. Needs: gradients. Untargeted (AutoAttack's use) or targeted.
Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape.

>>> out = run_attack("apgd-t", target, x, y, {"eps": 0.3, "n_target_classes": 9})
"""

from __future__ import annotations

import torch
from pydantic import Field

from aisec.attacks.base import needs_gradients
from aisec.attacks.evasion._apgd import (
    APGDParams,
    apgd_attack,
    clean_logits,
    dlr_targeted_loss,
    require_classes,
)
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm


class APGDTParams(APGDParams):
    n_target_classes: int = Field(
        default=9, ge=1, description="Wrong classes aimed at in turn, by clean rank (AutoAttack: 9)."
    )


@register_attack(
    "apgd-t",
    requires=needs_gradients(),
    norms={Norm.LINF, Norm.L2},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/2003.01690",
    iterative=True,
)
class APGDT:
    """Targeted Auto-PGD on the DLR loss over the top-ranked wrong classes (Croce & Hein 2020)."""

    Params = APGDTParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: APGDTParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        require_classes(target.spec.num_classes, 4, "attack 'apgd-t'")
        logits = clean_logits(target, x)
        pred = logits.argmax(1)
        if target_labels is not None:
            x_adv, _ = apgd_attack(target, x, y, params, dlr_targeted_loss, aim=target_labels, targeted=True,
                                   done=pred == target_labels)
            return x_adv
        out = x.detach().clone()
        broken = pred != y
        ranked = logits.sort(dim=1).indices  # ascending: column -r is the r-th ranked class
        for r in range(2, min(params.n_target_classes, logits.shape[1] - 1) + 2):
            todo = torch.nonzero(~broken).flatten()
            if todo.numel() == 0:
                break
            xo, b = apgd_attack(target, x[todo], y[todo], params, dlr_targeted_loss, aim=ranked[todo, -r])
            if r == 2:
                out[todo] = xo
            else:
                out[todo[b]] = xo[b]
            broken[todo[b]] = True
        return out
