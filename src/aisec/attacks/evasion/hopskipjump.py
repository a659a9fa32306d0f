"""HopSkipJump: decision-based (labels only) minimum-norm attack with gradient estimation.

Chen, Jordan & Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack",
IEEE S&P 2020, https://arxiv.org/abs/1904.02144

Norms: l2, linf. Needs: predicted labels only — every query is reduced to ``argmax`` (see
:func:`~aisec.attacks.evasion._blackbox.is_adversarial`), so it runs on probability targets and on
label-only targets alike (their one-hot rows carry the label); it declares no capability.
Untargeted or targeted. Kind: minimum norm — it returns the closest adversarial example it found;
robust accuracy at any eps follows from the distances.

Per iteration, batched over all live samples: a binary search to the boundary (``search_steps``
queries), a Monte-Carlo gradient-direction estimate at the boundary (``init_evals * sqrt(t)``
queries, capped by ``max_evals``, sent in ``probe_batch``-row calls), and a geometric step-size search
(≤ ``step_search_steps`` queries). Differences from the paper, for predictable budgets: binary
searches use a fixed number of steps instead of a tolerance, and samples whose next iteration
does not fit their remaining budget run it with fewer gradient evaluations or stop.

>>> out = run_attack("hopskipjump", target, x, y, {"norm": "l2", "max_queries": 1000})
"""

from __future__ import annotations

import math
from typing import cast

import torch
from pydantic import Field

from aisec.attacks.evasion._blackbox import (
    DECISION_ONLY,
    DecisionParams,
    QueryLedger,
    boundary_search,
    bshape,
    flat_norm,
    is_adversarial,
    start_decision_attack,
)
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm


class HopSkipJumpParams(DecisionParams):
    norm: Norm = Norm.L2
    max_iter: int = Field(default=50, ge=1, description="Gradient-estimation iterations.")
    init_evals: int = Field(default=100, ge=1, description="Gradient evaluations at the first iteration.")
    max_evals: int = Field(default=1000, ge=1, description="Cap on gradient evaluations per iteration.")
    gamma: float = Field(default=1.0, gt=0, description="Sets the probe size delta = gamma * dist / d.")
    step_search_steps: int = Field(default=10, ge=1, description="Halvings of the geometric step search.")
    probe_batch: int = Field(
        default=512, ge=1,
        description="Rows per predict call for the gradient probes (at least one sample's evals): bounds memory "
        "and keeps a CPU model in its fast batch range; a GPU target may prefer more.",
    )


@register_attack(
    "hopskipjump",
    requires=DECISION_ONLY,
    norms={Norm.L2, Norm.LINF},
    targeted=True,
    kind=AttackKind.MIN_NORM,
    paper="https://arxiv.org/abs/1904.02144",
)
class HopSkipJump:
    """HopSkipJump: query-efficient decision-based minimum-norm attack (L2, Linf)."""

    Params = HopSkipJumpParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: HopSkipJumpParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lo, hi = target.spec.value_range
        linf = params.norm is Norm.LINF
        n = x.shape[0]
        d = x[0].numel()
        ledger = QueryLedger(target, n, params.max_queries)
        x_adv, found = start_decision_attack(ledger, x, y, target_labels, lo, hi, params, linf=linf)
        overhead = params.search_steps + params.step_search_steps
        for t in range(1, params.max_iter + 1):
            live = torch.nonzero(found).flatten()
            left = params.max_queries - ledger.counts[live]
            live = live[left >= overhead + 2]
            if live.numel() == 0:
                break
            evals = min(int(params.init_evals * math.sqrt(t)), params.max_evals)
            evals = max(2, min(evals, int((params.max_queries - ledger.counts[live]).min()) - overhead))
            live = ledger.afford(live, evals + overhead)
            if live.numel() == 0:
                break
            xa, xs = x_adv[live], x[live]
            dist = flat_norm(xa - xs, linf)
            delta = (0.1 * (hi - lo)) * torch.ones_like(dist) if t == 1 else params.gamma * dist / d
            tl = target_labels[live] if target_labels is not None else None
            grad = _estimate_direction(ledger, xa, y[live], tl, live, delta, evals, lo, hi, linf, params.probe_batch)
            update = grad.sign() if linf else grad / bshape(flat_norm(grad, False).clamp_min(1e-12), grad)
            # Geometric step-size search: halve until the step stays adversarial.
            step = dist / math.sqrt(t)
            moved = xa.clone()
            pending = torch.arange(live.numel())
            for _ in range(params.step_search_steps):
                owners = ledger.afford(live[pending])
                if owners.numel() == 0:
                    break
                pending = pending[: owners.numel()]
                cand = (xa[pending] + bshape(step[pending], xa) * update[pending]).clamp(lo, hi)
                tlp = tl[pending] if tl is not None else None
                adv = is_adversarial(ledger.query(cand, owners), y[owners], tlp).cpu()
                moved[pending[adv]] = cand[adv]
                step[pending[~adv]] /= 2
                pending = pending[~adv]
                if pending.numel() == 0:
                    break
            x_adv[live] = moved
            mask = torch.zeros(n, dtype=torch.bool)
            mask[live] = True
            x_adv = boundary_search(ledger, x, x_adv, mask, y, target_labels, steps=params.search_steps, linf=linf)
        x_adv[~found] = x[~found]
        ledger.publish()
        return x_adv


def _estimate_direction(
    ledger: QueryLedger,
    xa: torch.Tensor,
    y: torch.Tensor,
    tl: torch.Tensor | None,
    owners: torch.Tensor,
    delta: torch.Tensor,
    evals: int,
    lo: float,
    hi: float,
    linf: bool,
    probe_batch: int,
) -> torch.Tensor:
    """Monte-Carlo estimate of the boundary's normal at each ``xa``, ``evals`` probes per sample.

    Samples are processed in groups of ``probe_batch // evals`` (at least one), so each ``predict``
    call and each probe tensor holds about ``probe_batch`` rows instead of ``len(xa) * evals``.
    """
    group = max(1, probe_batch // evals)
    out = torch.empty_like(xa)
    for s in range(0, xa.shape[0], group):
        sl = slice(s, s + group)
        out[sl] = _direction_group(
            ledger, xa[sl], y[sl], tl[sl] if tl is not None else None, owners[sl], delta[sl], evals, lo, hi, linf
        )
    return out


def _direction_group(
    ledger: QueryLedger,
    xa: torch.Tensor,
    y: torch.Tensor,
    tl: torch.Tensor | None,
    owners: torch.Tensor,
    delta: torch.Tensor,
    evals: int,
    lo: float,
    hi: float,
    linf: bool,
) -> torch.Tensor:
    m = xa.shape[0]
    shape = (m, evals, *xa.shape[1:])
    rnd = torch.randn(shape, device=xa.device) if not linf else torch.empty(shape, device=xa.device).uniform_(-1, 1)
    flat = rnd.reshape(m, evals, -1)
    rnd = (flat / flat.norm(dim=2, keepdim=True).clamp_min(1e-12)).view(shape)
    dl = delta.view(m, 1, *([1] * (xa.ndim - 1)))
    probe = (xa[:, None] + dl * rnd).clamp(lo, hi)
    rnd = (probe - xa[:, None]) / dl
    probs = ledger.query(probe.reshape(m * evals, *xa.shape[1:]), owners.repeat_interleave(evals))
    yy = y.repeat_interleave(evals)
    tt = tl.repeat_interleave(evals) if tl is not None else None
    f = is_adversarial(probs, yy, tt).float().view(m, evals) * 2 - 1
    mean = f.mean(1, keepdim=True)
    mixed = (mean.abs() < 1).float()
    f = mixed * (f - mean) + (1 - mixed) * mean.sign()  # all-equal decisions: move along/against the mean
    fv = f.view(m, evals, *([1] * (xa.ndim - 1)))
    return cast(torch.Tensor, (fv * rnd).mean(1))
