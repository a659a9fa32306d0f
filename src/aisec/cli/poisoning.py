"""``aisec detect-backdoor``: look for a backdoor in a given model with (part of) its training data.

Wire it with ``main.add_command(detect_backdoor)`` in :mod:`aisec.cli.main`.
"""

from __future__ import annotations

import json

import click


@click.command("detect-backdoor")
@click.option("-m", "--model", required=True, help="Model file or built-in name (e.g. digits-cnn).")
@click.option("--arch", help="Architecture for weights files: package.module:Class or digits-cnn.")
@click.option("-d", "--data", "data_name", default="digits", show_default=True, help="Dataset (built-in name or path).")
@click.option("--split", default="train", show_default=True, help="Split of the dataset (its training data).")
@click.option("--method", type=click.Choice(["neural-cleanse", "activation-clustering", "spectral-signatures"]),
              default="neural-cleanse", show_default=True)
@click.option("-c", "--count", type=int, help="Use at most this many samples.")
@click.option("--threshold", type=float, help="Anomaly-index threshold (default per method).")
@click.option("--steps", type=int, default=300, show_default=True, help="Neural Cleanse optimisation steps.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def detect_backdoor(model: str, arch: str | None, data_name: str, split: str, method: str, count: int | None,
                    threshold: float | None, steps: int, seed: int, as_json: bool) -> None:
    """Report suspected backdoor target classes and the samples flagged as poisoned."""
    from aisec.api import load_model
    from aisec.data.loading import load_dataset
    from aisec.detect import detect_backdoor as run
    from aisec.plan import ModelRef

    data = load_dataset(data_name, split=split)
    target = load_model(ModelRef(path=model, arch=arch), data)
    det = run(target, data, method=method, samples=count, threshold=threshold, steps=steps, seed=seed)
    d = det.to_dict()
    if as_json:
        click.echo(json.dumps(d))
        return
    verdict = f"suspected classes: {d['suspected']}" if d["alarm"] else "no backdoor suspected"
    click.echo(f"{method}: {verdict} (threshold {d['threshold']:g})")
    for k, (score, ai) in enumerate(zip(d["class_scores"], d["anomaly_index"], strict=True)):
        click.echo(f"  class {k}: score {score:.4g}  anomaly index {ai:+.2f}")
    if d["flagged_count"]:
        click.echo(f"flagged samples: {d['flagged_count']} (first: {d['flagged'][:20]})")
