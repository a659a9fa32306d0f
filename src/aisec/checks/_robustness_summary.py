"""What the robustness check hands the report and the console: one curve per attack, one point per eps.

Shared by the image path (:mod:`aisec.checks.robustness`) and the text path
(:mod:`aisec.checks._text_robustness`), which extends it with text examples and the lower-bound note,
so that neither imports the other. The JSON these models write is ``result.json``'s
``checks.robustness.summary``, key for key as the dicts the check built before it had a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SerializerFunctionWrapHandler, model_serializer

from aisec.core.check import ConsoleLine, ConsoleTable, IntervalSummary, Summary

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


class RobustnessSummary(Summary):
    """Clean accuracy with its CI, one curve per attack, CLEVER per norm (None when skipped)."""

    samples: int
    clean_accuracy: float
    clean_ci: IntervalSummary
    curves: Sequence[CurveSummary]
    clever: dict[str, CleverSummary] | None
    classes: list[str]

    def console_lines(self, result: Result, *, model: str, dataset: str) -> list[ConsoleLine]:
        """The clean accuracy, a table row per attack and eps, and CLEVER's median per norm."""
        ci = self.clean_ci
        rows = tuple(
            (c.attack + (" (t)" if c.targeted else ""), c.norm, f"{p.eps:g}", f"{p.robust_accuracy:.3f}",
             f"{p.ci.low:.3f}–{p.ci.high:.3f}", f"{p.success_rate:.3f}", f"{p.safair_delta:.3f}",
             f"{p.median_distance:.4g}")
            for c in self.curves for p in c.points
        )
        lines: list[ConsoleLine] = [
            f"{model} on {dataset}: clean accuracy {self.clean_accuracy:.3f} ({ci.low:.3f}–{ci.high:.3f}, "
            f"n={self.samples})",
            ConsoleTable("robustness", ("attack", "norm", "eps", "robust acc", "95% CI", "success", "SAFAIR Δ",
                                        "median ‖δ‖"), rows),
        ]
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


__all__ = ["CleverSummary", "CurveSummary", "PointSummary", "RobustnessSummary", "TextCurveSummary",
           "TextRobustnessSummary"]
