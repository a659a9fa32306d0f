"""``aisec detect-backdoor``: look for a backdoor in a given model with (part of) its training data.

It runs the ``backdoor`` check (:mod:`aisec.checks.backdoor`), so with ``--out`` it writes the same
evidence, raw per-sample flags and report as ``aisec assess --checks backdoor``.
:mod:`aisec.cli.main` lists it in ``COMMANDS`` and imports this module only when the command runs.
"""

from __future__ import annotations

import json
from typing import Any

import click

from aisec.core.registry import names


@click.command("detect-backdoor")
@click.option("-m", "--model", required=True, help="Model file or built-in name (e.g. digits-cnn).")
@click.option("--arch", help="Architecture for weights files: package.module:Class or digits-cnn.")
@click.option("-d", "--data", "data_name", default="digits", show_default=True, help="Dataset (built-in name or path).")
@click.option("--split", help="Split of the dataset (default: train where the data has splits; a folder or file "
              "without splits is used whole).")
@click.option("--method", "methods", multiple=True,
              type=click.Choice(names("detector")),
              help="Detector; repeat for several (default: neural-cleanse).")
@click.option("-c", "--count", type=int, help="Use at most this many samples (default: all).")
@click.option("--threshold", type=float, help="Anomaly-index threshold (default 3).")
@click.option("--steps", type=int, default=300, show_default=True, help="Neural Cleanse optimisation steps.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--out", type=click.Path(file_okay=False),
              help="Write evidence.jsonl, samples/ and report.html here (nothing is written without it).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def detect_backdoor(model: str, arch: str | None, data_name: str, split: str | None, methods: tuple[str, ...],
                    count: int | None, threshold: float | None, steps: int, seed: int, out: str | None,
                    as_json: bool) -> None:
    """Report suspected backdoor target classes and the samples flagged as poisoned."""
    from aisec.api import assess, load_model
    from aisec.checks.backdoor import BackdoorSummary
    from aisec.core.plan import ModelRef
    from aisec.data.loading import has_splits, load_dataset

    chosen = list(methods) or ["neural-cleanse"]
    params: dict[str, Any] = {"methods": chosen, "samples": count, "steps": steps}
    if threshold is not None:
        params["thresholds"] = dict.fromkeys(chosen, threshold)
    if split is None and has_splits(data_name):
        split = "train"  # the model's training data, where the source tells it apart
    data = load_dataset(data_name, split=split)
    target = load_model(ModelRef(path=model, arch=arch), data)
    run = assess(target, data, checks={"backdoor": params}, seed=seed, out=out)
    s = run.results[0].summary
    assert isinstance(s, BackdoorSummary)
    if as_json:
        click.echo(json.dumps(run.summary() if out else s.to_json(), default=str))
        return
    for d in s.methods:
        verdict = f"suspected classes: {d.suspected}" if d.alarm else "no backdoor suspected"
        click.echo(f"{d.method}: {verdict} (threshold {d.threshold:g})")
        for k, (score, ai) in enumerate(zip(d.class_scores, d.anomaly_index, strict=True)):
            click.echo(f"  class {k}: score {score:.4g}  anomaly index {ai:+.2f}")
        if d.flagged_count:
            click.echo(f"  flagged samples: {d.flagged_count} (first: {d.flagged[:20]})")
    if out:
        click.echo(f"report: {run.out / 'report.html' if run.out else out}   evidence: {out}/evidence.jsonl")
