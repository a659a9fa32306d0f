"""The executive verdict in plain lines: one per policy rule, its metric id beside it, riskiest first.

A decision-maker reads these lines, not the rule table. Three things make them decision-ready:

- a rule the run's own evidence could not judge (``skipped``) is judged on a related run that measured it
  (the demo's membership-inference models, which are other models of the same report), and says so; it
  stays "not measured" only when no check measured it at all;
- each line names the measurement its value came from (attack, norm, eps, poisoning rate...) and any note
  the run carries for that metric (``Run.notes``: e.g. that the demo poisons on purpose);
- check warnings are split into findings (a risk was seen) and caveats (how far to trust a number: few
  samples, wide intervals, an attack that had not converged), which the report lists apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aisec.core.run import Run

#: parameters that say where a verdict's number was measured (the rest is in the evidence table)
_WHERE = ("attack", "norm", "eps", "targeted", "rate", "method", "explainer", "detector")


@dataclass(frozen=True)
class VerdictLine:
    """One policy rule's outcome in words."""

    status: str
    """``pass``, ``fail`` or ``skipped`` (not measured)."""
    title: str
    rule: str
    """The rule as the policy states it, metric id first (``evasionEfficacyLevel < 33``)."""
    metric: str
    reason: str
    measured_at: str = ""
    """Where the value came from, in words (``attack pgd · norm linf · eps 8/255``)."""
    model: str | None = None
    """The related run's model it was measured on (None: the run's own model)."""
    note: str = ""

    @property
    def mark(self) -> str:
        return {"pass": "✓", "fail": "✗"}.get(self.status, "–")

    def text(self) -> str:
        """The line as plain text (the Markdown report and the console use it)."""
        title = f"{self.title} (`{self.rule}`)" if self.title else f"`{self.rule}`"
        where = f" [on {self.model}]" if self.model else ""
        at = f"; measured at {self.measured_at}" if self.measured_at else ""
        note = f" Note: {self.note}" if self.note else ""
        return f"{self.mark} {self.status.upper()}{where} {title}: {self.reason}{at}.{note}"


def verdict_lines(run: Run) -> list[VerdictLine]:
    """The run's verdict rule by rule, failed first, then passed, then not measured."""
    verdict = run.verdict
    if verdict is None:
        return []
    notes: dict[str, str] = dict(getattr(run, "notes", {}) or {})
    others = [(o, o.verdict) for o in run.related if o.verdict is not None]
    lines: list[VerdictLine] = []
    for r in verdict.rules:
        note = notes.get(r.metric, "")
        if r.status == "skipped":
            measured = [(o, q) for o, v in others for q in v.rules if q.rule == r.rule and q.status != "skipped"]
            if measured:
                lines += [VerdictLine(q.status, q.title or r.title, q.rule, q.metric, q.reason,
                                      _measured_at(o, q.evidence_ids), o.target.spec.name,
                                      notes.get(q.metric, "") or getattr(o, "notes", {}).get(q.metric, ""))
                          for o, q in measured]
                continue
            lines.append(VerdictLine("skipped", r.title, r.rule, r.metric,
                                     f"not measured ({r.reason}: no check that measures it ran)", note=note))
            continue
        lines.append(VerdictLine(r.status, r.title, r.rule, r.metric, r.reason,
                                 _measured_at(run, r.evidence_ids), note=note))
    order = {"fail": 0, "pass": 1}
    return sorted(lines, key=lambda x: order.get(x.status, 2))


@dataclass(frozen=True)
class RequirementRow:
    """One requirement's verdict over the verdict lines (related runs included) of the rules that map to it."""

    id: str
    title: str
    status: str
    """``pass``, ``fail`` or ``not_assessed``."""
    reasons: tuple[str, ...]


def requirement_rows(run: Run, lines: list[VerdictLine] | None = None) -> list[RequirementRow]:
    """The per-requirement table as the verdict lines judge it: a rule this model's evidence skipped but a
    related run measured (the demo's privacy models) counts with that run's result, named, so the table
    never says "not assessed" for a requirement the same report shows measured."""
    verdict = run.verdict
    if verdict is None:
        return []
    lines = verdict_lines(run) if lines is None else lines
    by_rule: dict[str, list[VerdictLine]] = {}
    for v in lines:
        by_rule.setdefault(v.rule, []).append(v)
    rows = []
    for q in verdict.requirements:
        judged = [v for r in q.rules for v in by_rule.get(r, [])]
        statuses = {v.status for v in judged}
        status = "fail" if "fail" in statuses else "pass" if "pass" in statuses else "not_assessed"
        reasons = tuple(f"{v.rule}: {v.status}" + (f" (on {v.model})" if v.model else "") for v in judged)
        rows.append(RequirementRow(q.id, q.title, status, reasons or tuple(q.reasons)))
    rows.sort(key=lambda q: (("fail", "pass", "not_assessed").index(q.status), q.id))
    return rows


def overall(lines: list[VerdictLine]) -> tuple[bool, int, int]:
    """(passed, failed lines, measured lines): passed when no line failed."""
    failed = sum(x.status == "fail" for x in lines)
    return failed == 0, failed, sum(x.status != "skipped" for x in lines)


def _measured_at(run: Run, ids: tuple[str, ...]) -> str:
    if len(ids) != 1:
        return ""
    e = next((e for e in run.evidence if e.id == ids[0]), None)
    if e is None:
        return ""
    from aisec.report.words import params_words

    p: dict[str, Any] = {k: e.parameters[k] for k in _WHERE if k in e.parameters}
    return f"{e.metric}" + (f", {params_words(p)}" if p else "")


# -- findings and caveats ----------------------------------------------------------------------------

#: warnings that say how far to trust a number (sample counts, intervals, attack strength), not that a risk
#: was seen: they go to the report's "Caveats", not to its riskiest findings
_CAVEAT = re.compile(
    r"not_converged|not reported|few samples|fewer|reference models|fixed_variance|by chance|lower bound|"
    r"\bCI\b|confidence interval|interval|sample count|samples?\)|n=\d|too few|resolv|upper bound|"
    r"is undefined|were skipped|skipped:|left out|dropped \d|rising_with_eps|fgsm_beats_pgd|randomized|"
    r"probability_outputs|zero_gradients|no_gradient_path|fits poorly|expected 0\.5|includes 0\.5|proportions|"
    r"really the model's training data|reached ASR",
    re.IGNORECASE,
)


def is_caveat(warning: str) -> bool:
    """Whether a check's warning is a statistical or methodological caveat rather than a finding."""
    return bool(_CAVEAT.search(warning))


def split_warnings(run: Run) -> tuple[list[str], list[str]]:
    """The run's (and related runs') check warnings as (findings, caveats), each prefixed with its check."""
    findings: list[str] = []
    caveats: list[str] = []
    for other in [run, *run.related]:
        prefix = "" if other is run else f"{other.target.spec.name} "
        for r in other.results:
            for w in r.warnings:
                (caveats if is_caveat(w) else findings).append(f"{prefix}{r.check}: {w}")
    return findings, caveats
