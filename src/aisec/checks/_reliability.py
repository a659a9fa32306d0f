"""Is a robustness number trustworthy? Probes, reliability flags, the per-sample worst case, escalation.

A robust accuracy is an *upper bound*: it says only that the attacks that ran did not find an
adversarial example. The bound is loose when the attacks could not work on this model — gradients
that are zero (a model whose outputs are ±10, the SAFAIR contest "defence"), absent (a forward with
``.detach()``/argmax), random (a stochastic forward), or squashed (probabilities passed as logits) —
or when they did not finish. Carlini et al., "On Evaluating Adversarial Robustness" (2019,
https://arxiv.org/abs/1902.06705, section 5) and Athalye et al., "Obfuscated Gradients Give a False
Sense of Security" (ICML 2018, https://arxiv.org/abs/1802.00420, section 3.1) list the signs; this
module tests for them and names, per sign, what to do next (:data:`FLAGS`) and which attack the
robustness check runs by itself to get a tighter bound (:data:`ESCALATION`).

Everything here is a pure function of tensors, arrays and the check's curve records, except the three
probes, which query the target on a few clean samples:

- :func:`probe_gradients` — the input gradient of the C&W margin (best other logit − label logit).
  Not the cross-entropy: its gradient legitimately vanishes on confidently classified samples
  (measured ‖∇CE‖ down to 6e-7 on the clean MNIST LeNet5, 1e-5 on the digits CNN, whose margin
  gradients are 4.6 and 13). A sample's gradient *vanishes* when even a step across the whole input
  box would move its margin by less than 1e-3 of the margin itself,
  ``‖∇m‖₂ · diam / |m| < 1e-3`` (``diam`` = the box's L2 diameter); measured on normal models this
  ratio is 5-15, on the ±10-logit model exactly 0. Scale-free, so a model with tiny logits is not
  flagged. Flagged when at least half the probe samples vanish.
- :func:`probe_randomness` — two ``predict`` calls on the same inputs differ by more than 1e-4 in any
  probability (GPU non-determinism is ~1e-7).
- :func:`probe_probabilities` — the target's "logits" are rows in [0, 1] summing to 1.

The worst case over attacks (:func:`worst_case`): a sample is robust at eps only if *no* attack of
that norm fooled it within eps. Each attack's curve is already a worst case over its own eps grid,
so at eps the attack contributes its result at the largest grid eps ≤ eps (an adversarial found at a
smaller eps lies inside the bigger ball); an attack whose grid starts above eps contributes nothing.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from aisec.attacks.base import margin_loss, still_improving
from aisec.core.errors import CapabilityError
from aisec.core.stats import wilson
from aisec.core.target import Target
from aisec.core.types import Capability
from aisec.core.words import eps_words

#: Per flag id: what it means and what to do next (shown with every flag, in the report first).
FLAGS: dict[str, tuple[str, str]] = {
    "zero_gradients": (
        "input gradients are zero or vanishing at the clean samples",
        "gradient attacks cannot move; trust black-box (Square) and transfer results, or attack a "
        "differentiable approximation (BPDA)"),
    "no_gradient_path": (
        "the target claims gradients but backward fails or returns none",
        "gradient attacks were skipped; use black-box (Square) or transfer attacks, or load the model so "
        "its forward keeps the graph (no .detach(), argmax or torch.no_grad in forward)"),
    "randomized": (
        "predictions differ across repeated calls on the same input",
        "attack the expectation over the randomness (EOT, Athalye et al. 2018) and report the spread"),
    "probability_outputs": (
        "the model's logits are probabilities (rows in [0, 1] summing to 1)",
        "use a margin or DLR loss, or declare output=probabilities so aisec takes their log"),
    "blackbox_beats_whitebox": (
        "a black-box or transfer attack beats the white-box ones by more than the CI",
        "white-box gradients are masked; quote the worst case over attacks and try adaptive attacks"),
    "rising_with_eps": (
        "raw robust accuracy rises with eps",
        "a bigger budget should never help the model: raise the steps or suspect gradient masking"),
    "fgsm_beats_pgd": (
        "one-step FGSM beats a multi-step attack at the same eps",
        "iterative attacks should be at least as strong: raise the steps or suspect gradient masking"),
    "not_converged": (
        "an iterative attack's objective was still improving at its last step",
        "rerun it with more steps (the check reran it with more) and quote the stronger result"),
    "near_chance": (
        "clean accuracy is near chance",
        "robust accuracy is bounded by a meaningless clean accuracy: check the model/data pairing, "
        "preprocessing (value range, normalisation) and labels"),
}

VANISHING_RATIO = 1e-3
"""``‖∇margin‖₂ · box diameter / |margin|`` below this: the sample's gradient vanishes (see module doc)."""
RANDOM_TOL = 1e-4
"""Largest difference of two ``predict`` calls on the same input still taken as deterministic."""
BLACKBOX_KINDS_NOTE = "black box = an attack that does not need the target's gradients (square, transfer, ...)"


class ReliabilityParams(BaseModel):
    """How the robustness check judges and escalates (part of the check's ``Params``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = Field(default=True, description="Probe the target and judge every curve.")
    escalate: bool = Field(default=True, description="Run the remedy of each flag that fires.")
    probe_samples: int = Field(default=16, ge=1, le=1024, description="Clean samples the probes use.")
    square_queries: int = Field(default=1000, ge=1, description="max_queries of an escalated Square attack.")
    steps_factor: int = Field(default=5, ge=2, le=100, description="Steps multiplier of a not-converged rerun.")
    eot_draws: int = Field(default=10, ge=2, le=1000, description="Draws of an escalated EOT attack.")


@dataclass(frozen=True)
class ReliabilityFlag:
    """One sign that a robustness number is not to be trusted as it stands."""

    id: str
    detail: str
    curve: str | None = None
    """The curve key it concerns (None: the target or the whole check)."""
    norm: str | None = None
    eps: tuple[float, ...] = ()

    @property
    def title(self) -> str:
        return FLAGS[self.id][0]

    @property
    def next_step(self) -> str:
        return FLAGS[self.id][1]

    def message(self) -> str:
        where = f" [{self.curve}]" if self.curve else ""
        return f"[{self.id}]{where} {self.detail} What to do: {self.next_step}."


# ---------------------------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class GradientProbe:
    status: str  # "ok", "zero", "none"
    detail: str
    vanishing: int = 0
    samples: int = 0
    median_ratio: float = math.nan


def probe_gradients(target: Target, x: torch.Tensor, y: torch.Tensor) -> GradientProbe:
    """Whether the target's input gradients exist and move its margin (see the module docstring)."""
    dev = torch.device(target.spec.device)
    xp = x.detach().to(dev).float().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            z = target.logits(xp)
            if not isinstance(z, torch.Tensor) or not z.requires_grad:
                return GradientProbe("none", "the logits carry no autograd graph (requires_grad is False)",
                                     samples=int(x.shape[0]))
            m = margin_loss(z.float(), y.to(dev).long())
            (g,) = torch.autograd.grad(m.sum(), xp, allow_unused=True)
    except RuntimeError as exc:
        return GradientProbe("none", f"backward failed: {str(exc).splitlines()[0]}", samples=int(x.shape[0]))
    if g is None:
        return GradientProbe("none", "backward returned no gradient for the input", samples=int(x.shape[0]))
    lo, hi = target.spec.value_range
    diam = (hi - lo) * math.sqrt(float(x[0].numel()))
    gn = g.detach().float().flatten(1).norm(dim=1).cpu()
    mabs = m.detach().float().abs().cpu()
    ratio = torch.where(mabs > 0, gn * diam / mabs.clamp_min(1e-30), torch.full_like(gn, math.inf))
    ratio = torch.where(torch.isfinite(gn), ratio, torch.full_like(gn, math.inf))
    vanishing = int((ratio < VANISHING_RATIO).sum())
    k = int(x.shape[0])
    med = float(ratio.median())
    detail = (f"the margin gradient vanishes on {vanishing} of {k} clean samples "
              f"(median ‖∇m‖·diam/|m| = {med:.3g}; below {VANISHING_RATIO:g} counts as vanishing).")
    return GradientProbe("zero" if 2 * vanishing >= k else "ok", detail, vanishing, k, med)


def probe_randomness(target: Target, x: torch.Tensor) -> tuple[bool, str]:
    """Whether two ``predict`` calls on the same inputs differ (by more than :data:`RANDOM_TOL`)."""
    dev = torch.device(target.spec.device)
    xp = x.detach().to(dev).float()
    with torch.no_grad():
        p1, p2 = target.predict(xp).float().cpu(), target.predict(xp).float().cpu()
    diff = float((p1 - p2).abs().max())
    flips = int((p1.argmax(1) != p2.argmax(1)).sum())
    return diff > RANDOM_TOL, (f"two predictions of the same {xp.shape[0]} inputs differ by up to {diff:.3g} "
                               f"in probability; {flips} predicted labels changed.")


def probe_probabilities(target: Target, x: torch.Tensor) -> tuple[bool, str]:
    """Whether what the target returns as logits are probability rows (in [0, 1], summing to 1)."""
    if Capability.LOGITS not in target.spec.capabilities and Capability.GRADIENTS not in target.spec.capabilities:
        return False, ""
    dev = torch.device(target.spec.device)
    try:
        with torch.no_grad():
            z = target.logits(x.detach().to(dev).float()).float().cpu()
    except CapabilityError as exc:  # scores without a logits() path (an ONNX graph): its own loader tells them apart
        return False, f"not probed: {exc}"
    inside = bool(((z >= -1e-6) & (z <= 1 + 1e-6)).all())
    sums = z.sum(1)
    ok = inside and bool(((sums - 1).abs() < 1e-3).all())
    if ok:
        return True, f"all {z.shape[0]} probed logit rows lie in [0, 1] and sum to 1."
    return False, (f"logits, not probabilities: values {float(z.min()):.3g} to {float(z.max()):.3g}, "
                   f"row sums {float(sums.min()):.3g} to {float(sums.max()):.3g}.")


# ----------------------------------------------------------------------------------------- curve flags


@dataclass
class CurveRecord:
    """What the verdict needs of one attack's curve (the check's curve dict, reduced)."""

    key: str
    attack: str
    norm: str
    targeted: bool
    blackbox: bool
    iterative: bool
    eps: list[float]
    robust: list[int]
    """Robust count per eps (correct clean and not fooled up to that eps)."""
    raw: list[float | None]
    traces: list[list[float]] = field(default_factory=list)
    fooled: list[np.ndarray] = field(default_factory=list)
    escalated_from: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def rising_flags(c: CurveRecord) -> list[ReliabilityFlag]:
    """``rising_with_eps``: the raw (this eps's own run) robust accuracy rises from one eps to the next."""
    rises = [(c.eps[i], c.eps[i + 1], a, b) for i, (a, b) in enumerate(zip(c.raw[:-1], c.raw[1:], strict=True))
             if a is not None and b is not None and b > a + 1e-12]
    if not rises:
        return []
    text = "; ".join(f"{a:.3f} at eps={eps_words(e0)} → {b:.3f} at eps={eps_words(e1)}" for e0, e1, a, b in rises)
    return [ReliabilityFlag("rising_with_eps", f"{c.attack} ({c.norm}): raw robust accuracy rose: {text}.",
                            curve=c.key, norm=c.norm, eps=tuple(e1 for _, e1, _, _ in rises))]


def convergence_flags(c: CurveRecord) -> list[ReliabilityFlag]:
    """``not_converged``: :func:`still_improving` on the loss trace of an eps where samples are still robust."""
    if not c.iterative or not c.traces:
        return []
    bad = [e for e, tr, k in zip(c.eps, c.traces, c.robust, strict=False) if k > 0 and still_improving(tr)]
    if not bad:
        return []
    steps = len(next(tr for tr in c.traces if tr))
    return [ReliabilityFlag(
        "not_converged", f"{c.attack} ({c.norm}, {steps} steps): the objective was still rising over the last "
        f"steps at eps {', '.join(eps_words(e) for e in bad)}.", curve=c.key, norm=c.norm, eps=tuple(bad))]


def fgsm_flags(curves: Sequence[CurveRecord], n: int) -> list[ReliabilityFlag]:
    """``fgsm_beats_pgd``: one-step FGSM's raw robust accuracy is more than 0.02 below an untargeted iterative
    fixed-eps attack's at the same eps and norm (the threshold of the check's older warning)."""
    out = []
    for f in (c for c in curves if c.attack == "fgsm" and not c.targeted):
        fr = dict(zip(f.eps, f.raw, strict=True))
        for m in (c for c in curves if c.iterative and not c.targeted and c.norm == f.norm and c.attack != "fgsm"):
            worse = [e for e, r in zip(m.eps, m.raw, strict=True)
                     if r is not None and fr.get(e) is not None and fr[e] + 1e-12 < r - 0.02]  # type: ignore[operator]
            if worse:
                out.append(ReliabilityFlag(
                    "fgsm_beats_pgd", f"FGSM beats {m.attack.upper()} ({m.norm}) at eps "
                    f"{', '.join(eps_words(e) for e in worse)}.", curve=m.key, norm=m.norm, eps=tuple(worse)))
    return out


def blackbox_flags(curves: Sequence[CurveRecord], n: int) -> list[ReliabilityFlag]:
    """``blackbox_beats_whitebox``: at an eps both ran, the best black-box robust accuracy lies below the
    lower end of the 95% Wilson interval of the best white-box one (same norm, untargeted)."""
    out = []
    for norm in sorted({c.norm for c in curves}):
        white = [c for c in curves if c.norm == norm and not c.blackbox and not c.targeted]
        black = [c for c in curves if c.norm == norm and c.blackbox and not c.targeted]
        if not white or not black:
            continue
        hits = []
        for e in sorted({e for c in black for e in c.eps}):
            w = [c.robust[c.eps.index(e)] for c in white if e in c.eps]
            b = [(c.robust[c.eps.index(e)], c.attack) for c in black if e in c.eps]
            if not w or not b:
                continue
            kw, (kb, who) = min(w), min(b)
            if kb < wilson(kw, n).low * n - 1e-9:
                hits.append((e, kb / n, kw / n, who))
        if hits:
            text = "; ".join(f"{who} {b:.3f} vs {w:.3f} at eps={eps_words(e)}" for e, b, w, who in hits)
            out.append(ReliabilityFlag("blackbox_beats_whitebox", f"{norm}: {text} (robust accuracy, black box vs "
                                       "best white box).", norm=norm, eps=tuple(e for e, *_ in hits)))
    return out


def near_chance_flag(k_clean: int, n: int, num_classes: int) -> ReliabilityFlag | None:
    """``near_chance``: clean accuracy at most ``min(1.5/K, 1/K + 0.1)``, or its 95% Wilson interval reaching
    chance 1/K.

    1.5× chance for many classes (10 classes: 0.15), capped at 10 points over chance for few classes,
    where 1.5× chance would be a working classifier (2 classes: 0.6, not 0.75); the interval clause
    catches a sample too small to tell the model from guessing.
    """
    if n == 0:
        return None
    acc, chance = k_clean / n, 1.0 / num_classes
    limit = min(1.5 * chance, chance + 0.1)
    if acc <= limit or wilson(k_clean, n).low <= chance:
        return ReliabilityFlag("near_chance", f"clean accuracy {acc:.3f} (n={n}) is near chance {chance:.3f} "
                               f"(limit {limit:.3f}, or a 95% CI reaching chance).")
    return None


def curve_flags(curves: Sequence[CurveRecord], n: int) -> list[ReliabilityFlag]:
    """Every flag that the curves themselves raise."""
    out: list[ReliabilityFlag] = []
    for c in curves:
        out += rising_flags(c) + convergence_flags(c)
    return out + fgsm_flags(curves, n) + blackbox_flags(curves, n)


# ------------------------------------------------------------------------------------------ worst case


@dataclass(frozen=True)
class WorstPoint:
    eps: float
    robust: int
    attacks: tuple[str, ...]
    """Curve keys that contributed at this eps (their grid reaches down to it)."""


def worst_case(correct: np.ndarray, curves: Sequence[CurveRecord], norm: str) -> list[WorstPoint]:
    """Per eps of the union grid: samples correct clean and fooled by no curve of ``norm`` within eps."""
    mine = [c for c in curves if c.norm == norm and c.fooled]
    grid = sorted({e for c in mine for e in c.eps})
    out = []
    for e in grid:
        fooled = np.zeros_like(correct, dtype=bool)
        used = []
        for c in mine:
            i = bisect.bisect_right(c.eps, e + 1e-12) - 1
            if i >= 0:
                fooled |= np.asarray(c.fooled[i], dtype=bool)
                used.append(c.key)
        out.append(WorstPoint(e, int((correct & ~fooled).sum()), tuple(used)))
    return out


# ------------------------------------------------------------------------------------------ escalation


@dataclass(frozen=True)
class Remedy:
    """An attack the check runs when a flag fires: a registered attack name and parameters.

    ``attack=None`` means the flagged curve's own attack; ``steps_factor`` multiplies its ``steps``;
    ``wrap`` names a target wrapper of :func:`load_wrapper`'s table, built with ``wrap_args`` (EOT; BPDA, which
    only a target with a declared preprocessing defence can build: any other is skipped with its note). A remedy whose
    attack, parameters or wrapper this build does not have is skipped with a note, so the ones other
    branches add (``apgd-dlr``, ``transfer``, PGD's ``loss``, ``EOTTarget``) plug in when merged.
    """

    attack: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    steps_factor: int | None = None
    wrap: str | None = None
    wrap_args: Mapping[str, Any] = field(default_factory=dict)
    curve_only: bool = False
    """Apply only to the flagged curve's eps (reruns), not to the whole grid of each norm."""

    def label(self) -> str:
        name = self.attack or "same attack"
        bits = [f"{k}={v}" for k, v in self.params.items()]
        if self.steps_factor:
            bits.append(f"steps×{self.steps_factor}")
        if self.wrap:
            bits.append(f"via {self.wrap.rsplit(':', 1)[-1]}")
        return name + (f" ({', '.join(bits)})" if bits else "")


#: transfer tries up to 10 examples per sample on the victim (untargeted, then targeted at the surrogate's next
#: classes): 10 queries each, next to the max_queries per sample its surrogate's labels cost
_BLACK_BOX = (Remedy("square"), Remedy("transfer", {"candidates": 10}))
#: PGD through BPDA: a defended target's own non-differentiable preprocessing in the forward pass, the identity
#: in the backward one (skipped with a note for a target that names no preprocessing, e.g. a plain model file)
_BPDA = Remedy("pgd", wrap="BPDA")
_MORE_STEPS = Remedy(None, steps_factor=0, curve_only=True)  # 0: the check's steps_factor

#: Per flag id, the remedies the check runs (in order); near_chance has none (no attack fixes it).
ESCALATION: dict[str, tuple[Remedy, ...]] = {
    "zero_gradients": (_BPDA, *_BLACK_BOX),
    "no_gradient_path": (_BPDA, *_BLACK_BOX),
    "blackbox_beats_whitebox": _BLACK_BOX,
    "randomized": (Remedy("pgd", wrap="EOTTarget", wrap_args={"draws": 0}),),
    "probability_outputs": (Remedy("pgd", {"loss": "dlr"}), Remedy("apgd-dlr")),
    "not_converged": (_MORE_STEPS,),
    "rising_with_eps": (_MORE_STEPS, Remedy("square")),
    "fgsm_beats_pgd": (_MORE_STEPS, Remedy("square")),
    "near_chance": (),
}


def load_wrapper(name: str) -> Any:
    """The target wrapper a remedy names (a static table: plans and flags never name code); KeyError if unknown."""
    from aisec.attacks.adaptive.eot import EOTTarget
    from aisec.defences.preprocess.base import bpda_of

    return {"EOTTarget": EOTTarget, "BPDA": bpda_of}[name]


__all__ = ["BLACKBOX_KINDS_NOTE", "ESCALATION", "FLAGS", "RANDOM_TOL", "VANISHING_RATIO", "CurveRecord",
           "GradientProbe", "ReliabilityFlag", "ReliabilityParams", "Remedy", "WorstPoint", "blackbox_flags",
           "convergence_flags", "curve_flags", "fgsm_flags", "load_wrapper", "near_chance_flag", "probe_gradients",
           "probe_probabilities", "probe_randomness", "rising_flags", "worst_case"]
