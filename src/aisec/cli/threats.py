"""``aisec threats list|show ID``: the threat knowledge base (MITRE ATLAS ids, checks, countermeasures)."""

from __future__ import annotations

import json

import click


@click.group("threats")
def threats() -> None:
    """The threat knowledge base: what aisec measures of each threat, and its countermeasures."""


@threats.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the knowledge base as JSON.")
def list_threats(as_json: bool) -> None:
    """One line per threat: id, name, family, the checks that measure it."""
    from aisec.threats.kb import load_kb, load_release

    kb = load_kb()
    if as_json:
        click.echo(json.dumps([t.model_dump(mode="json") for t in kb.threats], indent=2))
        return
    for t in kb.threats:
        measured = ", ".join(t.checks) if t.checks else "not tested"
        click.echo(f"{t.id:14} {t.name:32} {t.family:12} {measured}")
    rel = load_release()
    click.echo(f"(MITRE ATLAS {rel.release}, {rel.tag}; `aisec threats show ID` for one)")


@threats.command("show")
@click.argument("threat_id")
def show(threat_id: str) -> None:
    """A threat in full: attributes, checks and metrics, attacks, mitigations and the defences behind them."""
    from aisec.core.errors import ConfigError
    from aisec.threats.kb import load_kb, load_release, load_standards, mitigation_name, tactic_names

    kb = load_kb()
    t = kb.threat(threat_id.strip())
    if t is None:
        known = ", ".join(x.id for x in kb.threats)
        raise ConfigError(f"no threat '{threat_id}' in the knowledge base; known: {known}")
    rel = load_release()
    lines = [f"{t.id} {t.name}  (MITRE ATLAS {rel.release}, https://atlas.mitre.org/techniques/{t.id})",
             f"  tactics:    {', '.join(tactic_names(t.tactics))}",
             f"  family:     {t.family}",
             f"  knowledge:  {', '.join(t.knowledge)}",
             f"  access:     {', '.join(t.access)}",
             f"  modality:   {', '.join(t.modality)}",
             f"  goals:      {', '.join(t.goals)}",
             f"  checks:     {', '.join(t.checks) or 'none'}",
             f"  metrics:    {', '.join(t.metrics) or 'none'}"]
    if t.attacks:
        lines.append(f"  attacks:    {', '.join(t.attacks)}")
    if t.untested:
        lines.append(f"  not tested: {t.untested}")
    lines.append("  mitigations:")
    for m in t.mitigations:
        lines.append(f"    {m.id} {mitigation_name(m.id)}" + (f": {', '.join(m.defences)}" if m.defences else
                                                               " (no aisec defence)"))
    rows = [r for r in load_standards().rows if t.id in r.threats]
    if rows:
        lines.append("  standards:")
        lines += [f"    {r.standard} {r.clause}  [source: {r.source}]" for r in rows]
    click.echo("\n".join(lines))
