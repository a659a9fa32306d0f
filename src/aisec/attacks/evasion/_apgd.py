"""The Auto-PGD loop shared by ``apgd-ce``, ``apgd-dlr`` and ``apgd-t`` (private to ``attacks/evasion``).

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690 (Algorithm 1).

APGD is PGD without a step size to tune:

- start: a random point of the eps-sphere (Linf: ``eps * u / ||u||_inf`` with ``u`` uniform in
  ``[-1, 1]^d``; L2: ``eps * g / ||g||_2`` with ``g`` Gaussian), clipped to the value range;
- step ``k``: ``z = P(x_k + eta * s(grad))`` (``s`` = sign for Linf, unit-L2 gradient for L2) then
  ``x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha)(x_k - x_{k-1}))`` with momentum
  ``alpha = 0.75`` (1 on the first step), ``P`` the projection on the ball and the range;
- step size ``eta`` starts at ``2 eps`` and halves at checkpoints ``w_j`` (the first after 22 % of the
  steps, then spaced 3 % of the steps closer each time, at least 6 % apart) where either the
  objective rose in at most a fraction ``rho`` (0.75) of the steps since the last checkpoint, or the
  step was not halved at the last checkpoint and the best objective has not improved since; after
  a halving the iterate restarts from the best point found (the paper's ``x_max``);
- the best point (highest objective) is tracked per sample; a sample counts as broken as soon as any
  iterate is misclassified (targeted: classified as the target), and that iterate is returned.

Every sample has its own step size and checkpoint state, so samples are independent: a broken
sample is dropped from the batch at once (its later iterates cannot change the result) and the loop
stops when none is left. Restarts re-run the whole loop from a fresh random start on the samples
still unbroken.

Deviation from the authors' code (``autopgd_base.py``), on purpose: the first checkpoint's count of
rising steps compares the first step's objective with the objective at the start, as the paper
writes; the authors' code compares it with 0 (an unfilled history row).

Losses (per sample, higher = stronger attack):

- CE: the cross-entropy of the true label (targeted: minus the cross-entropy of the target);
- DLR: ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)`` with ``z_pi`` the sorted logits, invariant to
  shifting and scaling the logits (needs 3 classes);
- targeted DLR: ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` (needs 4 classes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from pydantic import Field

from aisec.attacks.base import EvasionParams, trace_margin
from aisec.core.errors import ConfigError
from aisec.core.target import Target
from aisec.core.types import Norm

#: ``loss(logits, y, aim) -> (N,)`` with ``aim`` the target labels (None: untargeted).
Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]

_DLR_TINY = 1e-12  # keeps the DLR denominator off zero (as in the paper's code)


class APGDParams(EvasionParams):
    steps: int = Field(default=100, ge=1, description="Iterations per restart (the paper's N_iter).")
    restarts: int = Field(default=1, ge=1, description="Random restarts, each only on the samples still unbroken.")
    rho: float = Field(default=0.75, gt=0, le=1, description="Halve the step when the objective rose in at "
                       "most this fraction of the steps since the last checkpoint.")
    eot_iter: int = Field(default=1, ge=1, description="Gradients averaged per step over this many forward "
                          "passes (Expectation over Transformation, for stochastic models).")


def ce_loss(logits: torch.Tensor, y: torch.Tensor, aim: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy of the true label; targeted: minus the cross-entropy of the target."""
    if aim is None:
        return F.cross_entropy(logits, y, reduction="none")
    return -F.cross_entropy(logits, aim, reduction="none")


def dlr_loss(logits: torch.Tensor, y: torch.Tensor, aim: torch.Tensor | None = None) -> torch.Tensor:
    """Difference of Logits Ratio (paper, eq. 6): ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)``."""
    srt = logits.sort(dim=1).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    y_on_top = logits.argmax(1) == y
    other = torch.where(y_on_top, srt[:, -2], srt[:, -1])
    return -(z_y - other) / (srt[:, -1] - srt[:, -3] + _DLR_TINY)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, aim: torch.Tensor | None) -> torch.Tensor:
    """Targeted DLR (paper, eq. 7): ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``."""
    if aim is None:
        raise ConfigError("the targeted DLR loss needs target labels")
    srt = logits.sort(dim=1).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, aim[:, None]).squeeze(1)
    return -(z_y - z_t) / (srt[:, -1] - 0.5 * (srt[:, -3] + srt[:, -4]) + _DLR_TINY)


def require_classes(num_classes: int, needed: int, what: str) -> None:
    """A clear error when the model has too few classes for a loss."""
    if num_classes < needed:
        raise ConfigError(
            f"{what} needs a model with at least {needed} classes (its loss ranks the top {needed - 1} "
            f"logits); this one has {num_classes}. Use 'apgd-ce' instead."
        )


def _unit(t: torch.Tensor, norm: Norm) -> torch.Tensor:
    flat = t.reshape(t.shape[0], -1)
    n = flat.abs().amax(1) if norm is Norm.LINF else cast(torch.Tensor, flat.norm(dim=1))
    return t / (n.view(-1, *([1] * (t.ndim - 1))) + 1e-12)


def _project(z: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm, lo: float, hi: float) -> torch.Tensor:
    """Onto the ``norm`` ball of radius ``eps`` around ``x``, then into ``[lo, hi]``."""
    if norm is Norm.LINF:
        return torch.minimum(torch.maximum(z, x - eps), x + eps).clamp(lo, hi)
    d = z - x
    n = cast(torch.Tensor, d.reshape(d.shape[0], -1).norm(dim=1)).view(-1, *([1] * (x.ndim - 1)))
    return (x + _unit(d, norm) * n.clamp(max=eps)).clamp(lo, hi)


def _loss_grad(
    target: Target, x_adv: torch.Tensor, y: torch.Tensor, aim: torch.Tensor | None, loss: Loss, eot_iter: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits and per-sample loss of the last forward pass, and the gradient averaged over ``eot_iter`` passes."""
    grad = torch.zeros_like(x_adv)
    for _ in range(eot_iter):
        xr = x_adv.detach().requires_grad_(True)
        logits = target.logits(xr).float()
        value = loss(logits, y, aim)
        grad += torch.autograd.grad(value.sum(), xr)[0]
    return logits.detach(), value.detach(), grad / eot_iter


def _fooled(logits: torch.Tensor, y: torch.Tensor, aim: torch.Tensor | None, targeted: bool) -> torch.Tensor:
    pred = logits.argmax(1)
    return pred == aim if targeted and aim is not None else pred != y


def apgd_single_run(
    target: Target,
    x: torch.Tensor,
    y: torch.Tensor,
    params: APGDParams,
    loss: Loss,
    *,
    aim: torch.Tensor | None = None,
    targeted: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD run from a random start: ``(x_out, broken)``.

    ``aim`` feeds the loss (target labels for targeted losses). ``targeted``: a sample is broken when
    classified as ``aim``; otherwise when not classified as ``y`` (as AutoAttack's APGD-T, which aims
    at a class but counts any misclassification). ``x_out`` holds the first misclassified iterate of
    each broken sample and the highest-loss point of the others.
    """
    lo, hi = target.spec.value_range
    eps, norm, steps = params.eps, params.norm, params.steps
    n = x.shape[0]
    view = (-1, *([1] * (x.ndim - 1)))
    dev = x.device
    u = 2 * torch.rand(x.shape, device=dev) - 1 if norm is Norm.LINF else torch.randn(x.shape, device=dev)
    x_adv = (x + eps * _unit(u, norm)).clamp(lo, hi)
    out = x_adv.clone()
    broken = torch.zeros(n, dtype=torch.bool, device=dev)
    logits, value, grad = _loss_grad(target, x_adv, y, aim, loss, params.eot_iter)
    # Per-sample state; every tensor's first dimension runs over the samples still being attacked.
    st: dict[str, torch.Tensor] = {
        "idx": torch.arange(n, device=dev),
        "x": x, "y": y, "x_adv": x_adv, "x_old": x_adv.clone(), "grad": grad,
        "x_best": x_adv.clone(), "grad_best": grad.clone(), "loss_best": value.clone(),
        "loss_best_last": value.clone(), "reduced_last": torch.ones(n, dtype=torch.bool, device=dev),
        "step": torch.full((n,), 2.0 * eps, device=dev),
        "history": torch.empty(n, steps + 1, device=dev),
    }
    if aim is not None:
        st["aim"] = aim
    st["history"][:, 0] = value

    def drop_fooled(lg: torch.Tensor) -> dict[str, torch.Tensor]:
        f = _fooled(lg, st["y"], st.get("aim"), targeted)
        if not bool(f.any()):
            return st
        out[st["idx"][f]] = st["x_adv"][f]
        broken[st["idx"][f]] = True
        keep = ~f
        return {k: v[keep] for k, v in st.items()}

    st = drop_fooled(logits)
    k = max(int(0.22 * steps), 1)
    k_min, k_decr = max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    since_check = 0
    for i in range(steps):
        if st["idx"].numel() == 0:
            break
        with torch.no_grad():
            xa, xc = st["x_adv"], st["x"]
            a = 0.75 if i > 0 else 1.0
            momentum = xa - st["x_old"]
            st["x_old"] = xa
            direction = st["grad"].sign() if norm is Norm.LINF else _unit(st["grad"], norm)
            z = _project(xa + st["step"].view(view) * direction, xc, eps, norm, lo, hi)
            st["x_adv"] = _project(xa + a * (z - xa) + (1 - a) * momentum, xc, eps, norm, lo, hi)
        logits, value, grad = _loss_grad(target, st["x_adv"], st["y"], st.get("aim"), loss, params.eot_iter)
        st["grad"] = grad
        if targeted and "aim" in st:
            trace_margin(logits, st["aim"], targeted=True)
        else:
            trace_margin(logits, st["y"])
        with torch.no_grad():
            st["history"][:, i + 1] = value
            better = value > st["loss_best"]
            st["x_best"] = torch.where(better.view(view), st["x_adv"], st["x_best"])
            st["grad_best"] = torch.where(better.view(view), grad, st["grad_best"])
            st["loss_best"] = torch.where(better, value, st["loss_best"])
            since_check += 1
            if since_check == k:
                h = st["history"][:, i + 1 - k : i + 2]
                rises = (h[:, 1:] > h[:, :-1]).sum(1)
                reduce = (rises <= k * params.rho) | (~st["reduced_last"] & (st["loss_best_last"] >= st["loss_best"]))
                st["reduced_last"] = reduce
                st["loss_best_last"] = st["loss_best"].clone()
                st["step"] = torch.where(reduce, st["step"] / 2, st["step"])
                st["x_adv"] = torch.where(reduce.view(view), st["x_best"], st["x_adv"])
                st["grad"] = torch.where(reduce.view(view), st["grad_best"], st["grad"])
                k = max(k - k_decr, k_min)
                since_check = 0
        st = drop_fooled(logits)
    out[st["idx"]] = st["x_best"]
    return out.detach(), broken


def apgd_attack(
    target: Target,
    x: torch.Tensor,
    y: torch.Tensor,
    params: APGDParams,
    loss: Loss,
    *,
    aim: torch.Tensor | None = None,
    targeted: bool = False,
    done: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``params.restarts`` APGD runs, each on the samples not yet broken: ``(x_out, broken)``.

    ``done`` marks samples that need no attack (already misclassified, or already at the target);
    they come back unchanged and count as broken. ``aim``/``targeted`` as :func:`apgd_single_run`.
    """
    x = x.detach()
    out = x.clone()
    broken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device) if done is None else done.clone()
    if params.eps == 0:
        return out, broken
    for r in range(params.restarts):
        todo = torch.nonzero(~broken).flatten()
        if todo.numel() == 0:
            break
        sub_aim = aim[todo] if aim is not None else None
        xo, b = apgd_single_run(target, x[todo], y[todo], params, loss, aim=sub_aim, targeted=targeted)
        # A restart replaces an unbroken sample's best point only when it breaks it.
        sel = b | (r == 0)
        out[todo[sel]] = xo[sel]
        broken[todo[b]] = True
    return out, broken


def clean_logits(target: Target, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return target.logits(x).float()
