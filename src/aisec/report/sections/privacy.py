"""The privacy section: attack table with CIs, log-log ROC, per-class AUCs, SHAPr distribution and
the riskiest members (as images for image data)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from aisec.checks.privacy import MembershipAttackSummary, PrivacySummary
from aisec.report import figures_privacy
from aisec.report.sections import register_section, render_template, summary_of

if TYPE_CHECKING:
    from aisec.core.check import Result
    from aisec.core.run import Run


def _per_class(attacks: list[MembershipAttackSummary]) -> dict[str, Any]:
    """Rows = classes, columns = attacks (AUC), for the per-class table."""
    if not attacks or not attacks[0].per_class:
        return {"keys": [], "rows": []}
    rows: dict[int, dict[str, Any]] = {}
    for a in attacks:
        for r in a.per_class:
            row = rows.setdefault(r["class"], {"name": r["name"], "n_members": r["n_members"],
                                               "n_nonmembers": r["n_nonmembers"], "auc": {}})
            row["auc"][a.key] = r.get("auc")
    return {"keys": [a.key for a in attacks], "rows": [rows[c] for c in sorted(rows)]}


def _what_ran(attacks: list[MembershipAttackSummary], params: dict[str, Any]) -> dict[str, Any]:
    """Which attacks ran, which model-training attacks did not (and why), and the models those that ran trained."""
    from aisec.core.registry import methods

    ran = [a.attack for a in attacks]
    training = {m.name for m in methods("inference") if getattr(m, "needs_recipe", False)}
    trained = []
    for name in ran:
        if name in training:
            key = "shadow_models" if name == "shadow" else "reference_models"
            trained.append(f"{name}: {params.get(key)} {'shadow' if name == 'shadow' else 'reference'} models")
    missing = sorted(set(training) - set(ran))
    why = ("no training recipe was given (plan: `privacy: {recipe: ...}`), so no model like the target could be "
           "trained" if params.get("recipe") is None else "not selected or not possible for this target")
    return {"ran": ran, "trained": trained, "not_run": missing, "not_run_why": why}


@register_section("privacy")
def privacy_section(result: Result, run: Run) -> str:
    s = summary_of(result, PrivacySummary)
    attacks = s.attacks
    classes = [str(c) for c in s.classes]
    table = result.tables.get("samples", {})
    shapr = s.shapr
    shapr_fig = None
    if shapr and "shapr" in table:
        vals = np.asarray(table["shapr"], dtype=float)
        shapr_fig = figures_privacy.shapr_histogram(vals[np.isfinite(vals)], shapr.score)
    riskiest = result.images.get("shapr_riskiest")
    r = {
        "summary": s, "warnings": result.warnings, "params": result.params,
        "fpr_keys": [f"{f:g}" for f in s.fprs],
        "roc_fig": figures_privacy.roc_loglog(attacks, s.fprs) if attacks else None,
        "forest_fig": figures_privacy.auc_forest(attacks) if attacks else None,
        "per_class": _per_class(attacks),
        "shapr_fig": shapr_fig,
        "riskiest_fig": figures_privacy.riskiest_grid(riskiest, classes) if riskiest is not None else None,
        "what_ran": _what_ran(attacks, result.params),
    }
    return render_template("privacy.html.j2", r=r)
