"""Figures for the SPADE section: the least robust samples and the node scores against the attacks' distances."""

from __future__ import annotations

import numpy as np

from aisec.report.figures import _mpl, _png
from aisec.report.figures_privacy import ranked_sample_grid


def least_robust_grid(ex: dict[str, np.ndarray], classes: list[str]) -> str:
    """The samples with the highest SPADE node scores, with label, prediction and score (each image scaled
    to its own range)."""
    return ranked_sample_grid(ex, classes, "node", "Least robust samples by SPADE node score; red title: misclassified")


def agreement_scatter(node: np.ndarray, measures: dict[str, np.ndarray]) -> str:
    """Node score against each per-sample measure (DeepFool distance, CLEVER), one panel each; samples the
    attack never fooled are drawn at the top edge."""
    plt = _mpl()
    fig, axes = plt.subplots(1, len(measures), figsize=(3.2 * len(measures), 2.8), squeeze=False)
    for ax, (name, vals) in zip(axes[0], measures.items(), strict=True):
        v = np.asarray(vals, dtype=float)
        keep = ~np.isnan(v)
        finite = keep & np.isfinite(v)
        top = float(v[finite].max()) * 1.05 if finite.any() else 1.0
        ax.scatter(node[finite], v[finite], s=10, color="#3b6fb6", alpha=0.8)
        inf = keep & ~np.isfinite(v)
        if inf.any():
            ax.scatter(node[inf], np.full(int(inf.sum()), top), s=12, marker="^", color="#c0392b", label="not fooled")
            ax.legend(frameon=False, fontsize=7)
        ax.set_xlabel("SPADE node score (1 = least robust)", fontsize=8)
        ax.set_ylabel(name, fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)
