"""Figures for reports, rendered with matplotlib (Agg) to inline SVG/PNG strings."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from aisec.checks.robustness import CleverSummary, CurveSummary, RobustnessSummary


def _mpl() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    matplotlib.rcParams["text.parse_math"] = False  # class names are data: '$\x$' must not be parsed as mathtext
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _mpl().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def robustness_curves(summary: RobustnessSummary) -> list[tuple[str, str]]:
    """One plot per norm: robust accuracy vs eps for each attack, with 95% Wilson bands."""
    plt = _mpl()
    by_norm: dict[str, list[CurveSummary]] = {}
    for c in summary.curves:
        by_norm.setdefault(c.norm, []).append(c)
    figs = []
    for norm, curves in by_norm.items():
        fig, ax = plt.subplots(figsize=(6.0, 3.8))
        for c in curves:
            eps = [0.0] + [p.eps for p in c.points]
            acc = [summary.clean_accuracy] + [p.robust_accuracy for p in c.points]
            lo = [summary.clean_ci.low] + [p.ci.low for p in c.points]
            hi = [summary.clean_ci.high] + [p.ci.high for p in c.points]
            label = c.attack.upper() + (" (targeted)" if c.targeted else "")
            (line,) = ax.plot(eps, acc, marker="o", ms=4, label=label)
            ax.fill_between(eps, lo, hi, color=line.get_color(), alpha=0.18, lw=0)
        ax.set_xlabel(f"ε ({norm})")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
        ax.set_title(f"Robust accuracy vs ε ({norm}), shaded: 95% Wilson CI", fontsize=10)
        figs.append((norm, _png(fig)))
    return figs


def example_grid(ex: dict[str, np.ndarray], classes: list[str], title: str) -> str:
    """Clean (top) and adversarial (bottom) images with their predicted labels."""
    plt = _mpl()
    clean, adv = ex["clean"], ex["adv"]
    k = clean.shape[0]
    fig, axes = plt.subplots(3, k, figsize=(1.35 * k, 4.3), squeeze=False)
    for i in range(k):
        diff = adv[i] - clean[i]
        for row, img, cap in (
            (0, clean[i], f"{_name(classes, ex['pred_clean'][i])}"),
            (1, adv[i], f"→ {_name(classes, ex['pred_adv'][i])}"),
        ):
            ax = axes[row][i]
            ax.imshow(_hwc(img), cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            fooled = row == 1 and ex["pred_adv"][i] != ex["label"][i]
            ax.set_title(cap, fontsize=8, color="#c0392b" if fooled else "#222")
            ax.axis("off")
        m = float(np.abs(diff).max()) or 1.0
        axes[2][i].imshow(_hwc(diff).mean(-1) if diff.shape[0] > 1 else diff[0], cmap="coolwarm",
                          vmin=-m, vmax=m, interpolation="nearest")
        axes[2][i].set_title(f"δ ±{m:.2f}", fontsize=7)
        axes[2][i].axis("off")
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def clever_legend(norm: str, s: CleverSummary) -> str:
    """The histogram's legend entry: the summary's own median, the one the report's tile shows."""
    return f"{norm} (median {s.median:.3g}, R={s.radius:g})"


def clever_histogram(scores: dict[str, CleverSummary]) -> str:
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for norm, s in scores.items():
        vals = np.asarray(s.scores, dtype=float)
        ax.hist(vals[np.isfinite(vals)], bins=min(20, max(5, vals.size // 2)), alpha=0.6,
                label=clever_legend(norm, s))
    ax.set_xlabel("CLEVER-u score (estimated minimum adversarial distortion)")
    ax.set_ylabel("samples")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _hwc(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        out = np.transpose(img, (1, 2, 0))
        return out[..., 0] if out.shape[-1] == 1 else np.clip(out, 0, 1)
    return img


def _name(classes: list[str], k: Any) -> str:
    k = int(k)
    return classes[k] if 0 <= k < len(classes) else str(k)
