"""The poisoning section: ASR and clean accuracy vs poisoning rate (95% Wilson bands), pixels
needed, and clean vs poisoned sample images."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aisec.checks.poisoning import PoisonedDataSummary, PoisoningSummary
from aisec.core.check import IntervalSummary
from aisec.report.figures import _hwc, _mpl, _name, _png
from aisec.report.sections import register_section, render_template, summary_of

if TYPE_CHECKING:
    from aisec.core.check import Result
    from aisec.core.run import Run


def asr_curve(summary: PoisoningSummary) -> str:
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    pts = summary.points
    r = np.array([p.rate for p in pts]) * 100
    series: tuple[tuple[str, list[float], list[IntervalSummary]], ...] = (
        ("attack success rate", [p.asr for p in pts], [p.asr_ci for p in pts]),
        ("clean accuracy", [p.clean_accuracy for p in pts], [p.clean_ci for p in pts]),
    )
    for label, values, cis in series:
        ax.plot(r, np.array(values), marker="o", label=label)
        ax.fill_between(r, np.array([c.low for c in cis]), np.array([c.high for c in cis]), alpha=0.2)
    ax.axhline(summary.success_threshold, color="#888", ls=":", lw=1)
    ax.set_xlabel("poisoning rate (% of training set)")
    ax.set_ylabel("fraction")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(f"{summary.attack}: backdoor vs poisoning rate (95% Wilson bands)", fontsize=9)
    return _png(fig)


def pairs_grid(ex: dict[str, np.ndarray], classes: list[str], title: str, top: str, bottom: str) -> str:
    plt = _mpl()
    k = ex["clean"].shape[0]
    fig, axes = plt.subplots(2, k, figsize=(1.3 * k, 2.9), squeeze=False)
    for i in range(k):
        for row, key, lab in ((0, "clean", top), (1, "poisoned", bottom)):
            ax = axes[row][i]
            ax.imshow(_hwc(ex[key][i]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if lab in ex:
                ax.set_title(_name(classes, ex[lab][i]), fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def generate_only_section(s: PoisonedDataSummary) -> str:
    """A generate-only run: what was written, and that nothing was trained or measured."""
    from html import escape

    where = f"written to <code>{escape(s.file)}</code>" if s.file else "not written (save_poisoned is off)"
    return ("<section><h2>Poisoning — poisoned training data (generate only)</h2>"
            f"<p>Attack <b>{escape(s.attack)}</b>: {s.poisons} of {s.train_samples} training samples poisoned "
            f"(rate {100 * s.rate:.2f}%), source class "
            f"{s.source_class if s.source_class is not None else 'all but target'} → target class {s.target_class}; "
            f"the poisoned set is {where}. No model was trained and nothing was measured.</p></section>")


@register_section("poisoning")
def poisoning_section(result: Result, run: Run) -> str:
    if isinstance(result.summary, PoisonedDataSummary):
        return generate_only_section(result.summary)
    s = summary_of(result, PoisoningSummary)
    classes = [str(c) for c in s.classes]
    figs = []
    if "poisons" in result.images and result.images["poisons"]["clean"].ndim == 4:
        figs.append(pairs_grid(result.images["poisons"], classes,
                               "training samples: original (top, label) and poisoned (bottom, label used)",
                               "label_clean", "label_poisoned"))
    if "triggered" in result.images and result.images["triggered"]["clean"].ndim == 4:
        figs.append(pairs_grid(result.images["triggered"], classes,
                               "test images: clean (top, prediction) and with trigger (bottom, prediction)",
                               "pred_clean", "pred_poisoned"))
    r = {"summary": s, "warnings": result.warnings, "params": result.params,
         "curve_fig": asr_curve(s) if s.points else None, "example_figs": figs}
    return render_template("poisoning.html.j2", r=r)
