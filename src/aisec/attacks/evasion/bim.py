"""BIM: iterative FGSM from the clean input (no random start).

Kurakin, Goodfellow & Bengio, "Adversarial examples in the physical world", ICLR-W 2017,
https://arxiv.org/abs/1607.02533

Norms: linf, l2. Needs: gradients. Untargeted or targeted. The paper fixes alpha = 1/255; we
default to ``step_size = eps / 4`` with ``steps = 10`` so that every eps is reachable in a few
steps whatever its size.

>>> out = run_attack("bim", target, x, y, {"eps": 8 / 255, "steps": 10})
"""

from __future__ import annotations

import torch
from pydantic import Field

from aisec.attacks.base import needs_gradients
from aisec.attacks.evasion.pgd import PGDParams, pgd_loop
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm


class BIMParams(PGDParams):
    random_start: bool = Field(default=False, description="BIM starts from the clean input.")


@register_attack(
    "bim",
    requires=needs_gradients(),
    norms={Norm.LINF, Norm.L2},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/1607.02533",
    iterative=True,
)
class BIM:
    """Basic Iterative Method: iterated FGSM steps, clipped to the eps-ball after each."""

    Params = BIMParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: BIMParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if params.step_size is None:
            params = params.model_copy(update={"step_size": params.eps / 4})
        return pgd_loop(target, x, y, params, target_labels, start=params.random_start)
