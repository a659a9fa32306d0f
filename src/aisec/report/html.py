"""The HTML report: one self-contained page per run (figures inlined), readable offline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

from aisec.report import figures

if TYPE_CHECKING:
    from aisec.api import Run


def render(run: Run) -> str:
    env = Environment(loader=PackageLoader("aisec", "report/templates"), autoescape=select_autoescape())
    classes = list(run.data.info.classes)
    robustness = []
    for r in run.results:
        if r.check != "robustness":
            continue
        example_figs = []
        for key, ex in r.images.items():
            curve = next((c for c in r.summary["curves"] if c["key"] == key), None)
            eps = curve.get("example_eps") if curve else None
            title = f"{key}" + (f" at ε={eps:g}" if eps is not None else " (minimal perturbation)") + \
                ": clean (top), adversarial (middle), perturbation (bottom)"
            if ex["clean"].ndim == 4:
                example_figs.append((key, figures.example_grid(ex, classes, title)))
        robustness.append({
            "summary": r.summary, "warnings": r.warnings, "params": r.params,
            "curve_figs": figures.robustness_curves(r.summary),
            "example_figs": example_figs,
            "clever_fig": figures.clever_histogram(r.summary["clever"]) if r.summary.get("clever") else None,
        })
    ev = [
        {"metric": e.metric, "value": e.value, "interval": e.interval, "sample_count": e.sample_count,
         "params": _params(e.parameters)}
        for e in run.evidence
    ]
    first = run.evidence[0] if run.evidence else None
    return env.get_template("report.html.j2").render(
        model=run.target.spec.name, access=run.target.spec.access.value, dataset=run.data.info.name,
        run_id=run.run_id, when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        robustness=robustness, evidence=ev,
        resource=first.resource if first else None, env=first.environment if first else None,
        threats=sorted({t for r in run.results for t in r.threats}),
    )


def write_report(run: Run, path: str | Path) -> Path:
    p = Path(path)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(render(run), encoding="utf-8")
    tmp.replace(p)
    return p


def _params(p: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items() if k not in ("quantize",) and v not in (False, None))
