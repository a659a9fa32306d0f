"""``aisec plugins``: every registered method of every family, with its facts and parameters, and
the plugins that failed to load.

The table view fits the terminal (``COLUMNS=80`` gives lines of at most 80 characters): one table
per family, each method on one row with a short ``needs``/``facts`` column and its summary, its
parameters (name=default) on the line below. ``--json`` gives a dict keyed by family, each method a
dict of its declared facts and parameters, plus the older lists ``attacks``, ``inference_attacks``,
``checks``, ``models`` and ``errors``.
"""

from __future__ import annotations

import json
from typing import Any

import click

# How each family is titled in the table view.
_TITLES: dict[str, str] = {
    "evasion": "evasion attacks (robustness check)",
    "text": "text attacks (robustness check on text)",
    "inference": "membership-inference attacks (privacy check)",
    "poisoning": "poisoning attacks (poisoning check)",
    "detector": "backdoor detectors (backdoor check)",
    "explainer": "explainers (explainability check)",
    "defence": "defences",
    "check": "checks",
    "section": "report sections (by check)",
    "training": "training defences (aisec defend)",
    "rejector": "input detectors (detection check)",
}
# Facts shown in the short column (the JSON has all of them); booleans show their name when true.
_SHORT_FACTS = ("kind", "norms", "natural_norm", "targeted", "iterative", "budget_unit", "needs_recipe",
                "labels_only", "clean_label", "trigger", "default_mode", "inspects", "flags_samples", "stochastic",
                "perturbation", "modalities", "inner", "trained", "adaptive")


def _method_json(info: Any) -> dict[str, Any]:
    return {"name": info.name, "summary": info.summary, **info.facts(), "params": info.parameters()}


def _short_facts(row: dict[str, Any]) -> str:
    """``needs`` and the family's main facts, compactly: ``gradients; l2*, linf; iterative``."""
    needs = ", ".join(row.get("requires", [])) or ("labels" if row.get("labels_only") else "-")
    parts = [needs]
    for key in _SHORT_FACTS:
        if key not in row or key == "labels_only":
            continue
        v = row[key]
        if key == "norms":
            nat = row.get("natural_norm")
            parts.append(",".join(f"{n}*" if n == nat and len(v) > 1 else n for n in v))
        elif key == "natural_norm" or v in (None, [], "", False):
            continue
        elif v is True:
            parts.append(key.replace("_", " "))
        elif isinstance(v, list):
            parts.append(",".join(map(str, v)))
        elif key == "budget_unit":
            parts.append(f"budget in {v}")
        else:
            parts.append(str(v))
    return "; ".join(parts)


def _short_value(v: str | None) -> str:
    """A default as shown in the table: floats to 4 significant digits (8/255 reads 0.03137), None as ``-``."""
    if v is None:
        return "-"
    try:
        f = float(v)
    except ValueError:
        return v
    return f"{f:.4g}" if "." in v or "e" in v.lower() else v


def _params_line(params: dict[str, str | None]) -> str:
    return " ".join(f"{k}={_short_value(v)}" for k, v in params.items())


def collect() -> dict[str, Any]:
    """Everything ``aisec plugins --json`` prints (the registry loaded first)."""
    from aisec.core import registry
    from aisec.models.builtin import BUILTIN_MODELS

    registry.load()
    out: dict[str, Any] = {fam: {m.name: _method_json(m) for m in registry.methods(fam)}
                           for fam in registry.families()}
    attacks = [*out["evasion"].values(), *out["text"].values()]
    out["attacks"] = sorted(
        ({**a, "labels_only": not a["requires"]} for a in attacks), key=lambda a: str(a["name"]))
    out["inference_attacks"] = [{"kind": "membership", **a} for a in out["inference"].values()]
    out["checks"] = [{"name": c["name"], "summary": c["summary"]} for c in out["check"].values()]
    out["models"] = [{"name": k, "input_shape": v[1], "summary": v[2]} for k, v in BUILTIN_MODELS.items()]
    out["errors"] = dict(registry.PLUGIN_ERRORS)
    return out


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON, keyed by family.")
def plugins(as_json: bool) -> None:
    """List every registered method of every family with its facts and parameters, built-in models and
    plugins that failed to load."""
    from aisec.core import registry

    data = collect()
    if as_json:
        click.echo(json.dumps(data))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    for fam in registry.families():
        rows = list(data[fam].values())
        t = Table(title=_TITLES.get(fam, fam), title_justify="left", expand=False, show_lines=False, pad_edge=False)
        t.add_column("name", no_wrap=True, overflow="fold", max_width=22)
        t.add_column("needs; facts", overflow="fold", ratio=2)
        t.add_column("summary; params", overflow="fold", ratio=3)
        for r in rows:
            cell = Text(r["summary"])
            if r["params"]:
                cell.append("\n" + _params_line(r["params"]), style="dim")
            t.add_row(r["name"], _short_facts(r) if fam not in ("check", "section") else "-", cell)
        if not rows:
            t.add_row("-", "-", Text("none registered yet", style="dim"))
        console.print(t)
    t = Table(title="built-in models", title_justify="left", pad_edge=False)
    t.add_column("name", no_wrap=True, overflow="fold")
    t.add_column("input", no_wrap=True)
    t.add_column("summary", overflow="fold")
    for m in data["models"]:
        t.add_row(m["name"], "x".join(map(str, m["input_shape"])), m["summary"])
    console.print(t)
    for name, err in data["errors"].items():
        console.print(Text.assemble(("plugin ", "red"), (name, "red"), (" failed to load: ", "red"), err))
