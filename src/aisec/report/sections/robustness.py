"""The robustness section: curves with CIs, per-eps table, example grids (images) or original vs
adversarial texts with the changed words marked (text), CLEVER histogram."""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any

from aisec.checks.robustness import RobustnessSummary, TextRobustnessSummary
from aisec.report import figures
from aisec.report.sections import register_section, render_template, summary_of

if TYPE_CHECKING:
    from aisec.core.check import Result
    from aisec.core.run import Run


@register_section("robustness")
def robustness_section(result: Result, run: Run) -> str:
    s = summary_of(result, RobustnessSummary)
    classes = list(run.data.info.classes)
    example_figs = []
    for key, ex in result.images.items():
        curve = next((c for c in s.curves if c.key == key), None)
        eps = curve.example_eps if curve else None
        where = f" at ε={eps:g}" if eps is not None else " (minimal perturbation)"
        title = f"{key}{where}: clean (top), adversarial (middle), perturbation (bottom)"
        if ex["clean"].ndim == 4:
            example_figs.append((key, figures.example_grid(ex, classes, title)))
    text_examples = s.text_examples if isinstance(s, TextRobustnessSummary) else {}
    r = {
        "summary": s, "warnings": result.warnings, "params": result.params,
        "curve_figs": figures.robustness_curves(s), "example_figs": example_figs,
        "clever_fig": figures.clever_histogram(s.clever) if s.clever else None,
        "text_examples": {k: [_marked(ex, classes) for ex in rows] for k, rows in text_examples.items()},
        "quote": _quoted(s, result.params.get("reference_eps") or {}),
    }
    return render_template("robustness.html.j2", r=r)


def _quoted(s: RobustnessSummary, reference: dict[str, float]) -> dict[str, Any]:
    """Per norm, the worst-case point at the reference budget (the tile "the number to quote"), if measured."""
    out: dict[str, Any] = {}
    for w in s.worst_case:
        ref = reference.get(w.norm)
        hit = [p for p in w.points if ref is not None and math.isclose(p.eps, ref, rel_tol=1e-3)]
        if hit:
            out[w.norm] = hit[0]
    return out


def _marked(ex: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """A text example with each word of the adversarial text paired with whether the attack changed it.

    The adversarial text comes back through the tokenizer (lower-cased, re-spaced), so words are
    compared case-insensitively on whitespace-split, punctuation-stripped forms.
    """
    def norm(w: str) -> str:
        return w.strip(".,;:!?\"'()[]").lower()

    orig = (ex.get("text") or "").split()
    adv = (ex.get("adv_text") or "").split()
    same = [False] * len(adv)
    sm = difflib.SequenceMatcher(a=[norm(w) for w in orig], b=[norm(w) for w in adv], autojunk=False)
    for block in sm.get_matching_blocks():
        for j in range(block.b, block.b + block.size):
            same[j] = True

    def name(k: int) -> str:
        return classes[k] if 0 <= k < len(classes) else str(k)

    return {**ex, "adv_words": [(w, not s) for w, s in zip(adv, same, strict=True)],
            "label_name": name(int(ex["label"])), "pred_clean_name": name(int(ex["pred_clean"])),
            "pred_adv_name": name(int(ex["pred_adv"]))}
