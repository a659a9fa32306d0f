"""APGD-DLR: Auto-PGD on the Difference of Logits Ratio loss, robust to rescaled logits.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690

The DLR loss ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)`` does not change when the logits are
shifted or scaled, so a defence that saturates the softmax (and starves the cross-entropy of
gradient) does not hide from it. Needs a model with at least 3 classes.

Norms: linf, l2. Needs: gradients. Untargeted only (``apgd-t`` is the targeted version).
Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape.

>>> out = run_attack("apgd-dlr", target, x, y, {"eps": 8 / 255, "restarts": 5})
"""

from __future__ import annotations

import torch

from aisec.attacks.base import needs_gradients
from aisec.attacks.evasion._apgd import APGDParams, apgd_attack, clean_logits, dlr_loss, require_classes
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm


@register_attack(
    "apgd-dlr",
    requires=needs_gradients(),
    norms={Norm.LINF, Norm.L2},
    targeted=False,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/2003.01690",
    iterative=True,
)
class APGDDLR:
    """Auto-PGD on the scale-invariant DLR loss (Croce & Hein 2020)."""

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
        require_classes(target.spec.num_classes, 3, "attack 'apgd-dlr'")
        done = clean_logits(target, x).argmax(1) != y
        x_adv, _ = apgd_attack(target, x, y, params, dlr_loss, done=done)
        return x_adv
