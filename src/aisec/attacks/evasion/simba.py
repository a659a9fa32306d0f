"""SimBA (pixel basis): simple black-box attack by coordinate-wise probability descent.

Guo et al., "Simple Black-box Adversarial Attacks", ICML 2019, https://arxiv.org/abs/1905.07121

Norms: linf. Needs: probabilities. Untargeted or targeted.
Each sample walks a random permutation of its coordinates; coordinate ``q`` is tried at
``x - eps`` and then ``x + eps`` and kept if the true-class probability drops (targeted: the target
probability rises). Each coordinate is changed at most once, so the perturbation stays inside the
Linf ball of radius ``eps`` (the paper's step size) — a fixed-eps attack here. At most two queries per
coordinate, plus one to score the start; batched over live samples. ``max_queries`` per sample.

>>> out = run_attack("simba", target, x, y, {"eps": 0.2, "max_queries": 500})
"""

from __future__ import annotations

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams
from aisec.attacks.evasion._blackbox import QueryLedger, is_adversarial
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Capability, Norm


class SimBAParams(EvasionParams):
    max_queries: int = Field(default=1000, ge=1, description="Queries per sample, including the first.")


@register_attack(
    "simba",
    requires={Capability.PROBABILITIES},
    norms={Norm.LINF},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/1905.07121",
)
class SimBA:
    """SimBA: simple score-based black-box attack in the pixel basis (Linf)."""

    Params = SimBAParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: SimBAParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lo, hi = target.spec.value_range
        n = x.shape[0]
        flat = x.reshape(n, -1)
        d = flat.shape[1]
        lab = y if target_labels is None else target_labels
        sign = 1.0 if target_labels is None else -1.0  # minimise sign * p(label)
        ledger = QueryLedger(target, n, params.max_queries)
        x_adv = flat.clone()
        score = torch.full((n,), torch.inf, device=x.device)
        done = torch.zeros(n, dtype=torch.bool)
        idx = ledger.afford(torch.arange(n))
        if idx.numel():
            p = ledger.query(x_adv[idx].view(-1, *x.shape[1:]), idx)
            score[idx] = sign * p.gather(1, lab[idx, None]).squeeze(1)
            tl = target_labels[idx] if target_labels is not None else None
            done[idx] = is_adversarial(p, y[idx], tl).cpu()
        live0 = torch.zeros(n, dtype=torch.bool)
        live0[idx] = True
        perm = torch.argsort(torch.rand(n, d, device=x.device), dim=1)
        for i in range(d):
            active = torch.nonzero(live0 & ~done).flatten()
            if active.numel() == 0:
                break
            improved = torch.zeros(n, dtype=torch.bool)
            for step in (-params.eps, params.eps):
                cand_idx = ledger.afford(active[~improved[active]])
                if cand_idx.numel() == 0:
                    break
                q = perm[cand_idx, i]
                cand = x_adv[cand_idx].clone()
                cand[torch.arange(cand_idx.numel()), q] = (flat[cand_idx, q] + step).clamp(lo, hi)
                p = ledger.query(cand.view(-1, *x.shape[1:]), cand_idx)
                s = sign * p.gather(1, lab[cand_idx, None]).squeeze(1)
                better = (s < score[cand_idx]).cpu()
                sel = cand_idx[better]
                x_adv[sel] = cand[better]
                score[sel] = s[better]
                improved[sel] = True
                tl = target_labels[cand_idx] if target_labels is not None else None
                done[sel] = is_adversarial(p[better], y[sel], tl[better] if tl is not None else None).cpu()
        ledger.publish()
        return x_adv.view_as(x)
