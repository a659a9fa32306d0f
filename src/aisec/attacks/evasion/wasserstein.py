"""Wasserstein attack: PGD in a Wasserstein ball, projected with Sinkhorn iterations.

Wong, Schmidt & Kolter, "Wasserstein Adversarial Examples via Projected Sinkhorn Iterations",
ICML 2019, https://arxiv.org/abs/1902.07906

Norms: wasserstein only (:attr:`~aisec.core.types.Norm.WASSERSTEIN`). Needs: gradients. Images only
(``(N, C, H, W)``, nonnegative value range). Untargeted or targeted.

The budget. An image is a distribution of mass (its pixel values, normalised to unit total); ``eps``
bounds the cost of moving the clean image's mass into the adversarial one, the ground cost of moving
mass between two pixels being the ``l_p`` distance of their positions (ART's convention; the
authors' code uses ``(di^2 + dj^2)^(p/2)``, which is the same only at p = 1), mass moving within its
channel and at most ``kernel_size // 2`` pixels along each axis (local transport, as in the paper).
So ``eps = 0.1`` means: on average the mass moves a tenth of a pixel. :meth:`Wasserstein.distance`
measures that cost exactly — one linear program per sample and channel (scipy's HiGHS), per channel
between the two images normalised to unit mass and weighted by the channel's share of the clean mass —
and it is what :attr:`~aisec.attacks.base.Outcome.distance` reports. The local restriction makes it an
upper bound on the unrestricted Wasserstein distance (the reference test checks both).

The attack (the paper's ``attack`` with its default steepest-ascent step): each step takes a
signed-gradient step of Linf size ``step_size`` on the cross-entropy, projects the result onto the
ball with the paper's *projected Sinkhorn* (Algorithm 2: block coordinate ascent on the dual of the
entropy-regularised projection, Newton steps on the ball's multiplier, the ``beta`` update through
the Lambert W function — here computed in log space, ``w + log w = z`` by Newton's method, so large
``regularization`` cannot overflow), and clips to the value range; a sample stops once fooled. The
Sinkhorn projection is approximate and the clipping removes mass, so after the last step every
sample is measured exactly and, if it lies outside the ball, moved back along the segment to ``x``
until the bound on its cost (the cost is convex along the segment) meets ``eps``: what the attack
returns is inside the ball, never merely near it. The paper grows ``eps`` while a sample resists (its
minimum-radius search); here ``eps`` is fixed, as for every fixed-eps attack, and the robustness check
sweeps it.

Cost: ``steps`` x ``sinkhorn_steps`` local-transport products (unfold + einsum, float64), plus two
LPs per sample (the final check here and the driver's measurement) of ``H * W * kernel_size^2``
variables: milliseconds for 8 x 8 digits, a fraction of a second for 28 x 28.

>>> out = run_attack("wasserstein", target, x, y, {"eps": 0.1, "steps": 50})
>>> out.distance.max() <= 0.1
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from aisec.attacks.base import EvasionParams, needs_gradients, trace_margin
from aisec.core.errors import ConfigError
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Modality, Norm

_LOG_FLOOR = 1e-10  # the paper's and ART's guard against log(0) on empty pixels
_DUST = 1e-6  # values below this fraction of the value range are set to 0 after each projection


class WassersteinParams(EvasionParams):
    norm: Norm = Field(default=Norm.WASSERSTEIN, description="wasserstein: the only budget of this attack.")
    eps: float = Field(
        default=0.1, ge=0, le=1e6,
        description="Wasserstein radius: mean distance (pixels) the unit-normalised mass moves.",
    )
    steps: int = Field(default=100, ge=1, description="Gradient steps (ART: max_iter=400).")
    step_size: float = Field(default=0.1, gt=0, description="Linf size of each signed-gradient step (paper: 0.1).")
    p: int = Field(default=2, ge=1, description="Ground cost: the l_p distance between pixel positions.")
    kernel_size: int = Field(default=5, ge=1, le=31, description="Local transport window (odd): mass moves "
                             "at most kernel_size // 2 pixels per axis.")
    regularization: float = Field(default=1000.0, gt=0, description="Entropic regularisation of the "
                                  "projection (paper: 1000; larger is closer to the exact projection).")
    sinkhorn_steps: int = Field(default=50, ge=1, description="Iterations of each projected Sinkhorn.")

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 != 1:
            raise ValueError(f"kernel_size must be odd (the window is centred on the pixel), got {v}")
        return v


@register_attack(
    "wasserstein",
    requires=needs_gradients(),
    norms={Norm.WASSERSTEIN},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/1902.07906",
    natural_norm=Norm.WASSERSTEIN,
    modalities=frozenset({Modality.IMAGE}),
    iterative=True,
)
class Wasserstein:
    """Wasserstein PGD (Wong et al. 2019): signed-gradient steps projected onto a Wasserstein ball."""

    Params = WassersteinParams

    def __init__(self) -> None:
        # The last batch measured by run(): (x, x_adv, distance), so that distance() need not solve the
        # same linear programs again for the samples the driver hands back unchanged.
        self._memo: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: WassersteinParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_images(target, x)
        lo, hi = target.spec.value_range
        x = x.detach()
        n = x.shape[0]
        mass = x.reshape(n, -1).sum(1).double()
        active = mass > 0  # an empty image has no mass to move: its ball is {x}
        if params.eps == 0:
            return x.clone()
        cost = ground_cost(params.p, params.kernel_size).to(x.device)
        unit = x.double() / _b(mass.clamp_min(1e-30), x)
        labels = y if target_labels is None else target_labels
        sign = 1.0 if target_labels is None else -1.0
        # Pixels with no clean mass within the window cannot receive any: the ball holds nothing there.
        k = params.kernel_size
        reach = F.max_pool2d((x > 0).float(), k, stride=1, padding=k // 2) > 0
        x_adv = x.clone()
        for _ in range(params.steps):
            x_adv.requires_grad_(True)
            logits = target.logits(x_adv).float()
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, labels, reduction="sum"), x_adv)
            trace_margin(logits, labels, targeted=target_labels is not None)
            with torch.no_grad():
                pred = logits.argmax(1)
                fooled = pred != y if target_labels is None else pred == target_labels
                active &= ~fooled
                x_adv = x_adv.detach()
                if not active.any():
                    break
                idx = torch.nonzero(active).flatten()
                stepped = (x_adv[idx] + sign * params.step_size * grad[idx].sign()).double()
                m = _b(mass[idx], stepped)
                eps = torch.full((idx.numel(),), params.eps, dtype=torch.float64, device=x.device)
                z = projected_sinkhorn(unit[idx], stepped / m, cost, eps, params.regularization,
                                       params.sinkhorn_steps) * m
                # The projection floors empty pixels at 1e-10 (for the log), so it leaves dust there, and
                # some mass where none can be moved; either would make the exact distance infinite.
                z = torch.where((z < _DUST * (hi - lo)) | ~reach[idx], 0.0, z)
                x_adv[idx] = z.float().clamp(lo, hi)
        out, d = fit_to_ball(x, x_adv.detach(), params)
        self._memo = (x.detach().cpu(), out.detach().cpu(), d)
        return out

    def distance(self, x: torch.Tensor, x_adv: torch.Tensor, params: WassersteinParams) -> torch.Tensor:
        """The exact (local-transport) Wasserstein distance of each ``x_adv`` from its ``x``, ``(N,)``."""
        xc, ac = x.detach().cpu(), x_adv.detach().cpu()
        d = torch.full((x.shape[0],), math.nan, dtype=torch.float64)
        if self._memo is not None and self._memo[0].shape == xc.shape:
            mx, ma, md = self._memo
            same = (mx == xc).flatten(1).all(1) & (ma == ac).flatten(1).all(1)
            d[same] = md[same]
        todo = torch.nonzero(d.isnan()).flatten()
        if todo.numel():
            per_channel, share = channel_distances(xc[todo], ac[todo], params.p, params.kernel_size)
            d[todo] = _combine(per_channel, share)
        return d.float()


def _check_images(target: Target, x: torch.Tensor) -> None:
    lo, _ = target.spec.value_range
    if target.spec.modality is not Modality.IMAGE or x.ndim != 4:
        raise ConfigError(
            f"the Wasserstein attack moves pixel mass and needs images (N, C, H, W); model "
            f"'{target.spec.name}' takes {target.spec.modality.value} input of shape {tuple(x.shape[1:])}. "
            "Use an Lp attack such as 'pgd' instead"
        )
    if lo < 0:
        raise ConfigError(
            f"the Wasserstein attack treats pixel values as mass and needs a nonnegative value range; model "
            f"'{target.spec.name}' has {target.spec.value_range}. Give the model inputs in [0, 1] and put the "
            "normalisation inside it"
        )


def _b(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


@functools.lru_cache(maxsize=16)
def _offsets(kernel_size: int) -> tuple[tuple[int, int], ...]:
    c = kernel_size // 2
    return tuple((i - c, j - c) for i in range(kernel_size) for j in range(kernel_size))


def ground_cost(p: int, kernel_size: int) -> torch.Tensor:
    """Cost of moving unit mass by each window offset, row-major ``(kernel_size**2,)``: ``||(di, dj)||_p``."""
    return torch.tensor([(abs(di) ** p + abs(dj) ** p) ** (1.0 / p) for di, dj in _offsets(kernel_size)],
                        dtype=torch.float64)


def local_transport(weights: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``out[n, c, i] = sum_o weights[n, o] * v[n, c, i + offset_o]`` (zero outside the image).

    ``weights`` is ``(N, k*k)`` over the window offsets (row-major). One grouped convolution (a
    cross-correlation, which is exactly this sum) with one kernel per sample. The cost is symmetric in
    the offset, so this operator is its own transpose: it serves both sides of the transport plan.
    """
    n, c, h, w = v.shape
    k = round(math.sqrt(weights.shape[1]))
    kern = weights.view(n, 1, 1, k, k).expand(n, c, 1, k, k).reshape(n * c, 1, k, k)
    return F.conv2d(v.reshape(1, n * c, h, w), kern, padding=k // 2, groups=n * c).view(n, c, h, w)


def _bdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).reshape(a.shape[0], -1).sum(1)


def lambertw_exp(z: torch.Tensor, iters: int = 50) -> torch.Tensor:
    """The Lambert W function at ``exp(z)``: the ``w > 0`` with ``w + log w = z``.

    Newton's method on ``u = log w`` (``e^u + u - z``: convex and increasing, so it converges from any
    start), which never forms ``exp(z)`` and so never overflows.
    """
    u = torch.where(z < 1, z, torch.log((z - torch.log(z.clamp_min(1.0))).clamp_min(1e-300)))
    for _ in range(iters):
        eu = torch.exp(u)
        step = (eu + u - z) / (eu + 1)
        u = u - step
        if float(step.abs().max()) < 1e-13:
            break
    return torch.exp(u)


def projected_sinkhorn(
    x: torch.Tensor, y: torch.Tensor, cost: torch.Tensor, eps: torch.Tensor, lam: float, iters: int
) -> torch.Tensor:
    """Approximately ``argmin_z ||z - y||_2`` over ``{z : W(x, z) <= eps}`` (the paper's Algorithm 2).

    ``x`` (nonnegative, unit mass per sample) and ``y`` are ``(N, C, H, W)`` float64; ``eps`` is ``(N,)``;
    ``cost`` the window's ground cost. Block coordinate ascent on the dual of the projection with entropy
    regularisation ``1/lam``: ``alpha`` and ``beta`` in closed form, the ball's multiplier ``psi >= 0`` by a
    damped Newton step; stops when the dual objective settles (relative 1e-4) or after ``iters``.
    """
    n = x.shape[0]
    m = x[0].numel()
    logx = x.clamp_min(_LOG_FLOOR).log()
    alpha = torch.full_like(x, -math.log(m))
    beta = torch.full_like(x, -math.log(m))
    exp_beta = torch.exp(-beta)
    psi = torch.ones(n, dtype=x.dtype, device=x.device)
    c1, c2 = cost[None], cost.square()[None]

    def kernel(psi: torch.Tensor) -> torch.Tensor:
        return torch.exp(-psi[:, None] * c1 - 1)

    k = kernel(psi)
    old = torch.full((n,), -math.inf, dtype=x.dtype, device=x.device)
    for _ in range(iters):
        alpha = torch.log(local_transport(k, exp_beta).clamp_min(1e-300)) - logx
        exp_alpha = torch.exp(-alpha)
        z = math.log(lam) + lam * y + torch.log(local_transport(k, exp_alpha).clamp_min(1e-300))
        beta = lambertw_exp(z) - lam * y
        exp_beta = torch.exp(-beta)
        g = -eps + _bdot(exp_alpha, local_transport(k * c1, exp_beta))
        h = -_bdot(exp_alpha, local_transport(k * c2, exp_beta))
        delta = g / h
        t = torch.ones_like(delta)
        neg = psi - t * delta < 0
        while bool(neg.any()) and float(t.min()) > 1e-2:
            t = torch.where(neg, t / 2, t)
            neg = psi - t * delta < 0
        psi = (psi - t * delta).clamp_min(0)
        k = kernel(psi)
        obj = (-0.5 / lam * _bdot(beta, beta) - psi * eps - _bdot(alpha.clamp(max=1e10), x)
               - _bdot(beta.clamp(max=1e10), y) - _bdot(exp_alpha, local_transport(k, exp_beta)))
        if bool(((obj - old).abs() <= 1e-4 + 1e-4 * obj.abs()).all()):
            break
        old = obj
    return beta / lam + y


# -- exact measurement ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _transport_lp(h: int, w: int, kernel_size: int, p: int) -> tuple[np.ndarray, Any]:
    """Costs and the sparse marginal constraints of every local move on an ``h x w`` grid."""
    from scipy import sparse

    src, dst, cst = [], [], []
    gc = ground_cost(p, kernel_size).tolist()
    for o, (di, dj) in enumerate(_offsets(kernel_size)):
        for i in range(h):
            for j in range(w):
                if 0 <= i + di < h and 0 <= j + dj < w:
                    src.append(i * w + j)
                    dst.append((i + di) * w + (j + dj))
                    cst.append(gc[o])
    nv, m = len(src), h * w
    cols = np.arange(nv)
    a_eq = sparse.csr_matrix(
        (np.ones(2 * nv), (np.concatenate([src, np.asarray(dst) + m]), np.concatenate([cols, cols]))),
        shape=(2 * m, nv),
    )
    return np.asarray(cst), a_eq


def _transport_cost(a: np.ndarray, b: np.ndarray, h: int, w: int, kernel_size: int, p: int) -> float:
    """Exact minimum cost of moving distribution ``a`` onto ``b`` (both unit mass) by local moves."""
    from scipy.optimize import linprog

    if np.array_equal(a, b):
        return 0.0
    cst, a_eq = _transport_lp(h, w, kernel_size, p)
    res = linprog(cst, A_eq=a_eq, b_eq=np.concatenate([a, b]), bounds=(0, None), method="highs")
    return float(res.fun) if res.status == 0 else math.inf


def channel_distances(
    x: torch.Tensor, x_adv: torch.Tensor, p: int, kernel_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample and channel, the exact local-transport distance between the channel of ``x`` and of
    ``x_adv``, each normalised to unit mass, ``(N, C)`` float64 (inf where no local plan exists), and each
    channel's share of the clean mass, ``(N, C)``."""
    n, c, h, w = x.shape
    xa = x.detach().double().cpu().numpy().reshape(n, c, h * w)
    xb = x_adv.detach().double().cpu().numpy().reshape(n, c, h * w)
    ma, mb = xa.sum(2), xb.sum(2)
    total = ma.sum(1, keepdims=True)
    share = np.divide(ma, total, out=np.zeros_like(ma), where=total > 0)
    out = np.zeros((n, c))
    for i in range(n):
        for ch in range(c):
            if ma[i, ch] <= 0 or mb[i, ch] <= 0:
                out[i, ch] = 0.0 if ma[i, ch] <= 0 and mb[i, ch] <= 0 else math.inf
                continue
            out[i, ch] = _transport_cost(xa[i, ch] / ma[i, ch], xb[i, ch] / mb[i, ch], h, w, kernel_size, p)
    empty = total[:, 0] <= 0  # no clean mass at all: only x itself is at distance 0
    same = np.all(xa == xb, axis=(1, 2))
    out[empty] = np.where(same[empty], 0.0, math.inf)[:, None]
    return torch.from_numpy(out), torch.from_numpy(share)


def _combine(per_channel: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    contrib = torch.where(share > 0, share * per_channel, torch.where(per_channel > 0, per_channel, 0.0))
    return contrib.sum(1)


def fit_to_ball(
    x: torch.Tensor, x_adv: torch.Tensor, params: WassersteinParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x_adv`` moved back toward ``x`` along the segment, where needed, until its distance is at most eps.

    Returns the points and their exact distances (NaN for the moved ones, which are at most eps but
    were not measured again).

    On ``x_t = x + t (x_adv - x)`` each channel's normalised image is a mixture of the clean one (weight
    ``w_c(t) = (1 - t) m_c / ((1 - t) m_c + t m'_c)``, with ``m``, ``m'`` the channel masses) and the
    adversarial one, so by convexity its distance is at most ``(1 - w_c(t))`` times the measured one; the
    largest ``t`` whose bound meets ``eps`` is found by bisection. The segment stays in the value range.
    """
    per_channel, share = channel_distances(x, x_adv, params.p, params.kernel_size)
    d = _combine(per_channel, share)
    over = ~(d <= params.eps)
    if not bool(over.any()):
        return x_adv, d
    n = x.shape[0]
    ma = x.detach().double().cpu().reshape(n, x.shape[1], -1).sum(2)
    mb = x_adv.detach().double().cpu().reshape(n, x.shape[1], -1).sum(2)

    def bound(t: torch.Tensor) -> torch.Tensor:
        tt = t[:, None]
        mix = (1 - tt) * ma + tt * mb
        wc = torch.where(mix > 0, (1 - tt) * ma / mix.clamp_min(1e-300), torch.ones_like(mix))
        return _combine(torch.where(per_channel > 0, (1 - wc) * per_channel, 0.0), share)

    lo_t = torch.zeros(n, dtype=torch.float64)
    hi_t = torch.ones(n, dtype=torch.float64)
    for _ in range(40):
        mid = (lo_t + hi_t) / 2
        ok = bound(mid) <= params.eps
        lo_t = torch.where(ok, mid, lo_t)
        hi_t = torch.where(ok, hi_t, mid)
    t = torch.where(over, lo_t, torch.ones_like(lo_t))
    d = torch.where(over, torch.where(t > 0, math.nan, 0.0), d)
    t = t.to(x.device, x.dtype)
    return torch.where(_b(over, x).to(x.device), x + _b(t, x) * (x_adv - x), x_adv), d
