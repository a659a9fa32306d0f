"""CLEVER: an extreme-value estimate of the minimum adversarial distortion (Weng et al. 2018).

Weng, Zhang, Chen, Yi, Su, Gao, Hsieh, Daniel, "Evaluating the Robustness of Neural Networks:
An Extreme Value Theory Approach", ICLR 2018, https://arxiv.org/abs/1801.10578

For a sample ``x0`` with predicted class ``c`` and another class ``j``, the margin
``g_j = logit_c - logit_j`` must fall to zero before the prediction changes, and it cannot fall
faster than its local Lipschitz constant ``L_j`` (the largest dual norm of ``∇g_j`` in the ball).
CLEVER estimates ``L_j`` by drawing ``nb_batches × batch_size`` points uniformly in the
``norm``-ball of radius ``R`` around ``x0`` (clipped to the value range), taking the per-batch
maxima of ``‖∇g_j‖_q`` (``q`` the dual norm) and fitting a reverse Weibull to them; its location
is the estimate. Then::

    CLEVER-t(x0, j) = min(g_j(x0) / L_j, R)          CLEVER-u(x0) = min_{j ≠ c} CLEVER-t(x0, j)

Scores are in the units of the input (``[0, 1]`` pixels) and capped at ``R``. A larger score
means a larger estimated distortion is needed; it is an estimate, not a certified bound.

Work is batched on the target's device: the points of several samples go through one forward
pass, and the gradients of all margins ``g_j`` come from that single forward pass (one backward
per class over the whole batch; only the gradient norms are kept). The per-(sample, class) Weibull
fits are one vectorised call (:mod:`aisec.metrics.weibull`).

Defaults and how this differs from ART's ``art.metrics.clever_u``:

* ``nb_batches=10, batch_size=100`` (1000 gradient evaluations per sample and class) match
  common ART usage and run in seconds; the paper uses 500 × 1024. With few batches the
  three-parameter fit is poorly determined — use ≥ 50 batches for numbers you report.
* ``radius``: 2.0 (l2), 0.1 (linf), 10.0 (l1), times the width of the value range. The score can
  never exceed it, so pick it above the distortions of interest.
* Sampling: we draw fresh points for every batch. ART draws one pool of
  ``pool_factor × batch_size`` points per class and forms the batches by drawing *with
  replacement* from it, so its batches share points and its maxima are correlated.
* Fit: ART calls ``weibull_min.fit(-S, 1.0, optimizer=fmin)`` once. Started at shape 1, Nelder-Mead
  usually ends at the likelihood's singular boundary ``loc = -max(S)`` (shape < 1), so ART's
  estimate is mostly the largest sampled gradient norm. We take the maximum-likelihood fit over
  shapes in ``[1, 100]`` (the reference code's multi-start range), so our ``L_j ≥ max(S)`` and our
  scores are at most ART's for the same samples (``tests/reference/test_clever_reference.py``).
* ART evaluates the class gradients of the predicted and the target class separately, per class
  pair, in chunks of ``pool_factor`` points; we get all classes from one forward pass.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any, cast

import torch

from aisec.core.errors import ConfigError
from aisec.core.progress import Progress, no_progress
from aisec.core.target import Target, check_inputs, require
from aisec.core.types import Capability, Norm
from aisec.metrics.weibull import weibull_min_fit

DEFAULT_RADIUS = {Norm.L2: 2.0, Norm.LINF: 0.1, Norm.L1: 10.0}
SHAPE_PENALTY = 0.01
_GRAD_ELEMENTS = 1 << 22  # default points per pass: at most this many input values (16 MB) ...
_MAX_POINTS = 8192  # ... and at most this many points (activations grow with the model)


@dataclass(frozen=True)
class CleverResult:
    """CLEVER scores of N samples (all tensors on the CPU).

    ``per_class[n, j]`` is CLEVER-t for class ``j``: ``inf`` for the predicted class (and, for
    :func:`clever_t`, for classes not asked for). ``lipschitz`` holds the fitted ``L_j`` and
    ``max_grad_norm`` the largest sampled dual gradient norm (``nan`` where not computed);
    ``margin`` is ``logit_c - logit_j`` at the clean input; ``batch_maxima`` ``(N, K, nb_batches)``
    the per-batch maxima the Weibull fits saw, and ``weibull_shape`` their fitted shapes.
    """

    scores: torch.Tensor
    per_class: torch.Tensor
    lipschitz: torch.Tensor
    max_grad_norm: torch.Tensor
    margin: torch.Tensor
    predicted: torch.Tensor
    weibull_shape: torch.Tensor
    batch_maxima: torch.Tensor
    norm: Norm
    radius: float
    nb_batches: int
    batch_size: int
    seed: int | None
    targeted: bool = False

    def summary(self) -> dict[str, Any]:
        """Mean, median, min and max of the finite scores, with the settings that produced them.

        The median is the usual one (the mean of the two middle scores for an even count, as
        ``numpy.median``), not ``torch.median``'s lower middle value: the report's tile, its figure
        and the evidence all quote this one number.
        """
        s = self.scores[torch.isfinite(self.scores)].double()
        stats = (
            {"mean": float(s.mean()), "median": float(s.quantile(0.5)), "min": float(s.min()), "max": float(s.max())}
            if s.numel()
            else {"mean": math.nan, "median": math.nan, "min": math.nan, "max": math.nan}
        )
        return {
            **stats,
            "n": int(self.scores.numel()),
            "at_radius": int((self.scores >= self.radius).sum()),
            "norm": self.norm.value,
            "radius": self.radius,
            "nb_batches": self.nb_batches,
            "batch_size": self.batch_size,
            "targeted": self.targeted,
        }


def clever_u(
    target: Target,
    x: torch.Tensor,
    *,
    norm: Norm | str = Norm.L2,
    nb_batches: int = 10,
    batch_size: int = 100,
    radius: float | None = None,
    seed: int | None = 0,
    points_per_pass: int | None = None,
    shape_penalty: float = SHAPE_PENALTY,
    progress: Progress | None = None,
) -> CleverResult:
    """Untargeted CLEVER score of every sample in ``x`` (``(N, *input_shape)`` in the value range).

    ``points_per_pass`` bounds the forward batch (default: 8192 points or 2**22 input values,
    whichever is fewer); lower it if a large model runs out of memory.
    """
    return _clever(
        target, x, None, norm=norm, nb_batches=nb_batches, batch_size=batch_size, radius=radius,
        seed=seed, points_per_pass=points_per_pass, shape_penalty=shape_penalty, progress=progress,
    )


def clever_t(
    target: Target,
    x: torch.Tensor,
    target_class: int | torch.Tensor,
    *,
    norm: Norm | str = Norm.L2,
    nb_batches: int = 10,
    batch_size: int = 100,
    radius: float | None = None,
    seed: int | None = 0,
    points_per_pass: int | None = None,
    shape_penalty: float = SHAPE_PENALTY,
    progress: Progress | None = None,
) -> CleverResult:
    """Targeted CLEVER score towards ``target_class`` (an int or one label per sample).

    Samples already predicted as their target class get ``nan`` (the score is undefined).
    """
    n = x.shape[0]
    tc = torch.as_tensor(target_class).long().cpu()
    tc = tc.expand(n).clone() if tc.ndim == 0 else tc
    if tc.shape != (n,):
        raise ConfigError(f"target_class must be an int or have shape ({n},), got {tuple(tc.shape)}")
    k = target.spec.num_classes
    if int(tc.min()) < 0 or int(tc.max()) >= k:
        raise ConfigError(f"target classes span [{int(tc.min())}, {int(tc.max())}]; the model has {k} classes")
    return _clever(
        target, x, tc, norm=norm, nb_batches=nb_batches, batch_size=batch_size, radius=radius,
        seed=seed, points_per_pass=points_per_pass, shape_penalty=shape_penalty, progress=progress,
    )


def sample_ball(
    n: int, dim: int, radius: float, norm: Norm, *, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``n`` points drawn uniformly from the ``norm``-ball of ``radius`` in ``dim`` dimensions."""
    kw: dict[str, Any] = {"generator": generator, "device": device}
    if norm is Norm.LINF:
        return (torch.rand(n, dim, **kw) * 2 - 1) * radius
    if norm is Norm.L2:
        g = torch.randn(n, dim, **kw)
        r = radius * torch.rand(n, 1, **kw) ** (1.0 / dim)
        return g / cast(torch.Tensor, g.norm(dim=1, keepdim=True)).clamp_min(1e-12) * r
    if norm is Norm.L1:
        # (E_1..E_d) / (E_1 + ... + E_{d+1}) with E_i ~ Exp(1) is uniform in the simplex {x >= 0, Σx <= 1}.
        e = -torch.log(torch.rand(n, dim + 1, **kw).clamp_min(1e-30))
        pts = e[:, :dim] / e.sum(1, keepdim=True)
        signs = torch.randint(0, 2, (n, dim), **kw) * 2 - 1
        return pts * signs * radius
    raise ConfigError(f"CLEVER supports norms l1, l2 and linf, not '{norm.value}'")


def _dual_norm(g: torch.Tensor, q: Norm) -> torch.Tensor:
    if q is Norm.L2:
        return cast(torch.Tensor, torch.linalg.vector_norm(g, ord=2, dim=-1))
    if q is Norm.L1:
        return g.abs().sum(-1)
    return g.abs().amax(-1)


def _clever(
    target: Target,
    x: torch.Tensor,
    target_class: torch.Tensor | None,
    *,
    norm: Norm | str,
    nb_batches: int,
    batch_size: int,
    radius: float | None,
    seed: int | None,
    points_per_pass: int | None,
    shape_penalty: float,
    progress: Progress | None,
) -> CleverResult:
    require(
        target,
        frozenset({Capability.GRADIENTS}),
        what="CLEVER",
        alternatives="a white-box (torch) model; for grey/black-box targets use a query-based attack instead",
    )
    try:
        norm = Norm(norm)
    except ValueError as exc:
        raise ConfigError(f"unknown norm '{norm}'; CLEVER supports l1, l2 and linf") from exc
    if norm not in DEFAULT_RADIUS:
        raise ConfigError(f"CLEVER supports norms l1, l2 and linf, not '{norm.value}'")
    if nb_batches < 2:
        raise ConfigError(f"nb_batches must be at least 2 (the Weibull fit needs several maxima), got {nb_batches}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    spec = target.spec
    lo, hi = spec.value_range
    r = float(radius) if radius is not None else DEFAULT_RADIUS[norm] * (hi - lo)
    if not r > 0:
        raise ConfigError(f"radius must be positive, got {radius}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ConfigError("CLEVER needs at least one sample")
    check_inputs(spec, x, what="CLEVER input")
    progress = progress or no_progress
    dev = torch.device(spec.device)
    n, k = x.shape[0], spec.num_classes
    dim = math.prod(spec.input_shape)
    q = norm.dual

    x_dev = x.to(dev).float()
    with torch.no_grad():
        z0 = torch.cat([target.logits(x_dev[i : i + 1024]).float() for i in range(0, n, 1024)])
    pred = z0.argmax(1)
    margin = z0.gather(1, pred[:, None]) - z0  # (N, K), logit_c - logit_j

    # Classes whose margin we differentiate, per sample: (N, J).
    if target_class is None:
        others = torch.arange(k, device=dev).expand(n, k)
        classes = others[others != pred[:, None]].view(n, k - 1)
    else:
        classes = target_class.to(dev)[:, None]
    j_count = classes.shape[1]
    # grad_outputs: for class slot s, the vector e_c - e_{classes[:, s]} (zero where they coincide).
    eye = torch.eye(k, device=dev)
    weights = (eye[pred][None] - eye[classes.T]).contiguous()  # (J, N, K)

    per_sample = nb_batches * batch_size
    total = n * per_sample
    if points_per_pass is None:
        points_per_pass = min(_MAX_POINTS, max(1, _GRAD_ELEMENTS // dim))
    points_per_pass = max(1, min(points_per_pass, total))
    whole_batches = points_per_pass >= batch_size
    if whole_batches:
        points_per_pass -= points_per_pass % batch_size
    maxima = torch.zeros(n * nb_batches, j_count, device=dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed if seed is not None else secrets.randbits(62))
    chunks = math.ceil(total / points_per_pass)
    for step, p0 in enumerate(range(0, total, points_per_pass)):
        idx = torch.arange(p0, min(p0 + points_per_pass, total), device=dev)
        owner = idx // per_sample
        delta = sample_ball(idx.numel(), dim, r, norm, generator=gen, device=dev)
        pts = (x_dev.reshape(n, dim)[owner] + delta).clamp_(lo, hi).view(-1, *spec.input_shape)
        pts.requires_grad_(True)
        logits = target.logits(pts).float()
        v = weights[:, owner]  # (J, P, K)
        # One forward pass, one backward per class (a vmapped backward loops over convolutions
        # anyway and holds all J gradients at once); only the (J, P) norms are kept.
        norms = torch.empty(j_count, idx.numel(), device=dev)
        for slot in range(j_count):
            (g,) = torch.autograd.grad(logits, pts, grad_outputs=v[slot], retain_graph=slot < j_count - 1)
            norms[slot] = _dual_norm(g.reshape(idx.numel(), dim).float(), q)
        del logits, g, pts
        if whole_batches:
            b0 = p0 // batch_size
            maxima[b0 : b0 + idx.numel() // batch_size] = norms.view(j_count, -1, batch_size).amax(-1).T
        else:  # a batch spans several passes: running maximum
            maxima.scatter_reduce_(0, (idx // batch_size)[:, None].expand(-1, j_count), norms.T, "amax")
        progress("CLEVER", step + 1, chunks)

    s = maxima.double().view(n, nb_batches, j_count).permute(0, 2, 1).reshape(n * j_count, nb_batches)
    if dev.type == "mps":  # no float64 there
        s = s.cpu()
    fit = weibull_min_fit(-s, shape_penalty=shape_penalty)
    s, lip, shape = s.to(dev), (-fit.loc).view(n, j_count).to(dev), fit.shape.view(n, j_count).to(dev)
    mg = margin.double().gather(1, classes)
    t_scores = torch.where(lip > 0, mg / lip, torch.full_like(lip, math.inf)).clamp_max(r)
    t_scores = torch.where(mg <= 0, torch.zeros_like(t_scores), t_scores)

    full = torch.full((n, k), math.inf, dtype=torch.float64, device=dev)
    per_class = full.scatter(1, classes, t_scores)
    nan = torch.full((n, k), math.nan, dtype=torch.float64, device=dev)
    lipschitz = nan.scatter(1, classes, lip)
    max_norm = nan.scatter(1, classes, s.view(n, j_count, nb_batches).amax(-1))
    w_shape = nan.scatter(1, classes, shape)
    batch_max = torch.full((n, k, nb_batches), math.nan, dtype=torch.float64, device=dev)
    batch_max.scatter_(1, classes[..., None].expand(-1, -1, nb_batches), s.view(n, j_count, nb_batches))
    if target_class is None:
        scores = per_class.amin(1)
    else:
        undefined = classes[:, 0] == pred
        scores = torch.where(undefined, torch.full_like(t_scores[:, 0], math.nan), t_scores[:, 0])
        per_class = full.scatter(1, classes, scores[:, None])
    return CleverResult(
        scores=scores.float().cpu(),
        per_class=per_class.float().cpu(),
        lipschitz=lipschitz.float().cpu(),
        max_grad_norm=max_norm.float().cpu(),
        margin=margin.cpu(),
        predicted=pred.cpu(),
        weibull_shape=w_shape.float().cpu(),
        batch_maxima=batch_max.float().cpu(),
        norm=norm,
        radius=r,
        nb_batches=nb_batches,
        batch_size=batch_size,
        seed=seed,
        targeted=target_class is not None,
    )
