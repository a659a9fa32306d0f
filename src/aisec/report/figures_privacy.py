"""Figures for the privacy section: log-log ROC, AUC forest plot, SHAPr histogram, riskiest records."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aisec.report.figures import _hwc, _mpl, _name, _png

if TYPE_CHECKING:
    from aisec.checks.privacy import MembershipAttackSummary


def roc_loglog(attacks: list[MembershipAttackSummary], fprs: list[float]) -> str:
    """Every attack's ROC on log-log axes (Carlini et al. 2022), chance as the diagonal."""
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    lo = 1.0
    for a in attacks:
        fpr = np.asarray(a.roc.fpr, dtype=float)
        tpr = np.asarray(a.roc.tpr, dtype=float)
        keep = fpr > 0
        if keep.any():
            lo = min(lo, float(fpr[keep].min()))
        ax.step(np.where(fpr > 0, fpr, np.nan), np.where(tpr > 0, tpr, np.nan), where="post",
                label=f"{a.key} (AUC {a.auc:.3f})", lw=1.4)
    lo = max(min(lo, min(fprs)) / 2, 1e-6)
    grid = np.geomspace(lo, 1, 50)
    ax.plot(grid, grid, color="#888", ls="--", lw=1, label="chance")
    for f in fprs:
        ax.axvline(f, color="#bbb", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, 1)
    ax.set_ylim(lo, 1.02)
    ax.set_xlabel("false positive rate (non-members called members)")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    ax.set_title("Membership inference ROC (log-log); dotted: reported FPRs", fontsize=9)
    return _png(fig)


def auc_forest(attacks: list[MembershipAttackSummary]) -> str:
    """AUC of each attack with its 95% interval; 0.5 (no leakage) marked."""
    plt = _mpl()
    k = len(attacks)
    fig, ax = plt.subplots(figsize=(5.6, 0.45 * k + 1.0))
    for i, a in enumerate(attacks):
        ci = a.auc_ci
        ax.plot([ci.low, ci.high], [i, i], color="#3b6fb6", lw=2)
        ax.plot([a.auc], [i], "o", color="#1d3f73")
    ax.axvline(0.5, color="#c0392b", ls="--", lw=1)
    ax.set_yticks(range(k), [a.key for a in attacks], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ROC AUC (95% DeLong interval); 0.5 = no better than chance")
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def shapr_histogram(values: np.ndarray, score: float) -> str:
    """Distribution of per-member SHAPr values; > 0 marks membership risk."""
    plt = _mpl()
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    ax.hist(v, bins=min(60, max(10, v.size // 20)), color="#3b6fb6", alpha=0.8)
    ax.axvline(0.0, color="#c0392b", ls="--", lw=1, label="0 (above: at risk)")
    ax.axvline(score, color="#1d3f73", lw=1, label=f"mean {score:.3f}")
    ax.set_xlabel("SHAPr value per member (ART normalisation)")
    ax.set_ylabel("members")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def riskiest_grid(ex: dict[str, np.ndarray], classes: list[str]) -> str:
    """The members with the highest SHAPr values, with label, prediction and value."""
    return ranked_sample_grid(ex, classes, "SHAPr", "Members at highest risk (SHAPr); red title: misclassified",
                              value_range=(0.0, 1.0))


def ranked_sample_grid(ex: dict[str, np.ndarray], classes: list[str], value_name: str, title: str, *,
                       value_range: tuple[float, float] | None = None) -> str:
    """Images ``ex["x"]`` in rows of up to 8, each titled with its id, label and ``value_name ex["value"]`` (red
    when ``ex["pred"]`` misses the label); ``value_range`` scales every image alike (None: each to its own)."""
    plt = _mpl()
    x = ex["x"]
    k = x.shape[0]
    cols = min(k, 8)
    rows = int(np.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.35 * cols, 1.6 * rows), squeeze=False)
    lo, hi = value_range if value_range is not None else (None, None)
    for i in range(rows * cols):
        ax = axes[i // cols][i % cols]
        ax.axis("off")
        if i >= k:
            continue
        img = x[i]
        ax.imshow(_hwc(img), cmap="gray" if img.shape[0] == 1 else None, vmin=lo, vmax=hi, interpolation="nearest")
        wrong = ex["pred"][i] != ex["label"][i]
        ax.set_title(f"#{int(ex['index'][i])} y={_name(classes, ex['label'][i])}\n{value_name} {ex['value'][i]:.2f}",
                     fontsize=7, color="#c0392b" if wrong else "#222")
    fig.suptitle(title, fontsize=9, y=1.0 + 0.12 / rows if value_range is None else None)
    return _png(fig)
