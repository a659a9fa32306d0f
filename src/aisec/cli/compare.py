"""``aisec compare RUN_A RUN_B``: every shared measurement, its difference and whether it is significant."""

from __future__ import annotations

import json
from pathlib import Path

import click

from aisec.cli.store_options import AisecCommand, key_dir_option


@click.command(cls=AisecCommand)
@click.argument("run_a")
@click.argument("run_b")
@click.option("--store", "store_url", envvar="AISEC_STORE_URL", default=None,
              help="Store to read run ids from (a run folder needs none).")
@key_dir_option
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="Significance level.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the comparison here.")
@click.option("--significant-only", is_flag=True, help="List only the significant differences.")
def compare(run_a: str, run_b: str, store_url: str | None, key_dir: str | None, alpha: float,
            json_out: str | None, significant_only: bool) -> None:
    """Compare RUN_A and RUN_B (run folders, or run ids in --store): B - A per metric.

    Significance: McNemar's exact test on the per-sample verdicts where both runs scored the same samples,
    else whether the 95 % interval of the difference (MOVER, from each record's interval) excludes 0.
    """
    from rich.console import Console
    from rich.table import Table

    from aisec.campaigns.compare import compare_runs, load_run

    store = None
    if store_url and not (Path(run_a).is_dir() and Path(run_b).is_dir()):
        from aisec.store import open_store

        store = open_store(store_url, key_dir=key_dir, create=False)
    try:
        c = compare_runs(load_run(run_a, store=store), load_run(run_b, store=store), alpha=alpha)
    finally:
        if store is not None:
            store.close()
    table = Table(title=f"A {c.a.run_id[:12]}  vs  B {c.b.run_id[:12]}"
                  + ("" if c.same_data else "  (different data: unpaired)"))
    for col in ("metric", "parameters", "A", "B", "B - A", "95% CI of B - A", "paired (McNemar)", "significant"):
        table.add_column(col)
    shown = 0
    for d in c.diffs:
        sig = d.significant(alpha)
        if significant_only and not sig:
            continue
        shown += 1
        params = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in d.parameters.items()
                           if not isinstance(v, (dict, list)) and v not in (None, False, ""))
        ci = f"{d.low:+.3f} .. {d.high:+.3f}" if d.low is not None and d.high is not None else ""
        paired = (f"{d.paired.a_only}/{d.paired.b_only} of {d.paired.shared}, p={d.paired.p_value:.3g}"
                  if d.paired is not None else "")
        mark = "n/a" if sig is None else (f"yes ({d.better()} better)" if sig else "no")
        table.add_row(d.metric, params[:60], f"{d.a:.4g}", f"{d.b:.4g}", f"{d.diff:+.4g}", ci, paired, mark)
    console = Console()
    console.print(table)
    n_sig = sum(1 for d in c.diffs if d.significant(alpha))
    click.echo(f"{len(c.diffs)} shared measurements, {n_sig} significant at alpha {alpha:g}; "
               f"{len(c.only_a)} only in A, {len(c.only_b)} only in B")
    if json_out:
        Path(json_out).write_text(json.dumps(c.to_json(), indent=2, default=str), encoding="utf-8")
        click.echo(f"wrote {json_out}")
