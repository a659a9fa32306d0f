"""RMIA: the robust membership-inference attack (pairwise likelihood ratios against a population).

Zarifzadeh, Liu, Bertran & Shokri, "Low-Cost High-Power Membership Inference Attacks", ICML 2024,
https://arxiv.org/abs/2312.03262

With Pr(x|θ) the target's probability of x's label and Pr(x) its average over reference models,
the ratio of x is r(x) = Pr(x|θ) / Pr(x). The score of x is the fraction of population records z with
r(x) / r(z) ≥ γ. Offline (OUT models only) Pr(x) is corrected for the missing IN models by the
paper's linear approximation Pr(x) = ½((1 + a)·Pr_OUT(x) + (1 − a)); online averages all K models.

Population z: the candidate records themselves (members ∪ non-members), as in the paper's
experiments. For one fixed population the score is a monotone function of r(x), so its ROC equals
that of r(x); the comparison with z calibrates the threshold. Reuses LiRA's reference models.
Needs: probabilities and a training recipe.

>>> scores = RMIA().run(task, RMIA.Params(online=False, offline_a=0.3))
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from aisec.attacks.inference.base import MembershipScores, MembershipTask, register_inference_attack, true_class
from aisec.attacks.inference.lira import split_in_out
from aisec.core.types import Capability


@register_inference_attack("rmia", requires={Capability.PROBABILITIES}, needs_recipe=True,
                           paper="https://arxiv.org/abs/2312.03262")
class RMIA:
    """Robust MIA (Zarifzadeh et al. 2024): pairwise likelihood ratios against population records."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        online: bool = Field(default=False, description="Average IN and OUT models (online) or OUT only.")
        offline_a: float = Field(default=0.3, ge=0, le=1, description="Offline correction a (paper §4).")
        gamma: float = Field(default=1.0, gt=0, description="Ratio threshold γ of the pairwise test.")

    def run(self, task: MembershipTask, params: Params) -> MembershipScores:
        _, keep = task.reference_stack()
        y = torch.cat([task.y_in, task.y_out])
        n_in = task.x_in.shape[0]
        p_ref = true_class(task.reference_log_probs(), y).exp().unsqueeze(0)  # (1, K, N)
        if params.online:
            p_x = p_ref[0].mean(0)
        else:
            _, out = split_in_out(p_ref, keep.cpu())
            p_x = 0.5 * ((1 + params.offline_a) * out[0].mean(0) + (1 - params.offline_a))
        lp_t = true_class(torch.cat(task.target_log_probs()), y)
        log_r = lp_t - torch.log(p_x.clamp_min(1e-300))  # log r(x), (N,)
        pop = torch.sort(log_r).values
        # fraction of z with r(x)/r(z) ≥ γ  ⇔  log r(z) ≤ log r(x) − log γ
        thr = log_r - torch.log(torch.tensor(params.gamma, dtype=log_r.dtype))
        frac = torch.searchsorted(pop, thr, right=True).double() / pop.numel()
        # Break the 1/|Z| resolution ties by the ratio itself (same ordering, finer ROC).
        score = frac + 1e-9 * torch.tanh(log_r / 100)
        return MembershipScores(score[:n_in], score[n_in:], info={"reference_models": int(keep.shape[0])})
