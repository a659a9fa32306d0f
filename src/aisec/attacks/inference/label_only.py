"""Label-only membership inference by robustness to noise.

Choquette-Choo, Tramèr, Carlini & Papernot, "Label-Only Membership Inference Attacks", ICML 2021,
https://arxiv.org/abs/2007.14321 (the data-augmentation / noise-robustness attack). Training records
sit farther from the decision boundary, so their label survives random perturbations more often.
Score: the fraction of ``queries`` noisy copies x + N(0, σ²) (clipped to the value range) whose
predicted label equals y, plus the clean prediction's correctness; ties are common, which the
midrank AUC counts as ½.

Needs: predicted labels only; costs (queries + 1) target queries per record, in batches.

>>> scores = LabelOnly().run(task, LabelOnly.Params(queries=32, sigma=0.1))
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from aisec.attacks.inference.base import MembershipScores, MembershipTask, register_inference_attack


@register_inference_attack("label_only", labels_only=True, paper="https://arxiv.org/abs/2007.14321")
class LabelOnly:
    """Label-only noise robustness (Choquette-Choo et al. 2021): share of noisy copies kept correct."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        queries: int = Field(default=32, ge=1, description="Noisy copies per record.")
        sigma: float = Field(default=0.1, gt=0, description="Noise std as a fraction of the value range.")

    def run(self, task: MembershipTask, params: Params) -> MembershipScores:
        lo, hi = task.target.spec.value_range
        g = torch.Generator().manual_seed(task.seed)

        def score(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            total = (task.target_labels(x) == y).double()
            # Batches of whole records × all their copies: memory ~ batch_size · queries samples.
            per = max(1, task.batch_size * 4 // params.queries)
            parts = []
            for i in range(0, x.shape[0], per):
                xb, yb = x[i : i + per], y[i : i + per]
                noise = torch.randn((params.queries, *xb.shape), generator=g, dtype=xb.dtype)
                noise = noise * (params.sigma * (hi - lo))
                xn = (xb.unsqueeze(0) + noise).clamp(lo, hi).reshape(-1, *xb.shape[1:])
                pred = task.target_labels(xn).view(params.queries, -1)
                parts.append((pred == yb.unsqueeze(0)).double().sum(0))
            total = total + torch.cat(parts)
            return total / (params.queries + 1)

        return MembershipScores(score(task.x_in, task.y_in), score(task.x_out, task.y_out),
                                info={"queries_per_record": params.queries + 1})
