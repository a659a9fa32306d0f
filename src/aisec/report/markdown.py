"""The Markdown report: the same run as ``report.html`` in a form that diffs and pastes well
(tickets, merge requests, audit annexes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aisec.core.run import Run


def render_markdown(run: Run) -> str:
    from aisec.report.html import input_note

    spec = run.target.spec
    lines = [
        f"# aisec report: {spec.name} on {run.data.info.name}",
        "",
        f"Run `{run.run_id}` · model sha256 `{spec.digest}` · dataset digest `{run.data.info.digest}`",
        "",
        *([f"Inputs: {note}", ""] if (note := input_note(run)) else []),
        "## Executive summary",
        "",
    ]
    from aisec.policy.sanity import alerts

    lines += [f"> **Warning: useless model?** {a}" for a in alerts(run.evidence)]
    if run.verdict is not None:
        lines += ["", run.verdict.markdown(), ""]
    for e in run.errors:
        lines.append(f"- **error:** {e}")
    for r in run.results:
        lines += [f"- **{r.check}:** {w}" for w in r.warnings]
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
            lines += ["| metric | parameters | value | 95% CI | n |", "|---|---|---|---|---|"]
            for m in r.measurements:
                ci = f"{m.interval.low:.4g}–{m.interval.high:.4g}" if m.interval else ""
                lines.append(f"| {m.metric} | {_params(m.parameters)} | {m.value:.4g} | {ci} | {m.sample_count} |")
    lines += ["", "Evidence: `evidence.jsonl`; per-sample data: `samples/`; figures: `report.html`.", ""]
    return "\n".join(lines)


def write_markdown(run: Run, path: str | Path) -> Path:
    p = Path(path)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(render_markdown(run), encoding="utf-8")
    tmp.replace(p)
    return p


def _params(p: dict[str, Any]) -> str:
    from aisec.report.words import params_words

    return params_words(p).replace("|", "/")
