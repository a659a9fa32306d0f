"""The Markdown report: the same run as ``report.html`` in a form that diffs and pastes well
(tickets, merge requests, audit annexes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aisec.core.run import Run


def render_markdown(run: Run, banner: str | None = None) -> str:
    from aisec.report.html import input_note

    spec = run.target.spec
    lines = [
        f"# aisec report: {spec.name} on {run.data.info.name}",
        "",
        f"Run `{run.run_id}` · model sha256 `{spec.digest}` · dataset digest `{run.data.info.digest}`",
        "",
        *([f"Inputs: {note}", ""] if (note := input_note(run)) else []),
        *([f"> {banner}", ""] if banner else []),
        "## Executive summary",
        "",
    ]
    from aisec.policy.sanity import alerts
    from aisec.report.verdict import overall, split_warnings, verdict_lines

    lines += [f"> **Warning: useless model?** {a}" for a in alerts(run.evidence)]
    findings, caveats = split_warnings(run)
    verdict = verdict_lines(run)
    if run.verdict is not None:
        passed, n_failed, n_measured = overall(verdict)
        lines += ["", f"**{'PASS' if passed else 'FAIL'}**: {n_failed} of {n_measured} measured rules failed.", ""]
    failed = [v for v in verdict if v.status == "fail"]
    if failed or findings or run.errors:
        lines += ["### Riskiest findings first", ""]
        lines += [f"- {v.text()}" for v in failed]
        lines += [f"- **error:** {e}" for e in run.errors]
        lines += [f"- {w}" for w in findings]
        lines.append("")
    if verdict:
        lines += ["### The verdict, line by line", "", *[f"- {v.text()}" for v in verdict], ""]
    if caveats:
        lines += ["### Caveats", "", "How far to trust the numbers: none of these is a finding by itself.", "",
                  *[f"- {w}" for w in caveats], ""]
    if run.verdict is not None:
        from aisec.report.verdict import requirement_rows

        lines += ["### Per requirement", "", f"**Policy {'passed' if run.verdict.passed else 'failed'}** (this model's "
                  "evidence; rules it could not judge count with a related run's result, named)", "",
                  "| requirement | verdict | rules |", "|---|---|---|"]
        lines += [f"| {q.id} {q.title} | {q.status.replace('_', ' ')} | {'; '.join(q.reasons)} |"
                  for q in requirement_rows(run, verdict)]
        lines += ["", "### Every policy rule (this model)", "", run.verdict.rules_markdown(), ""]
    lines += residual_lines(run)
    from aisec.report.sections.defences import defences_markdown

    lines += defences_markdown(run)
    for other in [run, *run.related]:
        if other is not run:
            lines += ["", f"# {other.target.spec.name} on {other.data.info.name}", ""]
        for r in other.results:
            lines += ["", f"## {r.check.capitalize()}", ""]
            rel = r.summary.get("reliability")  # the robustness verdict comes first, before any number
            if rel is not None:
                ids = ", ".join(dict.fromkeys(f["id"] for f in rel["flags"]))
                lines += [f"**Reliability:** {'no flag raised' if rel['reliable'] else 'NOT RELIABLE (' + ids + ')'}",
                          *[f"- `{f['id']}`: {f['detail']} What to do: {f['next_step']}." for f in rel["flags"]], ""]
            lines += [f"{note}." for note in (r.summary.get("grid_notes") or [])]
            lines += _certified(r.summary.get("certified") or [])
            lines += ["| metric | parameters | value | 95% CI | n |", "|---|---|---|---|---|"]
            for m in r.measurements:
                ci = f"{m.interval.low:.4g}–{m.interval.high:.4g}" if m.interval else ""
                lines.append(f"| {m.metric} | {_params(m.parameters)} | {m.value:.4g} | {ci} | {m.sample_count} |")
    lines += ["", "Evidence: `evidence.jsonl`; per-sample data: `samples/`; figures: `report.html`.", ""]
    return "\n".join(lines)


def residual_lines(run: Run) -> list[str]:
    """The residual-risk table of a threat-model run, in Markdown (nothing for other runs)."""
    from aisec.threats.residual import residual_risk

    risk = run.residual if run.residual is not None else residual_risk(run)
    if risk is None:
        return []
    lines = [f"## Residual risk: threat model \"{risk.threat_model}\"", "",
             f"Attacker: {risk.knowledge} box, {risk.access} access, goals {', '.join(risk.goals)}.", "",
             "| threat | status | measured | result | reliability | attacker cost | mitigations |",
             "|---|---|---|---|---|---|---|"]
    for r in risk.rows:
        result = r.result or (f"not tested: {r.why_not}" if r.why_not else "")
        mit = "; ".join([f"in place: {m}" for m in r.in_place] + [f"recommended: {m}" for m in r.recommended])
        head = f"{r.threat} {r.name}" + "".join(f"<br>{s}" for s in r.standards)
        cells = [head, r.status, r.measured or "", result, r.reliability or "", r.cost or "", mit]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    if risk.rationale:
        lines += ["", "Why the plan chose what it ran:", "", *[f"- {line}" for line in risk.rationale]]
    return [*lines, ""]


def write_markdown(run: Run, path: str | Path, *, banner: str | None = None) -> Path:
    p = Path(path)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(render_markdown(run, banner), encoding="utf-8")
    tmp.replace(p)
    return p


def _certified(certified: list[Any]) -> list[str]:
    """The robustness check's certified lower bound vs empirical upper bound, per certifier and radius."""
    if not certified:
        return []

    def num(v: float | None, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    out = ["**Certified (lower bound) vs empirical (upper bound):**", "",
           "| certifier | about | norm | radius | certified | 95% CI | empirical | gap | proved / cex / inconcl. |",
           "|---|---|---|---|---|---|---|---|---|"]
    for c in certified:
        for p in c["points"]:
            out.append(f"| {c['label']} | {c['about']} | {c['norm']} | {p['radius']:g} | {p['certified_accuracy']:.3f} "
                       f"| {p['ci']['low']:.3f}–{p['ci']['high']:.3f} | {num(p['empirical'], '.3f')} "
                       f"| {num(p['gap'], '+.3f')} | {p['proved']} / {p['counterexample']} / {p['inconclusive']} |")
    return [*out, ""]


def _params(p: dict[str, Any]) -> str:
    from aisec.report.words import params_words

    return params_words(p).replace("|", "/")
