"""The SPADE section: the score and its [0, 1] index, the graphs' facts, the least robust samples (images or
texts) and how the node-score ranking agrees with CLEVER and DeepFool."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aisec.checks.spade import SpadeSummary
from aisec.report import figures_spade
from aisec.report.sections import register_section, render_template, summary_of

if TYPE_CHECKING:
    from aisec.core.check import Result
    from aisec.core.run import Run


@register_section("spade")
def spade_section(result: Result, run: Run) -> str:
    s = summary_of(result, SpadeSummary)
    classes = [str(c) for c in getattr(run.data.info, "classes", ()) or ()]
    table = result.tables.get("samples", {})
    scatter = None
    if s.agreement and "node_score" in table and "deepfool_distance" in table:
        node = np.asarray(table["node_score"], dtype=float)
        scatter = figures_spade.agreement_scatter(node, {"DeepFool minimal L2 distance": table["deepfool_distance"],
                                                         "CLEVER-u (L2)": table["clever"]})
    least = result.images.get("least_robust")
    r = {"summary": s, "warnings": result.warnings, "classes": classes,
         "grid": figures_spade.least_robust_grid(least, classes) if least is not None else None,
         "scatter": scatter}
    return render_template("spade.html.j2", r=r)
