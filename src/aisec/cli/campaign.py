"""``aisec campaign run|report``: many models × defences × datasets × checks, resumable, ranked.

``run`` expands the campaign file into jobs, prints the estimated cost of the jobs the store does not hold
yet, asks for confirmation above the campaign's threshold (``--yes`` answers it), then runs them on this
machine's cores (``--workers``) or a Ray cluster (``--ray auto|ADDRESS|local``). Run it again after a
kill: finished jobs are skipped, a killed job resumes from its checkpoints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from aisec.cli.store_options import AisecGroup, key_dir_option


@click.group(cls=AisecGroup)
def campaign() -> None:
    """Run a campaign file and rank its models (leaderboard)."""


@campaign.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local worker processes (default: one per core; 1 runs the jobs in this process).")
@click.option("--ray", "ray_address", default=None,
              help="Run on Ray: 'auto' (this machine's cluster), ADDRESS (host:port, ray://host:port) or 'local'.")
@click.option("--gpus-per-job", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="With --ray: GPUs each job asks for (1: one job per GPU).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch threads per job (default: the cores shared among the workers). The same count on every "
                   "backend gives bit-identical results.")
@click.option("--store", "store_url", default=None,
              help="Evidence store URL (default: the campaign's 'store', else evidence.db in its folder).")
@key_dir_option
@click.option("--yes", is_flag=True, help="Run without asking, whatever the estimate.")
@click.option("--estimate", "estimate_only", is_flag=True, help="Print the estimate and stop.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run_command(file: str, workers: int | None, ray_address: str | None, gpus_per_job: float, threads: int | None,
                store_url: str | None, key_dir: str | None, yes: bool, estimate_only: bool, quiet: bool) -> None:
    """Run the jobs of campaign FILE that the store does not hold yet."""
    from aisec.campaigns.backends import make_backend
    from aisec.campaigns.campaign import execute, prepare
    from aisec.campaigns.spec import Campaign
    from aisec.cli.progress import RichProgress

    path = Path(file)
    spec = Campaign.from_yaml(path)
    prepared = prepare(spec, base_dir=path.parent, store=store_url, key_dir=key_dir)
    click.echo(f"campaign {spec.name}: {prepared.estimate_text()}", err=True)
    if estimate_only:
        return
    if prepared.needs_confirmation() and not yes:
        if not sys.stdin.isatty():
            click.echo(f"error: the estimate is above confirm_above_seconds "
                       f"({spec.budget.confirm_above_seconds:g} s); pass --yes to run it", err=True)
            sys.exit(2)
        click.confirm("Run it?", abort=True, err=True)
    backend = make_backend(workers, ray_address, gpus_per_job=gpus_per_job)
    with RichProgress(enabled=not quiet) as bar:
        total = len(prepared.pending)
        if total:
            bar("jobs", 0, total)

        def on_job(outcome: dict[str, Any], done: int, total: int) -> None:
            bar("jobs", done, total)
            if outcome["status"] != "complete":
                click.echo(f"job {outcome['job_id']}: {outcome['status']}: {outcome.get('error')}", err=True)

        result = execute(prepared, backend, threads=threads, key_dir=key_dir, on_job=on_job)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts.items())) or "nothing to run"
    click.echo(f"campaign {spec.name}: {counts} in {result.seconds:.1f} s on {result.backend}; "
               f"store {prepared.store_url}; folder {prepared.out}")
    for path in result.contest:
        click.echo(f"contest submissions ranked on the hidden split: {path}")
    if result.counts.get("failed"):
        sys.exit(1)


@campaign.command("report")
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", "-o", type=click.Path(file_okay=False), default=None,
              help="Folder for leaderboard.{html,json,csv,xml,sarif} (default: the campaign folder).")
@click.option("--store", "store_url", default=None, help="Evidence store URL (default: the one the campaign used).")
@key_dir_option
@click.option("--min-robust-accuracy", type=click.FloatRange(0, 1), default=None,
              help="JUnit/SARIF: an entry whose best-known robust accuracy is below this fails.")
def report_command(source: str, out: str | None, store_url: str | None, key_dir: str | None,
                   min_robust_accuracy: float | None) -> None:
    """Write the leaderboard of a campaign (its FILE or its folder)."""
    from aisec.campaigns.leaderboard import build_leaderboard, write_leaderboard

    board = build_leaderboard(source, store=store_url, key_dir=key_dir)
    written = write_leaderboard(board, out, min_robust_accuracy=min_robust_accuracy)
    for table in board.tables:
        click.echo(f"{table.dataset} {table.threat}: {len(table.rows)} entries"
                   + (f", first {table.rows[0].model}{'+' + table.rows[0].defence if table.rows[0].defence else ''}"
                      if table.rows else ""))
    click.echo("wrote " + ", ".join(str(p) for p in written))
