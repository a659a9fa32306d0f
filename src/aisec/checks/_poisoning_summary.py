"""What the poisoning check hands the report and the console, and the resilience score.

Shared by the image path (:mod:`aisec.checks.poisoning`) and the text path
(:mod:`aisec.checks._text_poisoning`), so that neither imports the other (as the robustness check's
summaries are shared through :mod:`aisec.checks._robustness_summary`).
"""

from __future__ import annotations

from typing import Any

from aisec.core.check import ConsoleLine, IntervalSummary, Result, Summary


class PoisonRatePoint(Summary):
    """One poisoning rate of the sweep: attack success and clean accuracy of its victim, with Wilson CIs."""

    rate: float
    poisons: int
    asr: float
    asr_ci: IntervalSummary
    clean_accuracy: float
    clean_ci: IntervalSummary


class TriggerSizePoint(Summary):
    """One patch side of the 'pixels needed' sweep, at ``pixels_rate``."""

    size: int
    pixels: int
    asr: float
    asr_ci: IntervalSummary
    clean_accuracy: float


class PoisoningSummary(Summary):
    """The poisoning sweep: a point per rate and per trigger size, the smallest rate that plants the
    backdoor (``reached`` false: none did, the value is the largest rate) and the resilience score."""

    attack: str
    mode: str
    train_samples: int
    test_samples: int
    victim_samples: int
    source_class: int | None
    target_class: int
    points: list[PoisonRatePoint]
    pixels: list[TriggerSizePoint]
    pixels_needed: int | None
    pixels_rate: float
    min_poison_rate: float
    reached: bool
    success_threshold: float
    resilience: float
    classes: list[str]
    trigger: dict[str, Any]
    poison_linf: float | None
    """Largest Linf distance of a clean-label poison from its original (None for dirty-label attacks)."""

    def console_lines(self, result: Result, *, model: str, dataset: str) -> list[ConsoleLine]:
        """Resilience, ASR by rate and the range of the victims' clean accuracy, on one line."""
        acc = [p.clean_accuracy for p in self.points]
        return [f"poisoning {self.attack} ({self.mode}): resilience {self.resilience:.3f}; ASR by rate "
                + ", ".join(f"{100 * p.rate:g}%: {p.asr:.2f}" for p in self.points)
                + f"; clean accuracy {min(acc):.3f}–{max(acc):.3f}"]


class PoisonedDataSummary(Summary):
    """A generate-only poisoning run: the poisoned training set written, no victim trained, nothing measured."""

    generate_only: bool = True
    attack: str
    rate: float
    poisons: int
    train_samples: int
    test_samples: int
    source_class: int | None
    target_class: int
    classes: list[str]
    trigger: dict[str, Any]
    poison_linf: float | None
    file: str | None
    """The poisoned set's path in the run folder (None: ``save_poisoned`` is off)."""

    def console_lines(self, result: Result, *, model: str, dataset: str) -> list[ConsoleLine]:
        where = f"written to {self.file}" if self.file else "not written (save_poisoned is off)"
        return [f"poisoning {self.attack} (generate only): {self.poisons} of {self.train_samples} training samples "
                f"poisoned (rate {self.rate:g}), {where}; no model was trained and nothing was measured"]


def resilience_score(asr: list[float], rates: list[float]) -> float:
    """``1 - mean_{r>0} max(0, ASR(r) - ASR(0)) / (1 - ASR(0))`` (see the module docstring)."""
    base = asr[rates.index(0.0)]
    pos = [a for a, r in zip(asr, rates, strict=True) if r > 0]
    if not pos:
        return 1.0
    denom = max(1.0 - base, 1e-12)
    excess = [min(1.0, max(0.0, a - base) / denom) for a in pos]
    return float(min(1.0, max(0.0, 1.0 - sum(excess) / len(excess))))


__all__ = ["PoisonRatePoint", "PoisonedDataSummary", "PoisoningSummary", "TriggerSizePoint", "resilience_score"]
