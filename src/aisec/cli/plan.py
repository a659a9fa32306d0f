"""``aisec plan --threat-model FILE``: write the plan that tests a threat model, with the reason for each choice."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("plan")
@click.option("--threat-model", "threat_model", required=True, type=click.Path(dir_okay=False),
              help="Threat-model YAML (docs/threats.md): the system, the attacker's goals, knowledge and means.")
@click.option("-m", "--model", help="The model under test (default: the threat model's model:).")
@click.option("-d", "--data", help="The data to assess on (default: the threat model's data:).")
@click.option("--samples", type=click.IntRange(min=1), help="Samples attacked (default: the threat model's "
              "assessment.samples).")
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False), help="Write the plan here (default: stdout).")
def plan(threat_model: str, model: str | None, data: str | None, samples: int | None, out_file: str | None) -> None:
    """Write the plan that tests a threat model (checks, attacks, budgets), explaining each choice."""
    from aisec.threats.model import ThreatModel
    from aisec.threats.planner import plan_for, plan_yaml

    tm = ThreatModel.from_yaml(threat_model)
    text = plan_yaml(plan_for(tm, model=model, data=data, samples=samples))
    if out_file:
        Path(out_file).write_text(text, encoding="utf-8")
        click.echo(f"wrote the plan for '{tm.name}' to {out_file} (aisec assess --plan {out_file} runs it)")
    else:
        click.echo(text, nl=False)
