"""What the robustness check hands the report and the console: one curve per attack, one point per eps.

Shared by the image path (:mod:`aisec.checks.robustness`) and the text path
(:mod:`aisec.checks._text_robustness`), which extends it with text examples and the lower-bound note,
so that neither imports the other. The JSON these models write is ``result.json``'s
``checks.robustness.summary``, key for key as the dicts the check built before it had a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from aisec.core.check import ConsoleLine, ConsoleTable, IntervalSummary, Summary
from aisec.core.words import eps_words

if TYPE_CHECKING:
    from aisec.core.check import Result


class PointSummary(Summary):
    """One eps (or word budget) of a curve: worst-case robust accuracy over the grid up to here, with CI."""

    eps: float
    raw_robust_accuracy: float | None
    """Robust accuracy of this eps's own run (None for minimal-norm attacks, which run once)."""
    robust_accuracy: float
    ci: IntervalSummary
    success_rate: float
    """Over the clean-correct samples."""
    safair_delta: float
    median_distance: float
    """Median perturbation of the successful attacks (NaN, written as null, when none succeeded)."""
    stage_robust: dict[str, int] | None = Field(default=None, exclude_if=lambda v: v is None)
    """An ensemble (``autoattack``): samples still robust after each stage, in run order (cumulative; the last
    is the robust count). Absent for other attacks."""


class CurveSummary(Summary):
    """One attack (name, norm, targeted) swept over its eps grid."""

    attack: str
    norm: str
    kind: str
    targeted: bool
    params: dict[str, Any]
    points: list[PointSummary]
    warnings: list[str]
    seconds: float
    queries: int
    example_eps: float | None
    """The eps of the report's example images (None: a minimal-norm attack, or no images)."""
    key: str
    """``attack-norm[-targeted]``: names the curve's columns in the per-sample table and its images."""
    loss_traces: list[list[float]] = Field(default_factory=list)
    """Per eps, the attacker's objective per step (:attr:`~aisec.attacks.base.Outcome.loss_trace`; empty
    lists for attacks that report none)."""
    flags: list[str] = Field(default_factory=list)
    """Ids of the reliability flags raised on this curve."""
    escalation: str | None = None
    """The flag whose remedy this curve is (None: an attack the plan asked for)."""
    wrapper: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """How the plan asked the attack to reach the model (``BPDA through bit-depth:4``, ``EOT over 16 draws``);
    absent for a plain attack."""
    clean_accuracy: float | None = Field(default=None, exclude_if=lambda v: v is None)
    """Under BPDA: the clean accuracy of the system attacked (the model behind its preprocessing), which the
    curve is scored on; absent otherwise (the check's clean accuracy applies)."""

    @property
    def label(self) -> str:
        """The attack as the console and the report name it: ``pgd (t) (BPDA through bit-depth:4)``."""
        return self.attack + (" (t)" if self.targeted else "") + (f" ({self.wrapper})" if self.wrapper else "")


class CleverSummary(Summary):
    """CLEVER-u scores of one norm: the scores, the radius and their statistics."""

    scores: list[float]
    radius: float
    mean: float
    median: float
    min: float
    max: float
    n: int
    at_radius: int
    norm: str
    nb_batches: int
    batch_size: int
    targeted: bool


class FlagSummary(Summary):
    """One reliability flag: its id, what it means, what was seen, and what to do next."""

    id: str
    title: str
    detail: str
    next_step: str
    curve: str | None
    norm: str | None
    eps: list[float]


class EscalationSummary(Summary):
    """One remedy the check tried for a flag: run (its curve's key) or skipped (and why)."""

    flag: str
    remedy: str
    attack: str
    norm: str | None
    status: Literal["ran", "skipped"]
    note: str
    key: str | None


class ReliabilitySummary(Summary):
    """The verdict on the robustness numbers: reliable only when no flag fired."""

    reliable: bool
    flags: list[FlagSummary]
    escalations: list[EscalationSummary]
    probes: dict[str, str]
    """Per probe (gradients, randomness, probabilities), what it saw, in words."""


class WorstPointSummary(Summary):
    """The per-sample worst case over every attack of a norm at one eps."""

    eps: float
    robust_accuracy: float
    ci: IntervalSummary
    attacks: list[str]
    """Curve keys whose grid reaches down to this eps (the attacks the worst case is over)."""


class WorstCaseSummary(Summary):
    """Per norm: robust accuracy when a sample counts as robust only if no attack fooled it within eps."""

    norm: str
    attacks: list[str]
    points: list[WorstPointSummary]


class CertifiedPointSummary(Summary):
    """One radius of a certifier: the certified lower bound beside the attacks' empirical upper bound."""

    radius: float
    certified_accuracy: float
    """Fraction of the certified samples ``proved`` (correct, and no input in the ball changes the answer)."""
    ci: IntervalSummary
    """Exact (Clopper–Pearson) interval of the certified accuracy."""
    proved: int
    counterexample: int
    inconclusive: int
    empirical: float | None
    """Worst-case robust accuracy over the check's attacks of this norm at this radius, on the same samples
    (None: no attack of the norm reached down to it)."""
    gap: float | None
    """``empirical − certified_accuracy``: how much robustness is neither proved nor refuted."""


class CertifiedSummary(Summary):
    """One certifier run (one parameter setting, e.g. smoothing at one σ) over the norm's radius grid."""

    method: str
    label: str
    """The method with the settings that tell its runs apart: ``smoothing(sigma=0.25)``, ``ibp``."""
    norm: str
    about: str
    """``model`` (the target as given: certified ≤ empirical must hold) or ``smoothed`` (the smoothed classifier
    built on it: compared with the attacks on the base model, not bounded by them)."""
    samples: int
    seconds: float
    params: dict[str, Any]
    notes: list[str]
    points: list[CertifiedPointSummary]


class DefenceSummary(Summary):
    """A run on a model behind a preprocessing defence (``--defence``): what the defence costs and buys, at the
    reference budget of one norm (the report's Defences table)."""

    defence: str
    """The defence's canonical spec, ``jpeg:quality=75``."""
    differentiable: bool
    stochastic: bool
    undefended_clean_accuracy: float
    """The model without its defence, on the same samples."""
    clean_accuracy: float
    clean_cost: float
    """Undefended minus defended clean accuracy (positive: the defence costs accuracy)."""
    norm: str | None
    eps: float | None
    """The budget the robust accuracies are read at (the norm's reference eps; None: no curve reached it)."""
    autoattack_robust_accuracy: float | None
    """Under the AutoAttack ensemble (``autoattack``), None when it did not run at ``eps``."""
    adaptive_robust_accuracy: float | None
    """The lowest over the adaptive attacks (BPDA, EOT, black box) the plan or the reliability escalation ran."""
    adaptive_attacks: list[str]
    worst_robust_accuracy: float | None
    """Per-sample worst case over every attack of the norm."""
    safair_delta: float | None
    """Defended clean accuracy minus the worst-case robust accuracy."""
    reliable: bool | None
    seconds: float


class RobustnessSummary(Summary):
    """Clean accuracy with its CI, one curve per attack, CLEVER per norm (None when skipped), the per-sample
    worst case over attacks per norm (the number to quote) and the reliability verdict."""

    samples: int
    clean_accuracy: float
    clean_ci: IntervalSummary
    curves: Sequence[CurveSummary]
    clever: dict[str, CleverSummary] | None
    classes: list[str]
    worst_case: list[WorstCaseSummary] = Field(default_factory=list, exclude_if=lambda v: not v)
    """Absent from the JSON when no curve ran (the text path has none)."""
    reliability: ReliabilitySummary | None = Field(default=None, exclude_if=lambda v: v is None)
    """Absent when the verdict was switched off (``reliability.enabled: false``) and on the text path."""
    grid_notes: list[str] = Field(default_factory=list, exclude_if=lambda v: not v)
    """Reference budgets added to the eps grids (``RobustnessParams.reference_eps``), in words; absent when none."""
    certified: list[CertifiedSummary] = Field(default_factory=list, exclude_if=lambda v: not v)
    """Per certifier run, certified accuracy per radius beside the empirical worst case; absent when ``certify``
    was off (the default)."""
    defence: DefenceSummary | None = Field(default=None, exclude_if=lambda v: v is None)
    """The model was assessed behind a preprocessing defence: its cost and gain (absent otherwise)."""

    def console_lines(self, result: Result, *, model: str, dataset: str) -> list[ConsoleLine]:
        """The reliability verdict and its flags first, the clean accuracy, a table row per attack and eps, the
        worst case over attacks, and CLEVER's median per norm."""
        ci = self.clean_ci
        verdict: list[ConsoleLine] = []
        if self.reliability is not None:
            r = self.reliability
            verdict.append("reliability: " + ("reliable (no flag raised)" if r.reliable else
                                              "NOT RELIABLE: " + ", ".join(dict.fromkeys(f.id for f in r.flags))))
            verdict += [f"  [{f.id}] {f.detail} → {f.next_step}" for f in r.flags]
            verdict += [f"  escalation for {e.flag}: {e.remedy} {e.status}" + (f" ({e.note})" if e.note else "")
                        for e in r.escalations]
        rows = tuple(
            (c.label, c.norm, eps_words(p.eps), f"{p.robust_accuracy:.3f}",
             f"{p.ci.low:.3f}–{p.ci.high:.3f}", f"{p.success_rate:.3f}", f"{p.safair_delta:.3f}",
             f"{p.median_distance:.4g}")
            for c in self.curves for p in c.points
        )
        lines: list[ConsoleLine] = [
            *verdict,
            f"{model} on {dataset}: clean accuracy {self.clean_accuracy:.3f} ({ci.low:.3f}–{ci.high:.3f}, "
            f"n={self.samples})",
            ConsoleTable("robustness", ("attack", "norm", "eps", "robust acc", "95% CI", "success", "SAFAIR Δ",
                                        "median ‖δ‖"), rows),
        ]
        worst = tuple((w.norm, eps_words(p.eps), f"{p.robust_accuracy:.3f}", f"{p.ci.low:.3f}–{p.ci.high:.3f}",
                       ", ".join(p.attacks)) for w in self.worst_case for p in w.points)
        stages = tuple((c.label, c.norm, eps_words(p.eps), " → ".join(f"{k} {v}" for k, v in p.stage_robust.items()))
                       for c in self.curves for p in c.points if p.stage_robust)
        if stages:
            lines.append(ConsoleTable("ensemble stages (samples still robust after each)",
                                      ("attack", "norm", "eps", "robust after"), stages))
        if worst:
            lines.append(ConsoleTable("worst case over attacks (per sample)",
                                      ("norm", "eps", "robust acc", "95% CI", "attacks"), worst))
        if self.certified:
            lines.append(ConsoleTable(
                "certified (lower bound) vs empirical (upper bound)",
                ("method", "norm", "radius", "certified", "95% CI", "empirical", "gap", "proved/cex/inconcl."),
                tuple((c.label + (" [smoothed g]" if c.about == "smoothed" else ""), c.norm, eps_words(p.radius),
                       f"{p.certified_accuracy:.3f}", f"{p.ci.low:.3f}–{p.ci.high:.3f}",
                       "—" if p.empirical is None else f"{p.empirical:.3f}", "—" if p.gap is None else f"{p.gap:+.3f}",
                       f"{p.proved}/{p.counterexample}/{p.inconclusive}") for c in self.certified for p in c.points)))
        for norm, c in (self.clever or {}).items():
            lines.append(f"CLEVER-u ({norm}): median {c.median:.4g}, min {c.min:.4g}, max {c.max:.4g}")
        return lines


_TEXT_CURVE_ORDER = ("key", "attack", "norm", "kind", "targeted", "params", "points", "warnings", "seconds",
                     "queries", "real_text", "note", "example_eps")


class TextCurveSummary(CurveSummary):
    """A text attack's curve: whether it edits real text (HotFlip) or embeddings (a lower bound)."""

    real_text: bool
    note: str | None

    @model_serializer(mode="wrap")
    def _in_text_order(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # the text path always wrote its curves in this key order; keep result.json as it was
        out: dict[str, Any] = handler(self)
        return {k: out[k] for k in _TEXT_CURVE_ORDER if k in out}


class TextRobustnessSummary(RobustnessSummary):
    """The robustness summary of a text target: text curves, original/adversarial examples, the note on
    embedding-space attacks being a lower bound. CLEVER is always None (token ids have no norm)."""

    curves: Sequence[TextCurveSummary]
    modality: Literal["text"] = "text"
    text_examples: dict[str, list[dict[str, Any]]]
    """Per curve key, rows of :meth:`~aisec.attacks.text.base.TextOutcome.records` (text, adv_text, ...)."""
    lower_bound_note: str


__all__ = ["CertifiedPointSummary", "CertifiedSummary",
           "CleverSummary", "CurveSummary", "EscalationSummary", "FlagSummary", "PointSummary",
           "ReliabilitySummary", "RobustnessSummary", "TextCurveSummary", "TextRobustnessSummary", "WorstCaseSummary",
           "WorstPointSummary", "eps_words"]
