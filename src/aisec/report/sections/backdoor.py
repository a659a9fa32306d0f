"""The backdoor-detection section: verdict per method, anomaly index per class against the
threshold, Neural Cleanse's reverse-engineered triggers and the samples flagged as poisoned."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aisec.checks.backdoor import BackdoorSummary, DetectionSummary
from aisec.report.figures import _hwc, _mpl, _name, _png
from aisec.report.sections import register_section, render_template, summary_of

if TYPE_CHECKING:
    from aisec.core.check import Result
    from aisec.core.run import Run


def anomaly_bars(methods: list[DetectionSummary], classes: list[str]) -> str:
    """Anomaly index per class, one group of bars per method, suspected classes in red."""
    plt = _mpl()
    k = len(methods[0].anomaly_index)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * k + 2), 3.4))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        ai = np.asarray(m.anomaly_index, dtype=float)
        pos = np.arange(k) + (j - (len(methods) - 1) / 2) * width
        colors = ["#c0392b" if c in m.suspected else f"C{j}" for c in range(k)]
        ax.bar(pos, ai, width, color=colors, label=f"{m.method} (threshold {m.threshold:g})")
        ax.axhline(m.threshold, color=f"C{j}", ls=":", lw=1)
    ax.set_xticks(range(k), [_name(classes, c) for c in range(k)], fontsize=8)
    ax.set_xlabel("class")
    ax.set_ylabel("anomaly index (robust z)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Anomaly index per class (red: suspected backdoor target)", fontsize=9)
    return _png(fig)


def trigger_grid(tr: dict[str, np.ndarray], classes: list[str], suspected: list[int]) -> str:
    """Neural Cleanse's smallest trigger (mask × pattern) per class, with its L1 mask size."""
    plt = _mpl()
    mask, pat = tr["mask"], tr["pattern"]
    k = mask.shape[0]
    fig, axes = plt.subplots(1, k, figsize=(1.15 * k, 1.7), squeeze=False)
    for c in range(k):
        ax = axes[0][c]
        ax.imshow(_hwc(mask[c] * pat[c]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{_name(classes, c)}\nL1 {float(tr['l1'][c]):.1f}", fontsize=7,
                     color="#c0392b" if c in suspected else "#222")
    fig.suptitle("Neural Cleanse: smallest trigger found per class", fontsize=9)
    return _png(fig)


def flagged_grid(fl: dict[str, np.ndarray], classes: list[str]) -> str:
    plt = _mpl()
    k = fl["x"].shape[0]
    fig, axes = plt.subplots(1, k, figsize=(1.2 * k, 1.6), squeeze=False)
    for i in range(k):
        ax = axes[0][i]
        ax.imshow(_hwc(fl["x"][i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"#{int(fl['index'][i])}: {_name(classes, fl['label'][i])}", fontsize=7)
    fig.suptitle("samples flagged as poisoned (index: label)", fontsize=9)
    return _png(fig)


@register_section("backdoor")
def backdoor_section(result: Result, run: Run) -> str:
    s = summary_of(result, BackdoorSummary)
    classes = [str(c) for c in s.classes]
    methods = s.methods
    nc = next((m for m in methods if m.method == "neural-cleanse"), None)
    r = {
        "summary": s, "warnings": result.warnings, "params": result.params,
        "bars_fig": anomaly_bars(methods, classes) if methods else None,
        "trigger_fig": trigger_grid(result.images["triggers"], classes, nc.suspected if nc else [])
        if "triggers" in result.images and result.images["triggers"]["mask"].ndim == 4 else None,
        "flagged_fig": flagged_grid(result.images["flagged"], classes)
        if "flagged" in result.images and result.images["flagged"]["x"].ndim == 4 else None,
        "names": {m.method: [_name(classes, k) for k in m.suspected] for m in methods},
    }
    return render_template("backdoor.html.j2", r=r)
