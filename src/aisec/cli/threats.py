"""``aisec threats list|show ID``: the threat knowledge base (MITRE ATLAS ids, checks, countermeasures)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from aisec.threats.kb import EnisaRow


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
    from aisec.threats.kb import (
        load_enisa,
        load_etsi,
        load_kb,
        load_release,
        load_standards,
        mitigation_name,
        tactic_names,
    )

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
    lines += _enisa_lines(load_enisa().for_threat(t.id))
    etsi = load_etsi()
    measures = [c for m in t.mitigations for c in (*m.defences, m.id)]
    links = [x for c in dict.fromkeys(measures) if (x := etsi.link(c)) is not None]
    if links:
        lines.append("  ETSI GR SAI 005 mitigation groups (from ETSI's press release; placing by aisec):")
        lines += [f"    {x.countermeasure}: {' and '.join(x.against)}" + (f", {x.approach}" if x.approach else "")
                  for x in links]
    click.echo("\n".join(lines))


def _enisa_lines(rows: list[EnisaRow]) -> list[str]:
    """The ENISA threats paired with a threat, each with the phrase that names it and the page it is on."""
    if not rows:
        return ["  ENISA: no threat paired (no quoted ENISA phrase fits; see enisa.yaml)"]
    out = ["  ENISA (Securing Machine Learning Algorithms, 2021; pairing by aisec):"]
    for r in rows:
        out.append(f"    {r.enisa}" + (f" > {r.sub_threat}" if r.sub_threat else ""))
        out.append(f"      \"{r.quote}\"  [{r.url}]")
        if r.sub_quote:
            out.append(f"      \"{r.sub_quote}\"")
        if r.basis:
            out.append(f"      basis: \"{r.basis}\"  [{r.basis_url or r.url}]")
    return out
