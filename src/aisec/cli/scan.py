"""``aisec scan``: every black-box attack over every sample, Counterfit-style summary.

It wraps :func:`aisec.campaigns.scan.run_scan`: loads the target (sklearn pickle with ``--trust-model-code``,
``.onnx``, ``http(s)://`` endpoint, torch file or built-in) and the data, optionally with tabular
constraints (``--constraints FILE`` or ``--constraints infer``), runs each attack with ``--budget``
queries per sample, prints the summary table and writes to ``--out``:

- ``scan.json``: the summary (rows and runs), rewritten after every run, ``"complete": false``
  until the scan ends normally;
- ``evidence.jsonl``: one ``robustness.attack_success_rate`` record per finished run, appended as
  each run ends, with its per-sample table in ``samples/`` (the same evidence path as ``aisec assess``:
  same provenance fields, ``result.json``, ``report.html`` and ``report.md`` with a scan section);
- ``constraints.yaml``: the constraints used (inferred ones included, for review).

``--store URL`` records each finished run's evidence in an evidence store as it ends and the whole run
at the end; ``--policy FILE`` judges the scan's evidence against a policy (``policy.json``/``policy.md``;
a failed policy exits with 3), as for ``aisec assess``.

A run that fails stops the scan (an endpoint that died will not come back for the next attack):
what finished is written (and stored), the error is printed and the exit code is 1. Usage, data and
model errors before the scan exit with 2, as for every aisec command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from aisec.core.errors import ConfigError


@click.command("scan")
@click.option("-m", "--model", required=True,
              help="Target: .pkl/.joblib (with --trust-model-code), .onnx, http(s):// URL, torch file or built-in.")
@click.option("-d", "--data", required=True, help="Dataset: .csv table, built-in name (breast-cancer ...) or folder.")
@click.option("--split", help="Dataset split (train/test) where the source has them.")
@click.option("--label-column", help="CSV tables: the label column's name or position (default: last).")
@click.option("--scale", type=click.Choice(["auto", "minmax", "standard", "none"]), default="auto", show_default=True,
              help="CSV tables: the feature scaling the model was trained on (auto: none for .pkl/.onnx/HTTP "
              "models, minmax for torch models).")
@click.option("-a", "--attacks", help="Comma-separated attacks (default: every black-box attack).")
@click.option("--budget", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Queries per sample for each attack (its max_queries).")
@click.option("--eps", default="0.1", show_default=True,
              help="Linf eps grid for fixed-eps attacks (square, simba), e.g. 0.05,0.1 or 8/255.")
@click.option("--grid", "grid_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML/JSON {attack: {param: value or [values]}}; overrides --budget/--eps per attack.")
@click.option("--max-runs", type=click.IntRange(min=1), help="At most this many parameter sets per attack.")
@click.option("--constraints", "constraints_src",
              help="Tabular constraints: a YAML/JSON file, or 'infer' to infer them from the data.")
@click.option("-c", "--count", type=click.IntRange(min=1), help="Attack the first N samples (default: all).")
@click.option("--batch-size", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Samples per attack batch (keep >= --count when the target has a query budget).")
@click.option("--query-budget", type=click.IntRange(min=1), help="Hard cap on samples sent to a black-box target.")
@click.option("--trust-model-code", is_flag=True, help="Allow unpickling code from the model file (UNSAFE).")
@click.option("--protocol", type=click.Choice(["v2", "json"]), help="HTTP target: Open Inference Protocol v2 or JSON.")
@click.option("--model-name", help="HTTP target: the model name on a v2 server.")
@click.option("--timeout", type=float, help="HTTP target: seconds per request.")
@click.option("--output-kind", type=click.Choice(["probabilities", "logits", "labels"]),
              help="HTTP/ONNX target: what it returns; 'labels' = label-only (decision-based attacks only).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--out", type=click.Path(file_okay=False), default="aisec-scan", show_default=True,
              help="Folder for scan.json, evidence.jsonl, samples/, report.html and constraints.yaml.")
@click.option("--overwrite", is_flag=True, help="Replace the scan already in -o (one run per folder).")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML policy of metric thresholds; a failed policy exits with code 3.")
@click.option("--store", "store_url", envvar="AISEC_STORE_URL", show_envvar=True,
              help="Evidence store URL (sqlite:///path.db or postgresql://...); records are stored as each run ends.")
@click.option("--json", "as_json", is_flag=True, help="Print scan.json's content instead of the table.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def scan_command(model: str, data: str, split: str | None, label_column: str | None, scale: str,
                 attacks: str | None,
                 budget: int, eps: str, grid_file: str | None, max_runs: int | None, constraints_src: str | None,
                 count: int | None, batch_size: int, query_budget: int | None, trust_model_code: bool,
                 protocol: str | None, model_name: str | None, timeout: float | None, output_kind: str | None,
                 seed: int, out: str, overwrite: bool, policy_file: str | None, store_url: str | None,
                 as_json: bool, quiet: bool) -> None:
    """Run black-box attacks over all samples and print runs, success %, best score and parameters,
    time and queries min/avg/max per attack."""
    from aisec.api import default_table_scale, load_model
    from aisec.campaigns.scan import run_scan
    from aisec.cli.params import float_list as _floats
    from aisec.cli.progress import RichProgress
    from aisec.core.dataset import take
    from aisec.core.plan import ModelRef
    from aisec.data.loading import is_numeric_table, load_dataset

    gate = None
    if policy_file or store_url:
        from aisec.policy.gate import Gate

        gate = Gate.open(policy=policy_file, store=store_url)  # fails fast on a bad policy or store
    opts: dict[str, Any] = {"split": split} if split else {}
    if label_column is not None:
        opts["label_column"] = int(label_column) if label_column.lstrip("-").isdigit() else label_column
    if is_numeric_table(data, opts):
        opts["scale"] = default_table_scale(model) if scale == "auto" else scale
    elif scale != "auto":
        raise ConfigError(f"--scale {scale} applies to numeric CSV tables, and '{data}' is not one")
    dataset = load_dataset(data, **opts)
    endpoint = {k: v for k, v in (("protocol", protocol), ("model", model_name), ("timeout", timeout),
                                  ("output", output_kind)) if v is not None}
    target = load_model(ModelRef(path=model, trust_model_code=trust_model_code, query_budget=query_budget,
                                 endpoint=endpoint), dataset)
    constraints = _constraints(constraints_src, dataset)
    x, y = take(dataset, count)
    if constraints is not None:
        constraints.check_data(x, what=f"data '{dataset.info.name}'")  # before anything is written
    grid = _grid(attacks, budget, _floats(eps, "--eps") or [0.1], grid_file, target.spec.capabilities)

    out_dir = Path(out)
    with RichProgress(enabled=not quiet and not as_json) as progress:
        scanned = run_scan(target, dataset, x, y, grid, out=out_dir, max_runs=max_runs, seed=seed, overwrite=overwrite,
                           batch_size=batch_size, progress=progress, constraints=constraints,
                           on_evidence=gate.recorder(None, out_dir) if gate else None,
                           policy=gate.policy if gate else None, stop_on_error=True)
    outcome = gate.finish(scanned.run) if gate else None  # stores the run (a stopped one as failed)
    summary = scanned.summary
    if as_json:
        click.echo(json.dumps(scanned.document, default=str))
    else:
        _print_table(summary, target.spec.name, int(x.shape[0]), constraints)
        click.echo(f"results: {out_dir / 'scan.json'}   evidence: {out_dir / 'evidence.jsonl'}   "
                   f"report: {out_dir / 'report.html'}")
        if outcome is not None and outcome.policy is not None:
            click.echo(outcome.policy.text())
    if not summary.complete:
        click.echo(f"error: scan stopped at run {len(summary.runs)} of {summary.planned}: {summary.stopped}. "
                   f"Partial results are in {out_dir}.", err=True)
        sys.exit(1)
    if outcome is not None and outcome.exit_code:
        sys.exit(outcome.exit_code)


def _constraints(src: str | None, dataset: Any) -> Any:
    from aisec.core.constraints import TabularConstraints
    from aisec.core.dataset import take
    from aisec.data.table import CsvTable

    if src is None:
        return None
    if src.strip().lower() == "infer":
        if isinstance(dataset, CsvTable):
            return TabularConstraints.from_table(dataset)
        x, _ = take(dataset)
        return TabularConstraints.infer(x.reshape(x.shape[0], -1).numpy(),
                                        source=f"inferred from {dataset.info.name} model inputs (data ranges)")
    c = TabularConstraints.load(src)
    if isinstance(dataset, CsvTable) and c.offset is None and c.scale is None and dataset.scale != "none":
        # A CSV table is scaled on loading (--scale); the file speaks in the table's own units.
        c = c.with_scaling(*dataset.scaling)
    return c


def _grid(attacks: str | None, budget: int, eps: list[float], grid_file: str | None,
          caps: frozenset[Any] | None = None) -> dict[str, dict[str, Any]]:
    """The attack grid. By default every black-box attack the target can serve: those needing at most
    probabilities, or — for a label-only target (``caps`` without probabilities) — the decision-based ones
    (not the noise baselines nor ``transfer``, which run when named)."""
    from aisec.core.registry import ATTACKS, AttackKind, get_attack, load_plugins
    from aisec.core.types import Capability

    if attacks:
        names = [a.strip() for a in attacks.split(",") if a.strip()]
    else:
        load_plugins()
        black = {Capability.PROBABILITIES} if caps is None else {Capability.PROBABILITIES} & caps
        # the random-noise baselines and surrogate (transfer) attacks run only when named
        names = sorted(n for n, a in ATTACKS.items() if a.requires <= black and not a.baseline and not a.surrogate)
    extra: dict[str, Any] = {}
    if grid_file:
        extra = _read_mapping(grid_file)
        unknown = sorted(set(extra) - set(names))
        if unknown:
            raise ConfigError(f"--grid names attacks not in the scan: {', '.join(unknown)} (scan: {', '.join(names)})")
    grid: dict[str, dict[str, Any]] = {}
    for name in names:
        info = get_attack(name)
        fields = info.cls.Params.model_fields
        g: dict[str, Any] = {}
        if "max_queries" in fields:
            g["max_queries"] = budget
        if info.kind is AttackKind.FIXED_EPS:
            g["eps"] = eps
        g.update(extra.get(name) or {})
        grid[name] = g
    return grid


def _read_mapping(path: str) -> dict[str, Any]:
    from aisec.core.constraints import read_yaml_or_json

    p = Path(path)
    raw = read_yaml_or_json(p, what="--grid file")
    if not isinstance(raw, dict) or not all(isinstance(v, dict | None) for v in raw.values()):
        raise ConfigError(f"--grid file '{p}' must map attack names to {{param: value or [values]}}")
    return raw


def _print_table(summary: Any, target: str, n: int, constraints: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    title = f"scan of {target} on {n} samples" + (f", constraints: {constraints.source}" if constraints else "")
    t = Table(title=title)
    for col in ("attack", "runs", "success %", "best %", "median dist", "time s min/avg/max",
                "queries min/avg/max", "best parameters"):
        t.add_column(col, justify="left" if col in ("attack", "best parameters") else "right",
                     no_wrap=col != "best parameters")
    for r in summary.rows:
        med = f"{r.best_median_distance:.3g}" if r.best_median_distance is not None else "-"
        t.add_row(
            r.attack, str(r.runs), f"{100 * r.success_pct:.1f}", f"{100 * r.best_score:.1f}", med,
            f"{r.seconds_min:.2f}/{r.seconds_avg:.2f}/{r.seconds_max:.2f}",
            f"{r.queries_min}/{r.queries_avg:.0f}/{r.queries_max}",
            ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.best_params.items()) or "-",
        )
        for e in r.errors:
            t.add_row(r.attack, "", "", "", "", "", "", f"[red]failed: {e}[/red]")
    Console(width=max(Console().width, 140)).print(t)
