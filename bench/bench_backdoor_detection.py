"""Backdoor detection: false-alarm rate on clean models and detection rate on backdoored ones (digits).

Run::

    python bench/bench_backdoor_detection.py              # 5 clean + 5 backdoored seeds, a few minutes on 2 cores
    python bench/bench_backdoor_detection.py --seeds 10   # more seeds, tighter rates

Setup: DigitsCNN, the recipe of the poisoning check (Adam 3e-3, 8 epochs, batch 64) on the digits train
split (1,258 images). Backdoored models: 5% of the training set (all classes but the target) gets a 3x3
checkerboard in the bottom-right corner and label 1 (BadNets); each seed draws other poisons and another
initialisation. Clean models: the same recipe and seeds without poisons. All 2 x seeds models are trained
in one vmapped loop (:meth:`TrainingRecipe.train_many`).

Per detector (default settings of :func:`aisec.detect.detect_backdoor`, anomaly-index threshold 3):

- Neural Cleanse on 500 clean test images (a defender's clean data), 300 steps;
- activation clustering and spectral signatures on the model's own (poisoned) training set.

Reported: false-alarm rate (clean models with any suspected class), detection rate (backdoored models
whose suspected classes include the target 1), wrong-class alarms on backdoored models, the mean anomaly
index of the target class, and for the data detectors precision/recall of the flagged samples. The
figures are rates, not timings, so CPU contention does not bias them; seconds are given for orientation
only. Wilson 95% intervals are shown because 5 seeds are few.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from aisec.attacks.poisoning import PatchTrigger, poison_dataset
from aisec.core.dataset import TensorDataset
from aisec.core.stats import wilson
from aisec.core.types import Modality
from aisec.data.builtin import digits
from aisec.detect import detect_backdoor
from aisec.models.recipe import TrainingRecipe
from aisec.targets.torch import TorchTarget

TARGET = 1
METHODS = ("neural-cleanse", "activation-clustering", "spectral-signatures")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tr, te = digits("train"), digits("test")
    n = len(tr)
    recipe = TrainingRecipe(architecture="digits-cnn", epochs=8, lr=3e-3)
    # one training set holding every seed's poisons; model k keeps its own rows
    xs, ys, poisons = [tr.x], [tr.y], []
    for s in range(args.seeds):
        ps = poison_dataset(tr.x, tr.y, PatchTrigger(size=3), rate=args.rate, target_class=TARGET, seed=s)
        poisons.append(ps)
        xs.append(ps.x[ps.index])
        ys.append(ps.y[ps.index])
    x_all, y_all = torch.cat(xs), torch.cat(ys)
    kk = 2 * args.seeds
    keep = torch.zeros(kk, x_all.shape[0], dtype=torch.bool)
    keep[:, :n] = True
    off = n
    for s, ps in enumerate(poisons):  # models seeds..2*seeds-1 are the backdoored ones
        k = args.seeds + s
        keep[k, ps.index] = False
        keep[k, off : off + ps.index.numel()] = True
        off += ps.index.numel()
    t0 = time.perf_counter()
    stack = recipe.train_many(x_all, y_all, keep, num_classes=10, seed=0)
    print(f"trained {kk} models in {time.perf_counter() - t0:.1f} s (vmapped)")
    rows: dict[str, dict[str, list]] = {m: {"clean": [], "bd": [], "wrong": [], "ai": [], "prec": [], "rec": []}
                                        for m in METHODS}
    secs = dict.fromkeys(METHODS, 0.0)
    for k in range(kk):
        backdoored = k >= args.seeds
        model = stack.module(k)
        target = TorchTarget(model, input_shape=(1, 8, 8), num_classes=10, device="cpu")
        if backdoored:
            ps = poisons[k - args.seeds]
            own = TensorDataset(ps.x, ps.y, name="train-poisoned", modality=Modality.IMAGE, classes=tr.info.classes)
            is_poison = ps.is_poison.numpy()
        else:
            own, is_poison = tr, np.zeros(n, dtype=bool)
        for method in METHODS:
            t1 = time.perf_counter()
            if method == "neural-cleanse":
                det = detect_backdoor(target, te, method=method, samples=500, steps=args.steps, seed=k)
            else:
                det = detect_backdoor(target, own, method=method, expected_rate=args.rate, seed=k)
            secs[method] += time.perf_counter() - t1
            r = rows[method]
            if backdoored:
                r["bd"].append(TARGET in det.suspected)
                r["wrong"].append(any(c != TARGET for c in det.suspected))
                r["ai"].append(float(det.anomaly_index[TARGET]))
                if method != "neural-cleanse":
                    hit = int(is_poison[det.flagged].sum()) if det.flagged.size else 0
                    r["prec"].append(hit / det.flagged.size if det.flagged.size else float("nan"))
                    r["rec"].append(hit / max(1, int(is_poison.sum())))
            else:
                r["clean"].append(det.alarm)
            print(f"model {k} ({'backdoored' if backdoored else 'clean'}) {method}: suspected {det.suspected}, "
                  f"max AI {det.anomaly_index.max():.2f}, target AI {det.anomaly_index[TARGET]:.2f}, "
                  f"flagged {det.flagged.size}", flush=True)

    def rate(v: list[bool]) -> str:
        ci = wilson(int(sum(v)), len(v))
        return f"{sum(v)}/{len(v)} ({ci.low:.2f}-{ci.high:.2f})"

    print(f"\nDigitsCNN, BadNets {100 * args.rate:g}% -> class {TARGET}, {args.seeds} clean + {args.seeds} "
          f"backdoored seeds, threshold 3")
    print(f"{'method':24s} {'false alarms (clean)':22s} {'detected (target)':22s} {'wrong-class alarms':22s} "
          f"{'target AI mean':>14s} {'flag prec':>9s} {'flag rec':>9s} {'s/model':>8s}")
    for m in METHODS:
        r = rows[m]
        prec = f"{np.nanmean(r['prec']):.2f}" if r["prec"] and not np.all(np.isnan(r["prec"])) else "-"
        rec = f"{np.mean(r['rec']):.2f}" if r["rec"] else "-"
        print(f"{m:24s} {rate(r['clean']):22s} {rate(r['bd']):22s} {rate(r['wrong']):22s} "
              f"{np.mean(r['ai']):14.2f} {prec:>9s} {rec:>9s} {secs[m] / kk:8.2f}")


if __name__ == "__main__":
    main()
