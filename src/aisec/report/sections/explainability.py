"""The explainability section: faithfulness vs random, stability, explained area, and examples.

Images get heat-map overlays next to the model's prediction, tables bar charts of the top
features, text its words highlighted. For text, each example is also saved as LIME's own
interactive HTML page (``explanations/lime-text-<i>.html`` next to the report), as ``lime``'s
``save_to_file`` writes it, and linked from the section.
"""

from __future__ import annotations

import contextlib
import json
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aisec.checks.explainability import ExplainabilitySummary
from aisec.report import figures_explain
from aisec.report.sections import register_section, render_template, summary_of

if TYPE_CHECKING:
    from aisec.core.check import Result
    from aisec.core.run import Run


def _script_safe_dumps(x: Any, **kwargs: Any) -> str:
    """JSON that can sit inside a ``<script>`` block: ``<``, ``>`` and ``&`` as ``\\u`` escapes (what
    Jinja's ``|tojson`` does), so no text or class name can close the block and inject markup."""
    out = json.dumps(x, **kwargs)
    return out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@contextlib.contextmanager
def _lime_script_safe_json() -> Iterator[None]:
    """lime builds its page with ``json.dumps`` of the raw text and class names inside ``<script>``;
    swap in the script-safe version for the duration of ``as_html``."""
    import lime.explanation
    import lime.lime_text

    shim = types.SimpleNamespace(dumps=_script_safe_dumps, loads=json.loads)
    mods = (lime.explanation, lime.lime_text)
    saved = [m.json for m in mods]
    try:
        for m in mods:
            m.json = shim
        yield
    finally:
        for m, j in zip(mods, saved, strict=True):
            m.json = j


def lime_text_html(example: dict[str, Any], num_features: int = 10) -> str:
    """LIME's HTML page for one text example of the check's summary (rebuilt with ``lime`` itself)."""
    from lime.explanation import Explanation
    from lime.lime_text import IndexedString, TextDomainMapper

    info = example["lime"]
    indexed = IndexedString(example["text"], bow=True, split_expression=info["split_expression"])
    exp = Explanation(TextDomainMapper(indexed), mode="classification", class_names=info["class_names"],
                      random_state=0)
    exp.predict_proba = np.asarray(info["predict_proba"], dtype=float)
    label = int(example["explained"])
    weights = list(enumerate(float(w) for w in info["weights"]))
    exp.local_exp = {label: sorted(weights, key=lambda t: abs(t[1]), reverse=True)[:num_features]}
    with warnings.catch_warnings(), _lime_script_safe_json():
        warnings.simplefilter("ignore", ResourceWarning)  # lime 0.2.0.1 reads its bundle.js without closing it
        return str(exp.as_html(labels=[label]))


@register_section("explainability")
def explainability_section(result: Result, run: Run) -> str:
    s = summary_of(result, ExplainabilitySummary)
    classes = list(s.classes or run.data.info.classes)
    image_fig = None
    if "examples" in result.images:
        image_fig = figures_explain.image_examples(result.images["examples"], classes, s.explainer)
    bars: list[str] = []
    texts: list[dict[str, Any]] = []
    for ex in s.examples or []:  # records (dicts): "features" for tables, "spans" for text
        if "features" in ex:
            bars.append(figures_explain.tabular_bars(ex, classes, s.explainer))
        elif "spans" in ex:
            link = None
            if run.out is not None:
                path = Path(run.out) / "explanations" / f"lime-text-{ex['index']}.html"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(lime_text_html(ex), encoding="utf-8")
                link = str(path.relative_to(run.out))
            texts.append({
                "html": figures_explain.highlighted_text(ex["spans"]), "link": link,
                "pred": classes[ex["pred"]] if 0 <= ex["pred"] < len(classes) else ex["pred"],
                "label": classes[ex["label"]] if 0 <= ex["label"] < len(classes) else ex["label"],
                "explained": classes[ex["explained"]] if 0 <= ex["explained"] < len(classes) else ex["explained"],
                "probability": ex["probability"], "index": ex["index"],
            })
    r = {
        "summary": s, "warnings": result.warnings, "params": result.params,
        "curves_fig": figures_explain.faithfulness_curves(s), "image_fig": image_fig, "bars": bars,
        "texts": texts, "perturbation": _perturbation(s.get("explainer")),
    }
    return render_template("explainability.html.j2", r=r)


def _perturbation(explainer: str | None) -> bool:
    """Whether the explainer perturbs inputs (``num_samples`` applies), as the registry declares it; False for an
    explainer not registered where the report is rendered (e.g. a plugin not installed here)."""
    from aisec.core.errors import ConfigError
    from aisec.core.registry import get

    if not explainer:
        return False
    try:
        return get("explainer", explainer).perturbation
    except ConfigError:
        return False
