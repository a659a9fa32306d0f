"""Figures for the explainability section: curves, heat-map overlays, feature bars, highlighted words."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

from aisec.report.figures import _hwc, _mpl, _name, _png

if TYPE_CHECKING:
    from aisec.checks.explainability import ExplainabilitySummary


def faithfulness_curves(summary: ExplainabilitySummary) -> str:
    """Mean deletion and insertion curves: the explainer, random feature orders and the random control."""
    plt = _mpl()
    f = summary.faithfulness
    frac = np.asarray(f.fractions)
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4), sharey=True)
    control = summary.control
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=True):
        c = f.curves
        score = f.deletion if kind == "deletion" else f.insertion
        ax.plot(frac, c[kind], marker="o", ms=3, color="#1f77b4",
                label=f"{summary.explainer} (score {score.mean:.2f})")
        ax.plot(frac, c[f"{kind}_random"], ls="--", color="#7f7f7f", label="random feature orders")
        if control is not None:
            random_score = control.deletion if kind == "deletion" else control.insertion
            ax.plot(frac, control.curves[kind], ls=":", color="#d62728",
                    label=f"random attribution (score {random_score.mean:.2f})")
        ax.set_xlabel(f"fraction of features {'deleted' if kind == 'deletion' else 'inserted'} (highest first)")
        ax.set_title(f"{kind.capitalize()}: {'lower' if kind == 'deletion' else 'higher'} area is more faithful",
                     fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(frameon=False, fontsize=7)
    axes[0].set_ylabel("probability of the explained class")
    return _png(fig)


def image_examples(ex: dict[str, np.ndarray], classes: list[str], explainer: str) -> str:
    """Each image with the model's prediction (top) and its attribution as a heat map over it (bottom).

    Red pushes toward the explained class, blue away; LIME/SHAP superpixel borders are drawn.
    """
    plt = _mpl()
    x, a = ex["x"], ex["attribution"]
    k = x.shape[0]
    fig, axes = plt.subplots(2, k, figsize=(1.6 * k, 3.6), squeeze=False)
    for i in range(k):
        img = _hwc(x[i])
        grey = img if img.ndim == 2 else img.mean(-1)
        heat = a[i].sum(0)
        m = float(np.abs(heat).max()) or 1.0
        ax = axes[0][i]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        wrong = int(ex["pred"][i]) != int(ex["label"][i])
        ax.set_title(f"pred {_name(classes, ex['pred'][i])} ({float(ex['probability'][i]):.2f})\n"
                     f"label {_name(classes, ex['label'][i])}", fontsize=7, color="#c0392b" if wrong else "#222")
        ax.axis("off")
        ax = axes[1][i]
        ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.imshow(heat, cmap="bwr", vmin=-m, vmax=m, alpha=0.6, interpolation="nearest")
        if "groups" in ex and int(ex["groups"][i].max()) < heat.size:
            from skimage.segmentation import find_boundaries

            b = find_boundaries(ex["groups"][i], mode="inner")
            if b.any() and b.mean() < 0.9:
                ax.contour(b, levels=[0.5], colors="#333", linewidths=0.4)
        ax.set_title(f"{explainer} → {_name(classes, ex['explained'][i])}", fontsize=7)
        ax.axis("off")
    fig.suptitle("Top: input with the model's prediction. Bottom: attribution (red: for the class, blue: against)",
                 fontsize=8)
    return _png(fig)


def tabular_bars(example: dict[str, Any], classes: list[str], explainer: str) -> str:
    """Horizontal bars: each top feature's weight for the explained class, with its value."""
    plt = _mpl()
    feats = example["features"][::-1]
    fig, ax = plt.subplots(figsize=(5.2, 0.32 * len(feats) + 1.0))
    w = [f["weight"] for f in feats]
    ax.barh(range(len(feats)), w, color=["#2e8b57" if v > 0 else "#c0392b" for v in w])
    ax.set_yticks(range(len(feats)), [f"{f['name']} = {f['value']:.3g}" for f in feats], fontsize=7)
    ax.axvline(0, color="#333", lw=0.6)
    ax.set_xlabel(f"{explainer} weight for class {_name(classes, example['explained'])}", fontsize=8)
    ax.set_title(f"sample {example['index']}: pred {_name(classes, example['pred'])} "
                 f"(p={example['probability']:.2f}), label {_name(classes, example['label'])}", fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def highlighted_text(spans: list[list[Any]]) -> str:
    """The text as HTML with each word's background green (for the class) or red (against), by weight."""
    m = max((abs(float(w)) for _, w in spans), default=0.0) or 1.0
    out = []
    for piece, w in spans:
        text = html.escape(str(piece))
        w = float(w)
        if w == 0.0:
            out.append(text)
            continue
        alpha = min(1.0, abs(w) / m) * 0.8 + 0.05
        colour = f"rgba(46,139,87,{alpha:.2f})" if w > 0 else f"rgba(192,57,43,{alpha:.2f})"
        out.append(f'<span style="background:{colour}" title="{w:+.4f}">{text}</span>')
    return "".join(out)
