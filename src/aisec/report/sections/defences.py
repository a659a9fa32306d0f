"""The Defences section: one row per defence a run evaluated (issue 15, item 4), in HTML and Markdown.

Fed by the run's summaries, not by a check of its own: a robustness result on a model behind a
preprocessing defence (``aisec assess --defence jpeg:quality=75``; its summary's ``defence``) and each
detector of a detection result (``--detector``). Columns: clean accuracy of the undefended model and of
the defended system, the clean-accuracy cost, robust accuracy under the AutoAttack ensemble and under the
adaptive attack (BPDA / EOT / black box for a preprocessing, the detector-aware PGD for a detector), the
reliability verdict, the SAFAIR delta (defended clean accuracy minus the worst robust accuracy measured)
and the time. The section is absent from a run with no defence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import escape

from aisec.report.sections import register_section, render_template

if TYPE_CHECKING:
    from aisec.checks.detection import DetectionSummary
    from aisec.core.check import Result
    from aisec.core.run import Run


@dataclass(frozen=True)
class DefenceRow:
    """One defence as the table shows it (None: not measured)."""

    defence: str
    kind: str
    model: str
    budget: str
    undefended_clean: float
    clean: float
    cost: float
    autoattack: float | None
    adaptive: float | None
    adaptive_by: str
    verdict: str
    safair_delta: float | None
    seconds: float


COLUMNS = ("defence", "kind", "model", "budget", "clean acc (undefended)", "clean acc (defended)", "clean cost",
           "robust acc (AutoAttack)", "robust acc (adaptive)", "reliability", "SAFAIR Δ", "time")


def defence_rows(run: Run) -> list[DefenceRow]:
    """The rows of ``run`` and of its related runs, in run order."""
    from aisec.checks.detection import DetectionSummary
    from aisec.checks.robustness import RobustnessSummary

    rows: list[DefenceRow] = []
    for r in [run, *run.related]:
        model = r.target.spec.name
        for res in r.results:
            s = res.summary
            if isinstance(s, RobustnessSummary) and s.defence is not None:
                d = s.defence
                verdict = "not evaluated" if d.reliable is None else "reliable" if d.reliable else \
                    "NOT RELIABLE: " + ", ".join(dict.fromkeys(f.id for f in (s.reliability.flags if s.reliability
                                                                            else [])))
                budget = f"{d.norm} ε={d.eps:.4g}" if d.norm and d.eps is not None else "—"
                rows.append(DefenceRow(
                    defence=d.defence, kind="preprocessing", model=model, budget=budget,
                    undefended_clean=d.undefended_clean_accuracy, clean=d.clean_accuracy, cost=d.clean_cost,
                    autoattack=d.autoattack_robust_accuracy, adaptive=d.adaptive_robust_accuracy,
                    adaptive_by=", ".join(d.adaptive_attacks), verdict=verdict, safair_delta=d.safair_delta,
                    seconds=d.seconds))
            elif isinstance(s, DetectionSummary):
                for det in s.detectors:
                    rows.append(DefenceRow(
                        defence=det.spec, kind="detector", model=model, budget=f"linf ε={det.eps:.4g}",
                        undefended_clean=det.undefended_clean_accuracy, clean=det.clean_accuracy,
                        cost=det.undefended_clean_accuracy - det.clean_accuracy, autoattack=None,
                        adaptive=det.adaptive_robust_accuracy, adaptive_by="PGD on classifier and detector",
                        verdict=f"adaptive attack run (detects {det.adaptive_detection_rate:.0%} of its examples, "
                                f"{det.recall:.0%} of plain PGD's)",
                        safair_delta=det.clean_accuracy - min(det.adaptive_robust_accuracy, det.robust_accuracy),
                        seconds=det.seconds))
    return rows


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _cells(row: DefenceRow) -> tuple[str, ...]:
    adaptive = _f(row.adaptive) + (f" ({row.adaptive_by})" if row.adaptive is not None and row.adaptive_by else "")
    return (row.defence, row.kind, row.model, row.budget, _f(row.undefended_clean), _f(row.clean), f"{row.cost:+.3f}",
            _f(row.autoattack), adaptive, row.verdict, _f(row.safair_delta), f"{row.seconds:.1f} s")


_NOTE = ("A rejection by a detector counts as an error on a clean input and as a defence on an adversarial one. "
         "Quote the adaptive column: a defence evaluated only by attacks that ignore it is not evaluated.")


def defences_html(run: Run) -> str:
    """The section as an HTML fragment, or "" when the run evaluated no defence."""
    rows = defence_rows(run)
    if not rows:
        return ""
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in _cells(r)) + "</tr>" for r in rows)
    return (f'<section id="defences"><h2>Defences</h2><p>{escape(_NOTE)}</p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>")


def defences_markdown(run: Run) -> list[str]:
    """The section as Markdown lines, or [] when the run evaluated no defence."""
    rows = defence_rows(run)
    if not rows:
        return []
    return ["## Defences", "", _NOTE, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS),
            *["| " + " | ".join(c.replace("|", "/") for c in _cells(r)) + " |" for r in rows], ""]


def roc_figure(summary: DetectionSummary) -> str:
    """The rejection ROC of every detector (clean vs plain-PGD examples), its operating point marked."""
    from aisec.report.figures import _mpl, _png

    plt = _mpl()
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    for d in summary.detectors:
        auc = "undefined" if d.auc is None else f"{d.auc:.3f}"
        line = ax.plot(d.roc_fpr, d.roc_tpr, label=f"{d.detector} (AUC {auc})")[0]
        ax.plot([d.false_positive_rate], [d.recall], "o", color=line.get_color())
    ax.plot([0, 1], [0, 1], color="#888", ls=":", lw=1)
    ax.set_xlabel("clean inputs rejected (false-positive rate)")
    ax.set_ylabel("adversarial inputs rejected (detection rate)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_title("rejection ROC (dot: the threshold)", fontsize=9)
    return _png(fig)


@register_section("detection")
def detection_section(result: Result, run: Run) -> str:
    """The detection check: its ROC figure, then its measurements (the Defences table sums it up)."""
    from aisec.checks.detection import DetectionSummary
    from aisec.report.sections import summary_of

    s = summary_of(result, DetectionSummary)
    fig = f'<img alt="rejection ROC" src="{roc_figure(s)}">' if s.detectors else ""
    table = render_template("generic.html.j2", check=result.check, warnings=result.warnings,
                            measurements=result.measurements)
    return table.replace("</h2>", f"</h2>{fig}", 1)
