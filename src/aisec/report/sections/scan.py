"""The scan section: the Counterfit-style summary of an ``aisec scan`` run (one row per attack: runs,
success %, best score and parameters, median distance, time and queries) and every attack run with its
success rate, 95% Wilson interval and per-sample table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aisec.report.sections import register_section, render_template

if TYPE_CHECKING:
    from aisec.core.check import Result
    from aisec.core.run import Run


@register_section("scan")
def scan_section(result: Result, run: Run) -> str:
    """Render a ``scan`` result. Values go to the template raw and are escaped there: attack names,
    parameters and errors can come from user files and endpoints."""
    s = result.summary
    files = {e.raw.path for e in run.evidence if e.check == result.check and e.raw is not None}
    finished = iter(result.measurements)  # one measurement per finished run, in run order
    runs: list[dict[str, Any]] = []
    for d in s.get("runs", []):
        m = next(finished, None) if d.get("error") is None else None
        file = f"samples/{result.check}-{m.raw_key}.csv" if m is not None and m.raw_key else None
        runs.append({**d, "params_text": _params_text(d.get("params") or {}),
                     "interval": m.interval if m is not None else None,
                     "file": file if file in files else None})
    rows = [{**r, "best_params_text": _params_text(r.get("best_params") or {})} for r in s.get("rows", [])]
    r = {"summary": s, "rows": rows, "runs": runs, "warnings": result.warnings,
         "done": sum(1 for d in runs if d.get("error") is None)}
    return render_template("scan.html.j2", r=r)


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) or "-"
