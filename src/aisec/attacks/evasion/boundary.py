"""Boundary attack: decision-based random walk along the decision boundary (minimum L2 norm).

Brendel, Rauber & Bethge, "Decision-Based Adversarial Attacks: Reliable Attacks Against
Black-Box Machine Learning Models", ICLR 2018, https://arxiv.org/abs/1712.04248

Norms: l2. Needs: predicted labels only (every query is reduced to ``argmax``), so it runs on
probability and label-only targets alike; it declares no capability. Untargeted or targeted. Kind: minimum norm.
Starts from uniform noise that is already adversarial (binary-searched toward ``x``), then each
iteration proposes, for every live sample at once, an orthogonal step on the sphere around ``x``
(size ``spherical_step`` x distance) followed by a step toward ``x`` (``source_step`` x distance);
a proposal is kept when it is still adversarial and closer. Simplification: one proposal per sample
per iteration, with step sizes adapted per sample (x ``step_adapt`` on success, / on failure)
instead of the paper's success-rate windows. ``max_queries`` per sample.

>>> out = run_attack("boundary", target, x, y, {"max_queries": 2000})
"""

from __future__ import annotations

import torch
from pydantic import Field

from aisec.attacks.evasion._blackbox import (
    DECISION_ONLY,
    DecisionParams,
    QueryLedger,
    bshape,
    is_adversarial,
    start_decision_attack,
)
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm


class BoundaryParams(DecisionParams):
    norm: Norm = Norm.L2
    spherical_step: float = Field(default=0.05, gt=0, description="Orthogonal step, relative to the distance.")
    source_step: float = Field(default=0.05, gt=0, description="Step toward the original, relative.")
    step_adapt: float = Field(default=1.5, gt=1, description="Step-size multiplier on success.")


@register_attack(
    "boundary",
    requires=DECISION_ONLY,
    norms={Norm.L2},
    targeted=True,
    kind=AttackKind.MIN_NORM,
    paper="https://arxiv.org/abs/1712.04248",
)
class Boundary:
    """Boundary attack: decision-based random walk toward the input (L2, minimum norm)."""

    Params = BoundaryParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: BoundaryParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lo, hi = target.spec.value_range
        n = x.shape[0]
        ledger = QueryLedger(target, n, params.max_queries)
        x_adv, found = start_decision_attack(ledger, x, y, target_labels, lo, hi, params)
        sph = torch.full((n,), params.spherical_step, device=x.device)
        src = torch.full((n,), params.source_step, device=x.device)
        while True:
            live = ledger.afford(torch.nonzero(found).flatten())
            if live.numel() == 0:
                break
            xs, xa = x[live], x_adv[live]
            diff = xs - xa
            dist = diff.reshape(live.numel(), -1).norm(dim=1).clamp_min(1e-12)
            unit = diff / bshape(dist, diff)
            eta = torch.randn_like(xa)
            eta = eta - bshape((eta * unit).reshape(live.numel(), -1).sum(1), eta) * unit
            eta = eta / bshape(eta.reshape(live.numel(), -1).norm(dim=1).clamp_min(1e-12), eta)
            cand = xa + bshape(sph[live] * dist, eta) * eta
            # Back onto the sphere of radius dist around x, then a step toward x.
            off = cand - xs
            off = off * bshape(dist / off.reshape(live.numel(), -1).norm(dim=1).clamp_min(1e-12), off)
            cand = (xs + off * bshape(1 - src[live], off)).clamp(lo, hi)
            tl = target_labels[live] if target_labels is not None else None
            adv = is_adversarial(ledger.query(cand, live), y[live], tl).cpu()
            closer = (cand - xs).reshape(live.numel(), -1).norm(dim=1).cpu() < dist.cpu()
            ok = adv & closer
            x_adv[live[ok]] = cand[ok]
            a = params.step_adapt
            src[live] = torch.where(ok.to(src.device), src[live] * a, src[live] / a).clamp(1e-4, 0.5)
            sph[live] = torch.where(adv.to(sph.device), sph[live] * a, sph[live] / a).clamp(1e-4, 1.0)
        x_adv[~found] = x[~found]
        ledger.publish()
        return x_adv
