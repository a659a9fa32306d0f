"""LiRA: the likelihood-ratio membership attack with reference models.

Carlini, Chien, Nasr, Song, Terzis & Tramèr, "Membership Inference Attacks From First Principles",
IEEE S&P 2022, https://arxiv.org/abs/2112.03570 (reference code: tensorflow/privacy
``research/mi_lira_2021``).

K reference models are trained with the target's recipe, each on a random half of members ∪
non-members such that every record is IN for exactly K/2 of them (trained once, batched with
``torch.vmap``, shared with RMIA). Per model and record the statistic is the logit-scaled
confidence φ = log p_y − log Σ_{y'≠y} p_{y'}, optionally per query augmentation.

- online: fit N(μ_in, σ_in²) and N(μ_out, σ_out²) per record from its IN and OUT models (μ = the
  median, as the reference code does); score = log N(φ_target; μ_in, σ_in) − log N(φ_target; μ_out, σ_out).
- offline: OUT models only, the paper's one-sided test: score = −log Pr[Z > φ_target],
  Z ~ N(μ_out, σ_out²) (monotone in the z-score, so only the ranking matters for the ROC).
- fixed_variance: one σ shared by all records (better with few models). aisec pools the
  within-record variance (residuals about each record's mean) of the IN models (online) or OUT models
  (offline); the reference code's ``np.std`` over all scores also includes the between-record spread.

Scores are averaged over augmentations. Needs: probabilities and a training recipe.

>>> scores = LiRA().run(task, LiRA.Params(online=False, fixed_variance=True))
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from aisec.attacks.inference.base import (
    MembershipScores,
    MembershipTask,
    augmentation,
    logit_confidence,
    register_inference_attack,
)
from aisec.core.types import Capability

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
Augment = Literal["none", "hflip", "shift"]


def _normal_logpdf(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return -((x - mu) / sigma) ** 2 / 2 - torch.log(sigma) - _LOG_SQRT_2PI


def split_in_out(scores: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference scores ``(A, K, N)`` and IN mask ``(K, N)`` (K/2 True per column) →
    IN scores and OUT scores, each ``(A, K/2, N)``, without a per-record loop."""
    k = keep.shape[0]
    half = int(keep[:, 0].sum())
    order = torch.argsort((~keep).to(torch.int8), dim=0, stable=True)  # IN models first per column
    idx = order.unsqueeze(0).expand(scores.shape[0], k, keep.shape[1])
    ordered = torch.gather(scores, 1, idx)
    return ordered[:, :half], ordered[:, half:]


def _sigma(x: torch.Tensor, fixed: bool) -> torch.Tensor:
    """Per-record std over models (dim 1), or one pooled within-record std (fixed variance)."""
    if fixed:
        resid = x - x.mean(1, keepdim=True)
        dof = max(x.shape[1] - 1, 1)
        pooled = (resid.pow(2).sum(1) / dof).mean(-1, keepdim=True).sqrt()  # (A, 1)
        return pooled.unsqueeze(1).clamp_min(1e-6)
    return x.std(1, keepdim=True, unbiased=x.shape[1] > 1).clamp_min(1e-6)


@register_inference_attack("lira", requires={Capability.PROBABILITIES}, needs_recipe=True,
                           paper="https://arxiv.org/abs/2112.03570")
class LiRA:
    """Likelihood-ratio attack (Carlini et al. 2022), online or offline, with K reference models."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        online: bool = Field(default=True, description="Use IN and OUT models (online) or OUT models only.")
        fixed_variance: bool = Field(default=False, description="One σ for all records (few models).")
        augmentations: list[Augment] = Field(
            default_factory=lambda: list[Augment](["none"]), description="Query augmentations averaged over (images)."
        )

    def run(self, task: MembershipTask, params: Params) -> MembershipScores:
        _, keep = task.reference_stack()
        n_in = task.x_in.shape[0]
        y = torch.cat([task.y_in, task.y_out])
        ref = torch.stack([logit_confidence(task.reference_log_probs(a), y) for a in params.augmentations])
        tgt = torch.stack([
            logit_confidence(task.log_probs(augmentation(torch.cat([task.x_in, task.x_out]), a)), y)
            if a != "none" else logit_confidence(torch.cat(task.target_log_probs()), y)
            for a in params.augmentations
        ])  # (A, N)
        s_in, s_out = split_in_out(ref, keep.cpu())
        mu_out = s_out.median(1).values
        if params.online:
            mu_in = s_in.median(1).values
            sd_in = _sigma(s_in, params.fixed_variance).squeeze(1)
            sd_out = sd_in if params.fixed_variance else _sigma(s_out, False).squeeze(1)
            score = _normal_logpdf(tgt, mu_in, sd_in) - _normal_logpdf(tgt, mu_out, sd_out)
        else:
            sd_out = _sigma(s_out, params.fixed_variance).squeeze(1)
            z = (tgt - mu_out) / sd_out
            score = -torch.special.log_ndtr(-z)
        s = score.mean(0)
        return MembershipScores(
            s[:n_in], s[n_in:],
            info={"reference_models": int(keep.shape[0]), "variant": "online" if params.online else "offline"},
        )
