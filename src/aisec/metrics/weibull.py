"""Vectorised maximum-likelihood fit of a three-parameter Weibull, many samples at once.

CLEVER (Weng et al. 2018) estimates a local Lipschitz constant as the location of a reverse
Weibull fitted to per-batch maxima ``S`` of gradient norms. Like the reference code and ART, we
fit ``scipy.stats.weibull_min`` to ``-S``; the estimate is ``-loc``. One CLEVER run needs one fit
per (sample, class) pair — thousands — so this module fits a whole ``(M, N)`` array in a few
batched tensor passes instead of ``M`` calls of ``weibull_min.fit``.

Method. For a fixed location the scale has a closed form (``scale**c = mean((x - loc)**c)``) and
the profile log-likelihood in the shape ``c`` is unimodal with its maximum at the root of an
increasing function, found by safeguarded Newton. That leaves a one-dimensional profile over the
location, searched globally on a log grid of distances below ``min(x)`` and refined by
golden-section search. The grid replaces the reference implementation's restarts from several
starting shapes (``c_init ∈ {0.1, 1, 5, 10, 20, 50, 100}``): it finds the best likelihood those
restarts find, or a better one (tests/unit/metrics/test_weibull.py checks both).

Constraints, and why. The shape is kept in ``[min_shape, max_shape] = [1, 100]``:

* ``c < 1``: the likelihood is unbounded as ``loc -> min(x)`` (the density at ``loc`` is
  infinite), so "best likelihood" would always mean ``loc = min(x)``. scipy's Nelder-Mead, started
  at ``c = 1`` as in ART, often drifts into that singularity and stops at ``loc ≈ min(x)``. With
  ``c >= 1`` the likelihood is bounded and that boundary case is kept (``c = 1, loc = min(x)``)
  when nothing better exists, so those fits agree with scipy.
* ``c > 100``: when the maxima look Gumbel-like the likelihood keeps improving as
  ``c, -loc -> ∞`` (scipy then returns ``loc ≈ -1e8``), which would make CLEVER scores ≈ 0. We cap
  the shape at the largest reference start. With few maxima the cap is still reached often, and
  the location it gives is arbitrary; ``shape_penalty`` (used by CLEVER, as the reference code's
  ``mle_reg``) keeps such fits near the data.

Shapes: ``data`` is ``(M, N)`` (or ``(N,)``); every returned tensor is ``(M,)`` (or a scalar),
float64, on ``data``'s device.

>>> fit = weibull_min_fit(-maxima)        # maxima: (M, Nb)
>>> lipschitz = -fit.loc
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict, Unpack

import torch

_MAX_ELEMENTS = 1 << 22
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class WeibullFit:
    """Fitted ``weibull_min`` parameters (scipy's convention) and the fit's negative log-likelihood."""

    shape: torch.Tensor
    loc: torch.Tensor
    scale: torch.Tensor
    nll: torch.Tensor
    ks: torch.Tensor
    """Kolmogorov-Smirnov statistic of the data against the fitted distribution (a diagnostic)."""


def weibull_min_nll(
    data: torch.Tensor, shape: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Negative log-likelihood of ``weibull_min(shape, loc, scale)`` for each row of ``data``."""
    x = torch.as_tensor(data, dtype=torch.float64)
    c, loc_, s = (torch.as_tensor(v, dtype=torch.float64, device=x.device)[..., None] for v in (shape, loc, scale))
    z = (x - loc_) / s
    logpdf = torch.log(c) - torch.log(s) + (c - 1) * torch.log(z) - z**c
    logpdf = torch.where(z > 0, logpdf, torch.full_like(logpdf, -math.inf))
    return -logpdf.sum(-1)


class WeibullFitOptions(TypedDict, total=False):
    """The keyword options of :func:`weibull_min_fit`."""

    min_shape: float
    max_shape: float
    grid: int
    refine_steps: int
    shape_penalty: float


def weibull_min_fit(
    data: torch.Tensor,
    *,
    min_shape: float = 1.0,
    max_shape: float = 100.0,
    grid: int = 49,
    refine_steps: int = 30,
    shape_penalty: float = 0.0,
) -> WeibullFit:
    """Maximum-likelihood ``weibull_min`` fit (shape, loc, scale) for every row of ``data``.

    Equivalent to ``scipy.stats.weibull_min.fit(row)`` restarted from several shapes and keeping
    the best likelihood, restricted to ``min_shape <= shape <= max_shape`` (see the module notes).
    Rows whose values are all equal get ``loc = min(row)``, ``shape = nan``, ``scale = 0``.

    ``shape_penalty`` λ adds ``λ·shape²`` to the negative log-likelihood of the row rescaled to unit
    range (so the fit stays affine-equivariant). The reference CLEVER code's ``mle_reg`` method adds
    such a penalty (0.01) to stop the fit drifting towards huge shapes and far-away locations when
    the maxima look Gumbel-like; with 0 (the default) this is the plain MLE. ``nll`` is always the
    unpenalised negative log-likelihood of the original data.
    """
    if not 0 < min_shape < max_shape:
        raise ValueError(f"need 0 < min_shape < max_shape, got {min_shape}, {max_shape}")
    x = torch.as_tensor(data).to(torch.float64)
    squeeze = x.ndim == 1
    if squeeze:
        x = x[None]
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"data must be (M, N) with N >= 2, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("data contains NaN or infinite values")
    m, n = x.shape
    rows = max(1, _MAX_ELEMENTS // (grid * n))
    if m > rows:  # bound memory: the grid search holds (rows, grid, N) tensors
        parts = [
            weibull_min_fit(
                x[i : i + rows], min_shape=min_shape, max_shape=max_shape, grid=grid,
                refine_steps=refine_steps, shape_penalty=shape_penalty,
            )
            for i in range(0, m, rows)
        ]
        return WeibullFit(*(torch.cat([getattr(p, f) for p in parts]) for f in ("shape", "loc", "scale", "nll", "ks")))
    xmin, xmax = x.amin(1), x.amax(1)
    rng = xmax - xmin
    flat = rng <= 1e-12 * torch.maximum(xmax.abs(), xmin.abs()).clamp_min(1e-300)
    r = torch.where(flat, torch.ones_like(rng), rng)
    z = (x - xmin[:, None]) / r[:, None]  # in [0, 1], each row's minimum at 0
    u_lo, u_hi = math.log(min_shape), math.log(max_shape)

    # Global search: distances t (in units of the range) of the location below the minimum.
    log_t = torch.linspace(math.log(1e-9), math.log(1e3), grid, dtype=torch.float64, device=x.device)
    log_t = log_t.expand(m, grid)
    nll_g, u_g = _profile(z, log_t, u_lo, u_hi, None, shape_penalty)
    best = nll_g.argmin(1, keepdim=True)
    a = log_t.gather(1, (best - 1).clamp_min(0))
    b = log_t.gather(1, (best + 1).clamp_max(grid - 1))
    u0 = u_g.gather(1, best)

    # Local refinement: golden-section search on log t in the bracket around the best grid point.
    c1 = b - _GOLDEN * (b - a)
    c2 = a + _GOLDEN * (b - a)
    f1, u1 = _profile(z, c1, u_lo, u_hi, u0, shape_penalty)
    f2, u2 = _profile(z, c2, u_lo, u_hi, u0, shape_penalty)
    for _ in range(refine_steps):
        left = f1 <= f2  # minimum in [a, c2]
        b = torch.where(left, c2, b)
        a = torch.where(left, a, c1)
        new_c1 = torch.where(left, b - _GOLDEN * (b - a), c2)
        new_c2 = torch.where(left, c1, a + _GOLDEN * (b - a))
        probe = torch.where(left, new_c1, new_c2)
        fp, up = _profile(z, probe, u_lo, u_hi, torch.where(left, u1, u2), shape_penalty)
        f1, u1, f2, u2 = (
            torch.where(left, fp, f2),
            torch.where(left, up, u2),
            torch.where(left, f1, fp),
            torch.where(left, u1, up),
        )
        c1, c2 = new_c1, new_c2
    # Keep the best point seen: the refined one, or the grid point if the bracket was not unimodal.
    cand_t = torch.cat([c1, c2, log_t.gather(1, best)], 1)
    cand_f = torch.cat([f1, f2, nll_g.gather(1, best)], 1)
    cand_u = torch.cat([u1, u2, u0], 1)
    k = cand_f.argmin(1, keepdim=True)
    log_t_hat = cand_t.gather(1, k)
    u_hat = cand_u.gather(1, k)
    nll_z = cand_f.gather(1, k).squeeze(1)

    c = u_hat.exp().clamp(min_shape, max_shape)
    y = z + log_t_hat.exp()
    log_scale_z = _log_mean_exp(c * torch.log(y)) / c.squeeze(1)
    shape = c.squeeze(1)
    loc = xmin - log_t_hat.squeeze(1).exp() * r
    scale = log_scale_z.exp() * r
    nll = nll_z - shape_penalty * shape**2 + n * torch.log(r)

    shape = torch.where(flat, torch.full_like(shape, math.nan), shape)
    loc = torch.where(flat, xmin, loc)
    scale = torch.where(flat, torch.zeros_like(scale), scale)
    nll = torch.where(flat, torch.full_like(nll, math.nan), nll)
    ks = _ks_statistic(x, shape, loc, scale)
    out = WeibullFit(shape=shape, loc=loc, scale=scale, nll=nll, ks=ks)
    if squeeze:
        out = WeibullFit(*(v[0] for v in (out.shape, out.loc, out.scale, out.nll, out.ks)))
    return out


def reverse_weibull_location(maxima: torch.Tensor, **kwargs: Unpack[WeibullFitOptions]) -> torch.Tensor:
    """Estimated upper end point of the distribution of each row of ``maxima`` (``-loc`` of the fit to ``-maxima``)."""
    return -weibull_min_fit(-torch.as_tensor(maxima).to(torch.float64), **kwargs).loc


def _log_mean_exp(v: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(v, dim=-1) - math.log(v.shape[-1])


def _profile(
    z: torch.Tensor, log_t: torch.Tensor, u_lo: float, u_hi: float, u_init: torch.Tensor | None, penalty: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Profile NLL (scale and shape maximised out) of rows of ``z`` at locations ``-exp(log_t)``.

    ``z``: (M, N); ``log_t``: (M, G). Returns the NLL (M, G) in units of ``z`` and ``log c`` (M, G).
    The shape solves ``h(c) = Σ w·ly - 1/c - mean(ly) = 0`` with ``w = softmax(c·ly)``; ``h`` is
    increasing in ``c`` and the profile likelihood's derivative is ``-N·h(c)``, so clamping the
    root to ``[exp(u_lo), exp(u_hi)]`` gives the constrained maximum.
    """
    n = z.shape[1]
    ly = torch.log(z[:, None, :] + log_t.exp()[..., None])  # (M, G, N)
    mean_ly = ly.mean(-1)

    def h_and_slope(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = u.exp()
        w = torch.softmax(c[..., None] * ly, dim=-1)
        m1 = (w * ly).sum(-1)
        m2 = (w * ly * ly).sum(-1)
        h = m1 - 1.0 / c - mean_ly + (2 * penalty / n) * c
        dh_du = c * ((m2 - m1 * m1).clamp_min(0) + 1.0 / (c * c) + 2 * penalty / n)
        return h, dh_du

    lo = torch.full_like(mean_ly, u_lo)
    hi = torch.full_like(mean_ly, u_hi)
    h_bounds, _ = h_and_slope(torch.stack([lo, hi]))
    h_lo, h_hi = h_bounds[0], h_bounds[1]
    at_lo, at_hi = h_lo >= 0, h_hi <= 0  # the root lies outside the bounds: clamp
    fixed = at_lo | at_hi
    u = torch.full_like(mean_ly, 0.5 * (u_lo + u_hi)) if u_init is None else u_init.expand_as(mean_ly).clone()
    u = u.clamp(u_lo, u_hi)
    for _ in range(100):
        if bool(fixed.all()):
            break
        h, dh = h_and_slope(u)
        lo = torch.where(h < 0, u, lo)
        hi = torch.where(h < 0, hi, u)
        u_new = u - h / dh.clamp_min(1e-300)
        bad = ~((u_new >= lo) & (u_new <= hi)) | ~torch.isfinite(u_new)
        u_new = torch.where(bad, 0.5 * (lo + hi), u_new)
        moved = ((u_new - u).abs() > 1e-11) & ((hi - lo) > 1e-11)
        u = u_new
        if not bool((moved & ~fixed).any()):
            break
    u = torch.where(at_lo, lo.new_full((), u_lo), u)
    u = torch.where(at_hi, lo.new_full((), u_hi), u)
    c = u.exp()
    cl = c[..., None] * ly
    # NLL = -[N log c - N log mean(y^c) + (c - 1) Σ log y - N]
    nll = -(n * u - n * _log_mean_exp(cl) + (c - 1) * ly.sum(-1) - n)
    return nll + penalty * c * c, u


def _ks_statistic(x: torch.Tensor, shape: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    n = x.shape[1]
    xs, _ = x.sort(1)
    zz = ((xs - loc[:, None]) / scale[:, None]).clamp_min(0)
    cdf = -torch.expm1(-(zz ** shape[:, None]))
    i = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
    return torch.maximum((i / n - cdf).amax(1), (cdf - (i - 1) / n).amax(1))
