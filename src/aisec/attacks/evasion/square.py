"""Square Attack (Linf): score-based random search over square-shaped updates.

Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial attack via random
search", ECCV 2020, https://arxiv.org/abs/1912.00049

Norms: linf. Needs: probabilities only (black box). Untargeted or targeted.
Budget: ``max_queries`` per sample (the first query scores the stripe initialisation), never more,
and never more than the target's remaining ``query_budget`` (see :mod:`._blackbox`).
Shapes: images ``(N, C, H, W)``; any other input is treated as one row ``(1, 1, D)``.

Batched: every still-unbroken sample is queried once per iteration in one ``predict`` call, each
with its own random square. Loss is the log-probability margin (the paper's margin loss on the
scores the target gives). Accepts only improvements, so the loss never rises.

>>> out = run_attack("square", target, x, y, {"eps": 0.1, "max_queries": 500})
"""

from __future__ import annotations

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams
from aisec.attacks.evasion._blackbox import QueryLedger, margin
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Capability, Norm

# Iteration fractions (of 10,000) at which the square's area halves (paper, Appendix).
_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


class SquareParams(EvasionParams):
    max_queries: int = Field(default=1000, ge=1, description="Queries per sample, including the first.")
    p_init: float = Field(default=0.8, gt=0, le=1, description="Initial fraction of pixels in the square (ART: 0.8).")


def p_selection(p_init: float, it: int, n_iters: int) -> float:
    """The paper's piecewise-constant schedule for the square's area fraction."""
    k = int(it / max(n_iters, 1) * 10000)
    return p_init / 2 ** sum(k > t for t in _SCHEDULE)


@register_attack(
    "square",
    requires={Capability.PROBABILITIES},
    norms={Norm.LINF},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/1912.00049",
)
class Square:
    """Square Attack: query-efficient score-based black-box random search (Linf)."""

    Params = SquareParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: SquareParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lo, hi = target.spec.value_range
        eps = params.eps
        n = x.shape[0]
        img = x.reshape(n, *_as_image(x.shape[1:]))
        _, c, h, w = img.shape
        ledger = QueryLedger(target, n, params.max_queries)
        dev = x.device
        # Initialisation: vertical stripes of +-eps (one sign per channel and column).
        delta = eps * torch.randint(0, 2, (n, c, 1, w), device=dev).float().mul(2).sub(1).expand(n, c, h, w).clone()
        x_adv = (img + delta).clamp(lo, hi)
        loss = torch.full((n,), torch.inf, device=dev)
        idx = ledger.afford(torch.arange(n))
        if idx.numel():
            tl = target_labels[idx] if target_labels is not None else None
            loss[idx] = margin(ledger.query(x_adv[idx].reshape(-1, *x.shape[1:]), idx), y[idx], tl)
        started = torch.zeros(n, dtype=torch.bool)
        started[idx] = True
        rows = torch.arange(h, device=dev).view(1, 1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, 1, w)
        n_iters = params.max_queries - 1
        for it in range(n_iters):
            active = torch.nonzero(started & (loss.cpu() >= 0)).flatten()
            idx = ledger.afford(active)
            if idx.numel() == 0:
                break
            m = idx.numel()
            p = p_selection(params.p_init, it, n_iters)
            if h == 1:
                sh, sw = 1, min(max(round(p * w), 1), w)
            else:
                s = min(max(round((p * h * w) ** 0.5), 1), h - 1 if h > 1 else 1, w)
                sh, sw = s, s
            r0 = torch.randint(0, h - sh + 1, (m, 1, 1, 1), device=dev)
            c0 = torch.randint(0, w - sw + 1, (m, 1, 1, 1), device=dev)
            window = (rows >= r0) & (rows < r0 + sh) & (cols >= c0) & (cols < c0 + sw)
            signs = eps * torch.randint(0, 2, (m, c, 1, 1), device=dev).float().mul(2).sub(1)
            d_new = torch.where(window, signs, delta[idx])
            x_new = (img[idx] + d_new).clamp(lo, hi)
            tl = target_labels[idx] if target_labels is not None else None
            l_new = margin(ledger.query(x_new.reshape(-1, *x.shape[1:]), idx), y[idx], tl)
            better = l_new < loss[idx]
            sel = idx[better.cpu()]
            delta[sel] = d_new[better]
            x_adv[sel] = x_new[better]
            loss[sel] = l_new[better]
        ledger.publish()
        return x_adv.reshape_as(x)


def _as_image(shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    if len(shape) == 2:
        return 1, int(shape[0]), int(shape[1])
    d = 1
    for s in shape:
        d *= int(s)
    return 1, 1, d
