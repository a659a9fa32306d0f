"""The HTML report: one self-contained page per run (figures inlined), readable offline.

Each check contributes a section through :mod:`aisec.report.sections`; the page adds the
evidence table and the provenance.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import escape

from aisec.core import registry
from aisec.core.check import DictSummary
from aisec.report.sections import SECTIONS, render_template

if TYPE_CHECKING:
    from aisec.core.run import Run


#: checks whose section reads a typed summary (aisec's own; a plugin's section may read a dict)
_TYPED_CHECKS = frozenset({"robustness", "explainability", "poisoning", "backdoor", "privacy", "extraction",
                           "model-scan", "spade", "detection"})


def _load_sections() -> None:
    """Import every section module (and plugins), which registers them (registry family ``section``)."""
    registry.load("section")


def render(run: Run, banner: str | None = None, at: Path | None = None) -> str:
    """The page; ``banner`` (e.g. "re-rendered from result.json ...") heads it when given. ``at``: the folder
    the page is written to (default: the run's own), which its links to the run's files are relative to."""
    _load_sections()
    head = [f'<div class="warn banner" id="rerendered">{escape(banner)}</div>'] if banner else []
    from aisec.report.sections.defences import defences_html

    defences = defences_html(run)  # the per-defence table (issue 15), when the run evaluated one
    parts = [*head, executive_summary(run), *([defences] if defences else []), *residual_section(run),
             *_sections_of(run)]
    for other in run.related:  # e.g. the demo's over-fitted and regularised privacy models, side by side
        link = (f' · <a href="{_href(other.out / "report.html", at or run.out)}">its own report</a>'
                if other.out and run.out else "")
        parts.append(f'<h2 class="related">{escape(other.target.spec.name)} on {escape(other.data.info.name)}'
                     f"{link}</h2>")
        parts += _sections_of(other)
    ev = [
        {"metric": e.metric, "value": e.value, "interval": e.interval, "sample_count": e.sample_count,
         "params": _params(e.parameters)}
        for e in run.evidence
    ]
    first = run.evidence[0] if run.evidence else None
    return render_template(
        "report.html.j2",
        model=run.target.spec.name, access=run.target.spec.access.value, dataset=run.data.info.name,
        run_id=run.run_id, when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        sections=parts, evidence=ev, inputs=input_note(run),
        files=_href(run.out, at) if run.out is not None and at is not None else "",
        resource=first.resource if first else None, env=first.environment if first else None,
        threats=sorted({t for r in run.results for t in r.threats}),
    )


def _href(path: Path, base: Path) -> str:
    """``path`` as a link from a page in ``base`` (relative, POSIX separators; ``./`` when the same folder)."""
    rel = Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()
    return "./" if rel == "." else rel


def residual_section(run: Run) -> list[str]:
    """The residual-risk table of a threat-model run (none for other runs)."""
    from aisec.threats.kb import load_release
    from aisec.threats.residual import residual_risk

    risk = run.residual if run.residual is not None else residual_risk(run)
    if risk is None:
        return []
    rel = load_release()
    return [render_template("residual.html.j2", risk=risk, atlas=f"release {rel.release}, {rel.tag}")]


def input_note(run: Run) -> str | None:
    """How a table's features were scaled for the model, in words (None for other data): the unit that
    eps, distances and the value range of every measurement are in."""
    rec = getattr(run.data, "scaling_record", None)
    if rec is None:
        return None
    r = rec()
    lo, hi = r["value_range"]
    return (f"features scaled '{r['method']}': eps and distances are in {r['units']}; model inputs lie in "
            f"[{lo:.4g}, {hi:.4g}] (per-feature offset and scale are in every evidence record's input_scaling)")


def executive_summary(run: Run) -> str:
    """The verdict rule by rule in plain words (:mod:`aisec.report.verdict`): failed rules and findings first,
    then every line with its metric id, then the caveats (how far to trust the numbers) in a list of their own."""
    from aisec.policy.sanity import alerts
    from aisec.report.verdict import overall, requirement_rows, split_warnings, verdict_lines

    findings, caveats = split_warnings(run)
    lines = verdict_lines(run)
    passed, n_failed, n_measured = overall(lines)
    policy_name = "policy" if run.policy is not None else "default policy (Clouditor AISecurity thresholds)"
    return render_template(
        "summary.html.j2", verdict=run.verdict, lines=lines, requirements=requirement_rows(run, lines),
        passed=passed, n_failed=n_failed,
        n_measured=n_measured, findings=findings, caveats=caveats, errors=run.errors, alerts=alerts(run.evidence),
        checks=[r.check for r in run.results], n_evidence=len(run.evidence), policy_name=policy_name,
    )


def _sections_of(run: Run) -> list[str]:
    parts = []
    for r in run.results:
        renderer = SECTIONS.get(r.check)
        # a summary read back untyped (``aisec report`` on a result.json this aisec cannot type) gets the table
        if renderer is not None and not (isinstance(r.summary, DictSummary) and r.check in _TYPED_CHECKS):
            parts.append(renderer(r, run))
        else:
            parts.append(render_template("generic.html.j2", check=r.check, warnings=r.warnings,
                                         measurements=r.measurements))
    return parts


def write_report(run: Run, path: str | Path, *, banner: str | None = None) -> Path:
    p = Path(path)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(render(run, banner, at=p.parent), encoding="utf-8")
    tmp.replace(p)
    return p


def _params(p: dict[str, Any]) -> str:
    from aisec.report.words import params_words

    return params_words(p)
