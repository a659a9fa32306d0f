"""``aisec graph``: the certification graph of stored evidence — query it or export GraphML / JSON-LD."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from aisec.cli.store_options import AisecCommand, filter_options, filters, open_store, store_option


@click.command(cls=AisecCommand)
@store_option
@filter_options
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False),
              help="Mark each requirement with this policy's verdict (default: Clouditor's thresholds).")
@click.option("--node", "node", help="Show what is linked to one node: AIC4/SR-05, AML.T0043, a model sha256, ...")
@click.option("--format", "fmt", type=click.Choice(["text", "graphml", "jsonld"]), default="text", show_default=True)
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False), help="Write the export here.")
@click.option("--all", "keep_all", is_flag=True, help="Keep catalogue nodes no measurement reaches.")
def graph(store_url: str | None, policy_file: str | None, node: str | None, fmt: str, out_file: str | None,
          keep_all: bool, **kw: Any) -> None:
    """Link stored evidence to models, runs, requirements (AIC4, AI Act Art. 15) and ATLAS threats."""
    from aisec.graph import build_graph
    from aisec.policy.rules import evaluate_policy, load_policy

    store = open_store(store_url, create=False)  # read-only: a wrong path is an error, never a new database
    rows = store.query(**filters(kw))
    records = [r.evidence for r in rows]
    policy = load_policy(policy_file) if policy_file else None
    report = evaluate_policy(records, policy) if records else None
    g = build_graph(records, runs=store.runs(), policy=report, prune=not keep_all)
    if fmt == "graphml":
        text = g.to_graphml()
    elif fmt == "jsonld":
        text = json.dumps(g.to_jsonld(), indent=2)
    else:
        text = _text(g, node)
    if out_file:
        Path(out_file).write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(g.nodes)} nodes and {len(g.edges)} edges to {out_file}")
    else:
        click.echo(text, nl=not text.endswith("\n"))


def _text(g: Any, ref: str | None) -> str:
    if ref:
        n = g.resolve(ref)
        lines = [f"{n.kind} {n.label}" + (f" [{n.attrs['verdict']}]" if "verdict" in n.attrs else "")]
        for kind in ("toe", "model", "dataset", "run", "metric", "requirement", "threat", "mitigation", "threat_model"):
            near = g.neighbours(n.id, kind=kind)
            if near:
                lines.append(f"  {kind} ({len(near)}):")
                lines += [f"    {m.label}" for m in sorted(near, key=lambda m: m.label)]
        return "\n".join(lines)
    counts: dict[str, int] = {}
    for n in g.nodes.values():
        counts[n.kind] = counts.get(n.kind, 0) + 1
    lines = [f"{len(g.nodes)} nodes ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}), {len(g.edges)} edges"]
    for q in sorted(g.of_kind("requirement"), key=lambda q: q.id):
        n_metrics = len(g.neighbours(q.id, kind="metric"))
        lines.append(f"  {q.attrs.get('verdict', '-'):12} {q.label}: {n_metrics} measurement(s)")
    return "\n".join(lines)
