"""Square Attack (Linf and L2): score-based random search over square-shaped updates.

Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial attack via random
search", ECCV 2020, https://arxiv.org/abs/1912.00049

Norms: linf, l2 (one attack, ``norm=`` picks the paper's Algorithm 2 or 3; they share the search loop,
schedule, loss and budget handling, and differ only in the initialisation and the proposal).
Needs: probabilities only (black box). Untargeted or targeted.
Budget: ``max_queries`` per sample (the first query scores the initialisation), never more,
and never more than the target's remaining ``query_budget`` (see :mod:`._blackbox`).
Shapes: images ``(N, C, H, W)``; any other input is treated as one row ``(1, 1, D)``.

Batched: every still-unbroken sample is queried once per iteration in one call, each with its own
random window(s) (the reference code and ART draw one window per iteration for all samples).
Loss: the margin (own class minus best other, or best other minus the target class), the paper's
and AutoAttack's margin loss. It is read on the logits when the target exposes them (white box,
as AutoAttack's Square reads the model's output), else on the log-probabilities: the same margin
mathematically, but probabilities of classes 69 or more logits behind fall under the clamp
(1e-30), the log-probability margin saturates and the search stalls on confident models (see
``QueryLedger.query_log_scores``). Targeted, AutoAttack's code minimises the cross-entropy of the
target class instead; here the targeted loss is the margin too. Accepts only improvements, so the
loss never rises. AutoAttack's stage is ``max_queries=5000, p_init=0.8``.

- Linf: vertical-stripe initialisation at ``+-eps``; a proposal sets one ``s x s`` window of
  every channel to ``+-eps``.
- L2: a 5 x 5 grid of "pseudo-Gaussian" bumps (two opposite-signed lobes) with random signs,
  scaled to norm ``eps``; a proposal moves the perturbation mass of two random windows into a new
  bump in the first one, adds what the ``eps``-ball still allows, and rescales the whole
  perturbation to norm ``eps`` (as the authors' ``square_attack_l2``).

>>> out = run_attack("square", target, x, y, {"eps": 0.1, "max_queries": 500})
>>> out = run_attack("square", target, x, y, {"norm": "l2", "eps": 1.0, "max_queries": 500})
"""

from __future__ import annotations

import functools
from typing import cast

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams
from aisec.attacks.evasion._blackbox import QueryLedger, score_margin
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
    return p_init / 2.0 ** sum(k > t for t in _SCHEDULE)


@register_attack(
    "square",
    requires={Capability.PROBABILITIES},
    norms={Norm.LINF, Norm.L2},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/1912.00049",
)
class Square:
    """Square Attack: query-efficient score-based black-box random search (Linf, L2)."""

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
        l2 = params.norm is Norm.L2
        n = x.shape[0]
        img = x.reshape(n, *_as_image(x.shape[1:]))
        _, c, h, w = img.shape
        ledger = QueryLedger(target, n, params.max_queries)
        dev = x.device
        # delta: the search state. Linf: the unclipped +-eps pattern; L2: x_adv - x (as the paper).
        if l2:
            x_adv = _init_l2(img, eps, lo, hi)
            delta = x_adv - img
        else:  # vertical stripes of +-eps, one sign per channel and column
            delta = eps * _signs((n, c, 1, w), dev).expand(n, c, h, w).clone()
            x_adv = (img + delta).clamp(lo, hi)
        loss = torch.full((n,), torch.inf, device=dev)
        idx = ledger.afford(torch.arange(n))
        if idx.numel():
            tl = target_labels[idx] if target_labels is not None else None
            loss[idx] = score_margin(ledger.query_log_scores(x_adv[idx].reshape(-1, *x.shape[1:]), idx), y[idx], tl)
        started = torch.zeros(n, dtype=torch.bool)
        started[idx] = True
        rows = torch.arange(h, device=dev).view(1, 1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, 1, w)
        n_iters = params.max_queries - 1
        propose = _propose_l2 if l2 else _propose_linf
        # The samples still searched, with their state gathered in the order of ``act`` (ascending, so the
        # random draws go to the same samples as with the full tensors): re-gathered only when the set
        # changes, not on every one of the 5,000 iterations (on the digits CNN the gathers and scatters of the
        # full state were a fifth of an iteration).
        act = torch.zeros(0, dtype=torch.long)
        img_a = delta_a = x_adv_a = loss_a = y_a = torch.zeros(0)
        tl_a: torch.Tensor | None = None
        for it in range(n_iters):
            if it == 0:
                nxt = ledger.afford(torch.nonzero(started & (loss.cpu() >= 0)).flatten())
            else:
                nxt = ledger.afford(act[(loss_a >= 0).cpu()])
            if it == 0 or nxt.numel() != act.numel():
                if it > 0:  # hand the state back before the set shrinks
                    delta[act], x_adv[act], loss[act] = delta_a, x_adv_a, loss_a
                act = nxt
                img_a, delta_a, x_adv_a, loss_a, y_a = img[act], delta[act], x_adv[act], loss[act], y[act]
                tl_a = target_labels[act] if target_labels is not None else None
            if act.numel() == 0:
                break
            p = p_selection(params.p_init, it, n_iters)
            d_new = propose(delta_a, p, eps, rows, cols)
            x_new = (img_a + d_new).clamp(lo, hi)
            if l2:
                d_new = x_new - img_a
            l_new = score_margin(ledger.query_log_scores(x_new.reshape(-1, *x.shape[1:]), act), y_a, tl_a)
            better = l_new < loss_a
            if bool(better.any()):
                delta_a[better] = d_new[better]
                x_adv_a[better] = x_new[better]
                loss_a[better] = l_new[better]
        if act.numel():
            delta[act], x_adv[act], loss[act] = delta_a, x_adv_a, loss_a
        ledger.publish()
        return x_adv.reshape_as(x)


def _signs(shape: tuple[int, ...], dev: torch.device) -> torch.Tensor:
    return torch.randint(0, 2, shape, device=dev).float().mul_(2).sub_(1)


def _windows(m: int, sh: int, sw: int, rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One random ``sh x sw`` window per sample: its ``(m, 1, H, W)`` bool mask and top-left corner."""
    h, w = rows.shape[2], cols.shape[3]
    r0 = torch.randint(0, h - sh + 1, (m, 1, 1, 1), device=rows.device)
    c0 = torch.randint(0, w - sw + 1, (m, 1, 1, 1), device=rows.device)
    return (rows >= r0) & (rows < r0 + sh) & (cols >= c0) & (cols < c0 + sw), r0, c0


def _propose_linf(delta: torch.Tensor, p: float, eps: float, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    m, c, h, w = delta.shape
    if h == 1:
        sh, sw = 1, min(max(round(p * w), 1), w)
    else:
        s = min(max(round((p * h * w) ** 0.5), 1), h - 1, w)
        sh, sw = s, s
    window, _, _ = _windows(m, sh, sw, rows, cols)
    return torch.where(window, eps * _signs((m, c, 1, 1), delta.device), delta)


def _propose_l2(delta: torch.Tensor, p: float, eps: float, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The paper's L2 proposal (Algorithm 3), vectorised with one pair of windows per sample.

    Window 1 gets a new bump of random sign per channel plus its old content (normalised); the
    mass of windows 1 and 2, and whatever the eps-ball still allows, is put into window 1, window 2
    is emptied, and the whole perturbation is rescaled to L2 norm ``eps``.
    """
    m, c, h, w = delta.shape
    if h == 1:
        sh, sw = 1, min(max(round(p * w), 3), w)
    else:
        s = max(round((p * h * w) ** 0.5), 3)
        s += 1 - s % 2  # odd, so the bump is centred
        s = min(s, h, w)
        sh, sw = s, s
    w1, r1, c1 = _windows(m, sh, sw, rows, cols)
    w2, _, _ = _windows(m, sh, sw, rows, cols)
    w1f, both = w1.float(), (w1 | w2).float()
    norm_img = delta.flatten(1).norm(dim=1).view(m, 1, 1, 1)
    norm_w1 = (delta * w1f).square().sum((2, 3), keepdim=True).sqrt()
    norm_both = (delta * both).square().sum((2, 3), keepdim=True).sqrt()
    bump = _bump(sh, sw).to(delta.device)
    lr = (rows - r1).clamp(0, sh - 1)
    lc = (cols - c1).clamp(0, sw - 1)
    placed = bump[lr, lc]
    if sh == sw:  # random orientation of the two lobes, per sample
        placed = torch.where(torch.rand(m, 1, 1, 1, device=delta.device) < 0.5, placed, bump.T[lr, lc])
    new = (placed * _signs((m, c, 1, 1), delta.device) + delta / (1e-10 + norm_w1)) * w1f
    room = ((eps**2 - norm_img.square()).clamp_min(0) / c + norm_both.square()).sqrt()
    new = new / new.square().sum((2, 3), keepdim=True).sqrt().clamp_min(1e-12) * room
    d = delta * (1 - both) + new
    return cast(torch.Tensor, d * (eps / d.flatten(1).norm(dim=1).clamp_min(1e-12)).view(m, 1, 1, 1))


def _init_l2(img: torch.Tensor, eps: float, lo: float, hi: float) -> torch.Tensor:
    """A grid of (up to) 5 x 5 bump tiles with a random sign per tile and channel, at norm ``eps``."""
    n, c, h, w = img.shape
    th, tw = max(h // 5, 1), max(w // 5, 1)
    nh, nw = h // th, w // tw
    oh, ow = (h - th * nh) // 2, (w - tw * nw) // 2
    bump = _bump(th, tw).to(img.device)
    delta = torch.zeros_like(img)
    for i in range(nh):
        for j in range(nw):
            b = bump.T if th == tw and torch.rand(()) < 0.5 else bump
            rs, cs = oh + i * th, ow + j * tw
            delta[:, :, rs : rs + th, cs : cs + tw] = b * _signs((n, c, 1, 1), img.device)
    scale = eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    return cast(torch.Tensor, (img + delta * scale.view(n, 1, 1, 1)).clamp(lo, hi))


@functools.lru_cache(maxsize=64)
def _bump(sh: int, sw: int) -> torch.Tensor:
    """The paper's "meta pseudo-Gaussian" window pattern: two opposite-signed lobes of nested
    rectangles weighted 1/(k+1)^2, unit L2 norm. Split along rows (along columns for one-row windows)."""
    if sh >= 2:
        b = torch.cat([_lobe(sh // 2, sw), -_lobe(sh - sh // 2, sw)], 0)
    elif sw >= 2:
        b = torch.cat([_lobe(1, sw // 2), -_lobe(1, sw - sw // 2)], 1)
    else:
        b = torch.ones(1, 1)
    return b / cast(torch.Tensor, b.norm())


def _lobe(a: int, b: int) -> torch.Tensor:
    """``pseudo_gaussian_pert_rectangles`` of the authors' code: nested rectangles around the centre."""
    d = torch.zeros(a, b)
    r, c = a // 2, b // 2
    for k in range(max(a // 2 + 1, b // 2 + 1)):
        d[max(r, 0) : min(r + 2 * k + 1, a), max(c, 0) : min(c + 2 * k + 1, b)] += 1.0 / (k + 1) ** 2
        r, c = r - 1, c - 1
    return d / cast(torch.Tensor, d.norm())


def _as_image(shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    if len(shape) == 2:
        return 1, int(shape[0]), int(shape[1])
    d = 1
    for s in shape:
        d *= int(s)
    return 1, 1, d
