"""The robustness section: curves with CIs, per-eps table, example grids, CLEVER histogram."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aisec.report import figures
from aisec.report.sections import register_section, render_template

if TYPE_CHECKING:
    from aisec.api import Run
    from aisec.core.check import Result


@register_section("robustness")
def robustness_section(result: Result, run: Run) -> str:
    classes = list(run.data.info.classes)
    example_figs = []
    for key, ex in result.images.items():
        curve = next((c for c in result.summary["curves"] if c["key"] == key), None)
        eps = curve.get("example_eps") if curve else None
        where = f" at ε={eps:g}" if eps is not None else " (minimal perturbation)"
        title = f"{key}{where}: clean (top), adversarial (middle), perturbation (bottom)"
        if ex["clean"].ndim == 4:
            example_figs.append((key, figures.example_grid(ex, classes, title)))
    clever = result.summary.get("clever")
    r = {
        "summary": result.summary, "warnings": result.warnings, "params": result.params,
        "curve_figs": figures.robustness_curves(result.summary), "example_figs": example_figs,
        "clever_fig": figures.clever_histogram(clever) if clever else None,
    }
    return render_template("robustness.html.j2", r=r)
