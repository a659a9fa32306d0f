"""Confidence-threshold membership inference: members get more confident predictions.

Salem et al., "ML-Leaks", NDSS 2019, https://arxiv.org/abs/1806.01246 (``max``: the top-1
probability, which needs no label) and Song & Mittal, "Systematic Evaluation of Privacy Risks of
Machine Learning Models", USENIX Security 2021, https://arxiv.org/abs/2003.10595 (``mentr``: the
negated modified entropy −Mentr(p, y) = (1−p_y) log p_y + Σ_{y'≠y} p_{y'} log(1−p_{y'}), which is
monotone in the true-class confidence and penalises confident mistakes).

Needs: probabilities. Shapes: any input the target takes; labels ``(N,)``.

>>> scores = Confidence().run(task, Confidence.Params(statistic="mentr"))
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from aisec.attacks.inference.base import MembershipScores, MembershipTask, register_inference_attack
from aisec.core.types import Capability


def neg_modified_entropy(lp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """−Mentr(p, y) from log-probabilities ``(N, C)``, computed in log space for stability."""
    p = lp.exp()
    log1m = torch.log1p(-p.clamp(max=1 - 1e-16))  # log(1 − p) for every class
    onehot = torch.nn.functional.one_hot(y, lp.shape[1]).bool()
    lp_c = lp.clamp_min(-1e4)
    log1m_c = log1m.clamp_min(-1e4)
    true_term = ((1 - p) * lp_c)[onehot]
    other = torch.where(onehot, torch.zeros_like(p), p * log1m_c).sum(1)
    return true_term + other


@register_inference_attack("confidence", requires={Capability.PROBABILITIES},
                           paper="https://arxiv.org/abs/1806.01246")
class Confidence:
    """Confidence threshold: score = top-1 probability (``max``) or −modified entropy (``mentr``)."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        statistic: Literal["max", "mentr"] = Field(
            default="max", description="max: top-1 log-probability (label-free); mentr: Song & Mittal 2021."
        )

    def run(self, task: MembershipTask, params: Params) -> MembershipScores:
        lp_in, lp_out = task.target_log_probs()
        if params.statistic == "max":
            return MembershipScores(lp_in.max(1).values, lp_out.max(1).values)
        return MembershipScores(neg_modified_entropy(lp_in, task.y_in), neg_modified_entropy(lp_out, task.y_out))
