"""The math FAB and FAB-T share: box-constrained projection onto a hyperplane, and the search loop.

Croce & Hein, "Minimally distorted adversarial examples with a fast adaptive boundary attack",
ICML 2020, https://arxiv.org/abs/1907.02044

**Projection** (:func:`project_to_hyperplane`, the paper's Eq. 5): for points ``t`` in the box
``[lo, hi]^D`` and hyperplanes ``w . z = b``, the smallest ``d`` (in l2, linf or l1) with
``w . (t + d) = b`` and ``t + d`` in the box. Write ``r = |b - w . t|`` and flip ``w`` so that the
plane lies in its direction; coordinate ``i`` can then move ``room_i`` (``hi - t_i`` or
``t_i - lo``) toward it. The optimum moves each coordinate by

- l2: ``min(lambda |w_i|, room_i)`` (KKT of the box-constrained least-norm problem),
- linf: ``min(delta, room_i)`` (the smallest cube reaching the plane),
- l1: the coordinates with the largest ``|w_i|`` first, each up to its room (fractional knapsack),

with the scalar (``lambda`` or ``delta``) fixed by ``w . d = r``. The reach ``w . d`` is piecewise
linear and nondecreasing in the scalar, with a kink where a coordinate saturates, so sorting the
kinks and one cumulative sum give it at every kink and the segment that holds ``r`` in closed
form: no iteration, no loop over samples. When the box cannot reach the plane, every coordinate
moves its full room (the box point nearest the plane), as in the paper.

**Search** (:func:`fab_search`, the paper's Algorithm 1): at the iterate ``x1`` the decision
boundary with the closest class (untargeted: ``argmin_l |f_l| / ||grad f_l||_q``, ``q`` the dual
norm; targeted: the target class) is linearised as ``f(x1) + grad f . (z - x1) = 0``; ``x1`` and the
clean ``x0`` are both projected onto it (``d1``, ``d2``), and the next iterate is the biased
combination ``(1 - alpha)(x1 + eta d1) + alpha (x0 + eta d2)`` with
``alpha = min(||d1|| / (||d1|| + ||d2||), alpha_max)``, clipped to the box. Once an iterate is
adversarial it is kept if it is the closest so far and the search steps back toward ``x0``:
``x1 = x0 + beta (x1 - x0)``. Restarts after the first begin at a random point at distance
``min(best, eps) / 2`` of ``x0`` (the reference code's ``eps / 2`` for a sample not yet broken).

A sample counts as *done* once its closest adversarial example is within ``eps``: it gets no
further restarts (nor, in FAB-T, target classes), as in AutoAttack, where FAB's result is read at
that ``eps``. Every sample still searched runs all ``steps`` of a restart, because FAB keeps
shrinking the distance after the first success, unless ``stop_at_eps`` (the AutoAttack ensemble,
which reads FAB only at ``eps``): the sample then leaves the batch at the step it gets there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams, perturbation_norm, trace_margin
from aisec.core.target import Target
from aisec.core.types import Norm

_HUGE = 1e10


class FABParams(EvasionParams):
    """FAB's parameters; the defaults are the paper's and AutoAttack's."""

    steps: int = Field(default=100, ge=1, description="Iterations per restart (AutoAttack: 100).")
    restarts: int = Field(
        default=1, ge=1, description="Runs per sample; the second and later start at a random point (AutoAttack's "
        "'fab' stage: 5)."
    )
    alpha_max: float = Field(
        default=0.1, ge=0, le=1, description="Largest weight of the step from the clean input (bias toward x0)."
    )
    eta: float = Field(default=1.05, ge=1, description="Extrapolation past the linearised boundary.")
    beta: float = Field(
        default=0.9, gt=0, lt=1, description="Backward step toward the clean input after each success."
    )
    stop_at_eps: bool = Field(
        default=False, description="Stop searching a sample at the step it has an example within eps (the "
        "AutoAttack ensemble's reading, which only asks whether eps is reached); its distance is then not the "
        "smallest FAB would find, so robust accuracy below eps is not read from it.")


#: Rounds of the saturation-set iteration before a row falls back to the sort (see _piecewise_solve).
_FILL_ROUNDS = 12


def _piecewise_solve(
    r: torch.Tensor, kinks: torch.Tensor, slope: torch.Tensor, reach_at_kink: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``phi(s) = r`` for ``phi(s) = sum_i min(s * slope_i, reach_at_kink_i)`` per row.

    ``kinks[i] = reach_at_kink_i / slope_i`` (``inf`` where ``slope_i = 0``). Returns ``(s, feasible)``;
    where ``phi`` never reaches ``r`` the row is infeasible and ``s`` is ``inf``.

    Hand-written for speed: a row is solved by growing its set of saturated coordinates (water filling),
    ``s_{k+1} = (r - sum_{kink_i < s_k} reach_i) / sum_{kink_i >= s_k} slope_i`` from ``s_0 = r / sum slope``.
    ``phi`` is concave and below each of these linear pieces, so ``s_k`` rises monotonically to the root
    and is exact once the set stops growing, usually within a few rounds of a few passes over the row;
    rows still growing after ``_FILL_ROUNDS`` rounds are solved by sorting the kinks
    (:func:`_piecewise_solve_sorted`), which the first version did for every row: on FAB-T's projections of
    3 x 32 x 32 images the sort alone was a third of the attack's time.
    """
    total = reach_at_kink.sum(1)
    feasible = total >= r
    s = r / slope.sum(1).clamp_min(1e-30)
    count = torch.zeros_like(r)
    todo = torch.arange(r.shape[0], device=r.device)
    s_todo, kinks_t, slope_t, reach_t, r_t, count_t = s, kinks, slope, reach_at_kink, r, count
    for _ in range(_FILL_ROUNDS):
        sat = kinks_t < s_todo[:, None]
        n_sat = sat.sum(1).to(r.dtype)
        stable = n_sat == count_t
        if bool(stable.any()):
            s[todo[stable]] = s_todo[stable]
            keep = ~stable
            todo, s_todo, sat, n_sat = todo[keep], s_todo[keep], sat[keep], n_sat[keep]
            kinks_t, slope_t, reach_t, r_t = kinks_t[keep], slope_t[keep], reach_t[keep], r_t[keep]
            if todo.numel() == 0:
                break
        num = r_t - torch.where(sat, reach_t, 0).sum(1)
        den = torch.where(sat, 0, slope_t).sum(1)
        s_todo, count_t = (num / den.clamp_min(1e-30)).clamp_min(0), n_sat
    if todo.numel():
        s[todo] = _piecewise_solve_sorted(r[todo], kinks[todo], slope[todo], reach_at_kink[todo])[0]
    return torch.where(feasible, s, torch.full_like(s, torch.inf)), feasible


def _piecewise_solve_sorted(
    r: torch.Tensor, kinks: torch.Tensor, slope: torch.Tensor, reach_at_kink: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_piecewise_solve` by sorting the kinks: ``phi`` at every kink from one cumulative sum, then the
    segment that holds ``r`` in closed form."""
    ks, order = kinks.sort(1)
    sl = slope.gather(1, order)
    cs = reach_at_kink.gather(1, order)
    saturated = cs.cumsum(1)  # reach of the coordinates at or before each kink
    tail = sl.flip(1).cumsum(1).flip(1)
    free = torch.cat([tail[:, 1:], torch.zeros_like(tail[:, :1])], 1)  # slope of those after it
    phi = saturated + torch.where(torch.isfinite(ks), ks * free, torch.zeros_like(ks))
    k = (phi < r[:, None]).sum(1, keepdim=True)  # kinks passed before phi reaches r
    feasible = (k < kinks.shape[1]).squeeze(1)
    k = k.clamp(max=kinks.shape[1] - 1)
    sat_prev = torch.cat([torch.zeros_like(saturated[:, :1]), saturated], 1).gather(1, k).squeeze(1)
    free_prev = torch.cat([tail[:, :1], free], 1).gather(1, k).squeeze(1)
    s = ((r - sat_prev) / free_prev.clamp_min(1e-30)).clamp_min(0)
    return torch.where(feasible, s, torch.full_like(s, torch.inf)), feasible


def project_to_hyperplane(
    t: torch.Tensor, w: torch.Tensor, b: torch.Tensor, lo: float, hi: float, norm: Norm
) -> torch.Tensor:
    """The smallest ``d`` (``(N, D)``) with ``w . (t + d) = b`` and ``t + d`` in ``[lo, hi]``.

    ``t`` and ``w`` are ``(N, D)``, ``b`` is ``(N,)``; ``norm`` is the one minimised (l2, linf or l1).
    If the box cannot reach the plane, the box point nearest the plane (every coordinate moved as
    far toward it as the box allows).
    """
    r = b - (w * t).sum(1)
    sign = torch.where(r >= 0, 1.0, -1.0).to(w.dtype)
    w = w * sign[:, None]
    r = r.abs()
    a = w.abs()
    room = torch.where(w > 0, hi - t, t - lo).clamp_min(0)
    room = torch.where(a > 0, room, torch.zeros_like(room))
    reach = a * room  # what a saturated coordinate adds to w . d
    if norm is Norm.L2:
        kinks = torch.where(a > 0, room / a.clamp_min(1e-30), torch.full_like(a, torch.inf))
        lam, feasible = _piecewise_solve(r, kinks, a * a, reach)
        lam = torch.where(feasible, lam, torch.zeros_like(lam))  # inf * 0 would be nan
        amount = torch.where(feasible[:, None], torch.minimum(lam[:, None] * a, room), room)
    elif norm is Norm.LINF:
        kinks = torch.where(a > 0, room, torch.full_like(a, torch.inf))
        delta, _ = _piecewise_solve(r, kinks, a, reach)
        amount = torch.where(a > 0, torch.minimum(delta[:, None].expand_as(room), room), torch.zeros_like(room))
    elif norm is Norm.L1:
        # Cheapest first: a unit of w . d costs 1 / |w_i| of l1 norm.
        a_s, order = a.sort(1, descending=True)
        c = reach.gather(1, order)
        cum = c.cumsum(1)
        k = (cum < r[:, None]).sum(1, keepdim=True)
        full = torch.arange(a.shape[1], device=a.device)[None, :] < k
        before = torch.cat([torch.zeros_like(cum[:, :1]), cum], 1).gather(1, k.clamp(max=a.shape[1]))
        part = ((r[:, None] - before) / a_s.gather(1, k.clamp(max=a.shape[1] - 1)).clamp_min(1e-30))
        amt_sorted = torch.where(full, room.gather(1, order), torch.zeros_like(c))
        at_k = torch.arange(a.shape[1], device=a.device)[None, :] == k
        amt_sorted = torch.where(at_k, torch.minimum(part, room.gather(1, order)), amt_sorted)
        amount = torch.zeros_like(amt_sorted).scatter(1, order, amt_sorted)
    else:
        raise ValueError(f"FAB projects in l2, linf or l1, not {norm.value}")
    return torch.sign(w) * amount


def _dual_norm(g: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Dual norm over the last dimension (the distance to a hyperplane is ``|f| / ||w||_dual``)."""
    if norm is Norm.LINF:
        return g.abs().sum(-1)
    if norm is Norm.L2:
        return cast(torch.Tensor, g.norm(dim=-1))
    return g.abs().amax(-1)


def _boundary(
    target: Target, x1: torch.Tensor, y: torch.Tensor, target_labels: torch.Tensor | None, norm: Norm
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The linearised boundary to attack at ``x1``: ``(f, grad f (N, D), logits)``; adversarial where ``f > 0``.

    Untargeted: ``f_l = z_l - z_y`` for the class ``l`` whose linearised boundary is nearest
    (all class gradients, one backward pass per class). Targeted: ``f = z_t - z_y`` (one pass).
    """
    n = x1.shape[0]
    xg = x1.detach().requires_grad_(True)
    z = target.logits(xg).float()
    rows = torch.arange(n, device=x1.device)
    if target_labels is not None:
        f = z[rows, target_labels] - z[rows, y]
        (g,) = torch.autograd.grad(f.sum(), xg)
        return f.detach(), g.reshape(n, -1), z.detach()
    k = z.shape[1]
    grads = torch.stack(
        [torch.autograd.grad(z[:, j].sum(), xg, retain_graph=j < k - 1)[0].reshape(n, -1) for j in range(k)], 1
    )
    zd = z.detach()
    df = zd - zd[rows, y][:, None]
    dg = grads - grads[rows, y][:, None]
    dist = df.abs() / (_dual_norm(dg, norm) + 1e-12)
    dist[rows, y] = torch.inf
    best = dist.argmin(1)
    return df[rows, best], dg[rows, best], zd


def _random_start(x0: torch.Tensor, radius: torch.Tensor, norm: Norm, lo: float, hi: float) -> torch.Tensor:
    """``x0`` plus a random perturbation of ``norm`` exactly ``radius`` (per sample), clipped to the box."""
    t = 2 * torch.rand_like(x0) - 1 if norm is Norm.LINF else torch.randn_like(x0)
    t = t / perturbation_norm(t, norm).clamp_min(1e-12)[:, None]
    return (x0 + radius[:, None] * t).clamp(lo, hi)


def fab_search(
    target: Target,
    x: torch.Tensor,
    y: torch.Tensor,
    params: FABParams,
    *,
    target_labels: torch.Tensor | None = None,
    best_x: torch.Tensor | None = None,
    best_d: torch.Tensor | None = None,
    is_adversarial: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run FAB's restarts on the batch ``x`` ``(N, ...)`` and return ``(best_x, best_d)``.

    ``best_x``/``best_d`` carry the closest adversarial examples found so far (``best_d = inf``:
    none; ``best_x`` then equals ``x``) and are improved in place of copies. With ``target_labels``
    the boundary attacked is the one with the target class. ``is_adversarial(logits, idx)`` decides
    success for the rows ``idx``; by default ``argmax != y`` (or ``== target_labels`` when given).
    Samples with ``best_d <= eps`` are done and not searched.
    """
    lo, hi = target.spec.value_range
    norm = params.norm
    n = x.shape[0]
    flat0 = x.reshape(n, -1)
    best_x = flat0.clone() if best_x is None else best_x.reshape(n, -1).clone()
    best_d = torch.full((n,), torch.inf, device=x.device) if best_d is None else best_d.clone()

    def adversarial(z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if is_adversarial is not None:
            return is_adversarial(z, idx)
        pred = z.argmax(1)
        return pred == target_labels[idx] if target_labels is not None else pred != y[idx]

    for restart in range(params.restarts):
        idx = torch.nonzero(~(best_d <= params.eps)).flatten()
        if idx.numel() == 0:
            break
        x0 = flat0[idx]
        yi = y[idx]
        ti = target_labels[idx] if target_labels is not None else None
        if restart == 0:
            x1 = x0.clone()
        else:
            radius = torch.clamp(best_d[idx], max=params.eps) / 2
            x1 = _random_start(x0, radius, norm, lo, hi)
        shape = (idx.numel(), *x.shape[1:])
        # Each step needs the success check of the new iterate and the linearisation at the point it leaves
        # from (the iterate, or for the rows found adversarial, the iterate stepped back toward x0). Two ways,
        # with the same iterates: "gradient first" (the linearisation's forward pass at the iterate doubles as
        # its check; only the rows stepped back need a second forward and backward) costs (1 + a) forward and
        # backward passes for a fraction a of adversarial rows, "check first" (a forward pass without
        # gradients, then one forward and backward at the final points, as the reference code does) costs one
        # of each. The loop takes the cheaper for the fraction of the previous step (a forward pass is about a
        # third of a forward and backward one).
        check_first = False
        for step in range(params.steps + 1):
            f: torch.Tensor | None = None
            w: torch.Tensor | None = None
            if step > 0 and (check_first or step == params.steps):
                with torch.no_grad():
                    z = target.logits(x1.view(shape)).float()
            else:
                f, w, z = _boundary(target, x1.view(shape), yi, ti, norm)
            if step > 0:  # step 0 is the start (x0 or the random start), not a candidate, as in the paper
                trace_margin(z, ti if ti is not None else yi, targeted=ti is not None)
                adv = adversarial(z, idx)
                dist = perturbation_norm(x1 - x0, norm)
                better = adv & (dist < best_d[idx])
                best_x[idx[better]] = x1[better]
                best_d[idx[better]] = dist[better]
                if bool(adv.any()):
                    back = torch.nonzero(adv).flatten()
                    x1 = x1.clone()
                    x1[back] = x0[back] + params.beta * (x1[back] - x0[back])
                    if step < params.steps and f is not None and w is not None:
                        fb, wb, _ = _boundary(target, x1[back].view(-1, *x.shape[1:]), yi[back],
                                              ti[back] if ti is not None else None, norm)
                        f, w = f.clone(), w.clone()
                        f[back], w[back] = fb, wb
                check_first = float(adv.float().mean()) > 1 / 3
                # stop_at_eps: a sample with an adversarial example within eps is done (read at eps, as in the
                # AutoAttack ensemble) and leaves the batch now rather than at the end of the restart
                keep = ~(best_d[idx] <= params.eps) if params.stop_at_eps else None
                if keep is not None and not bool(keep.all()):
                    idx, x1, x0, yi = idx[keep], x1[keep], x0[keep], yi[keep]
                    ti = ti[keep] if ti is not None else None
                    if f is not None and w is not None:
                        f, w = f[keep], w[keep]
                    shape = (idx.numel(), *x.shape[1:])
                    if idx.numel() == 0:
                        break
            if step == params.steps:
                break
            if f is None or w is None:  # check first: the linearisation at the final points
                f, w, _ = _boundary(target, x1.view(shape), yi, ti, norm)
            with torch.no_grad():
                b = (w * x1).sum(1) - f  # the plane f + w . (z - x1) = 0 is w . z = w . x1 - f
                d = project_to_hyperplane(torch.cat([x1, x0]), torch.cat([w, w]), torch.cat([b, b]), lo, hi, norm)
                d1, d2 = d[: idx.numel()], d[idx.numel() :]
                a1 = perturbation_norm(d1, norm).clamp_min(1e-8)
                a2 = perturbation_norm(d2, norm).clamp_min(1e-8)
                alpha = (a1 / (a1 + a2)).clamp(0, params.alpha_max)[:, None]
                x1 = ((x1 + params.eta * d1) * (1 - alpha) + (x0 + params.eta * d2) * alpha).clamp(lo, hi)
    return best_x.view_as(x), best_d
