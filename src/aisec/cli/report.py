"""``aisec report RUN_DIR``: re-render a run's report from its folder, nothing re-run (:mod:`aisec.report.rerender`)."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False),
              help="Judge the stored evidence against this YAML policy (default: keep the verdict the run wrote).")
@click.option("-o", "--out", type=click.Path(file_okay=False),
              help="Folder for the new report.html / report.md (default: RUN_DIR/rerendered).")
@click.option("--force", is_flag=True, help="Allow --out RUN_DIR, replacing the run's own reports.")
def report(run_dir: str, policy_file: str | None, out: str | None, force: bool) -> None:
    """Re-render report.html and report.md from RUN_DIR/result.json (after an upgrade, or with another policy)."""
    from aisec.policy.rules import load_policy
    from aisec.report.rerender import rerender

    policy = load_policy(policy_file) if policy_file else None
    folder = rerender(run_dir, out, policy=policy, force=force)
    click.echo(f"report: {folder / 'report.html'}   markdown: {folder / 'report.md'}")
