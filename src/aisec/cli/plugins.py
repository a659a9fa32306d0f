"""``aisec plugins``: every registered method and check, with what it needs, and plugins that failed to load."""

from __future__ import annotations

import json
from typing import Any

import click


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True)
def plugins(as_json: bool) -> None:
    """List every attack, check, built-in model and dataset with what it needs."""
    from aisec.core.registry import ATTACKS, CHECKS, PLUGIN_ERRORS, load_plugins
    from aisec.models.builtin import BUILTIN_MODELS

    load_plugins()
    attacks: list[dict[str, Any]] = [
        {"name": a.name, "kind": a.kind.value, "requires": sorted(c.value for c in a.requires),
         "labels_only": not a.requires, "norms": sorted(n.value for n in a.norms), "targeted": a.targeted,
         "summary": a.summary,
         "paper": a.paper, "params": {k: (str(v.default) if v.default is not None else None)
                                      for k, v in a.cls.Params.model_fields.items()}}
        for a in sorted(ATTACKS.values(), key=lambda a: a.name)
    ]
    from aisec.attacks.inference.base import inference_attacks

    inference: list[dict[str, Any]] = [
        {"name": a.name, "kind": "membership", "requires": sorted(c.value for c in a.requires),
         "needs_recipe": a.needs_recipe, "labels_only": a.labels_only, "summary": a.summary, "paper": a.paper,
         "params": {k: (str(v.default) if v.default is not None else None)
                    for k, v in a.cls.Params.model_fields.items()}}
        for a in inference_attacks()
    ]
    checks = [{"name": c.name, "summary": c.summary} for c in CHECKS.values()]
    models: list[dict[str, Any]] = [{"name": k, "input_shape": v[1], "summary": v[2]}
                                    for k, v in BUILTIN_MODELS.items()]
    if as_json:
        click.echo(json.dumps({"attacks": attacks, "inference_attacks": inference, "checks": checks,
                               "models": models, "errors": PLUGIN_ERRORS}))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="attacks")
    for col in ("name", "kind", "needs", "norms", "targeted", "summary"):
        t.add_column(col)
    for a in attacks:
        needs = ", ".join(a["requires"]) or ("predicted labels" if a["labels_only"] else "-")
        t.add_row(a["name"], a["kind"], needs, ", ".join(a["norms"]),
                  "yes" if a["targeted"] else "no", a["summary"])
    console.print(t)
    t = Table(title="membership-inference attacks (privacy check)")
    for col in ("name", "needs", "trains models", "summary"):
        t.add_column(col)
    for a in inference:
        needs = ", ".join(a["requires"]) or ("predicted labels" if a["labels_only"] else "-")
        t.add_row(a["name"], needs, "yes (recipe)" if a["needs_recipe"] else "no", a["summary"])
    console.print(t)
    t = Table(title="checks")
    t.add_column("name")
    t.add_column("summary")
    for c in checks:
        t.add_row(c["name"], c["summary"])
    console.print(t)
    t = Table(title="built-in models")
    for col in ("name", "input", "summary"):
        t.add_column(col)
    for m in models:
        t.add_row(m["name"], "x".join(map(str, m["input_shape"])), m["summary"])
    console.print(t)
    for name, err in PLUGIN_ERRORS.items():
        console.print(f"[red]plugin {name} failed to load:[/] {err}")
