"""Certification speed: randomized smoothing samples/s, aisec batched vs the reference's per-sample loop;
IBP/CROWN time per sample (the section ``bench/_bench_bounds.py`` fills when it is present).

Smoothing (Cohen et al. 2019, github locuslab/smoothing ``core.py``): the reference certifies one input at a
time — ``_sample_noise`` repeats it ``batch_size`` times, adds noise, classifies, and counts the labels in a
Python loop (``_count_arr``). aisec (:func:`aisec.certify.smoothing.sample_counts`) mixes several inputs' draws
in one forward pass of ``batch_size`` noisy samples and counts with one ``bincount`` on the device. Both run
CERTIFY (N0 selection + N estimation draws, α) on the same model and inputs; samples/s counts noisy forwards
(inputs × (N0 + N)) per second. A third row, the per-sample loop with ``bincount`` counting, separates the
two gains (batching across inputs vs the Python count). The certified accuracies agree within the Monte-Carlo
noise (different draws).

Model: the 8x8 digits CNN (:func:`aisec.models.train.digits_cnn`), the first ``--inputs`` test images.

    python bench/bench_certify.py                           # CPU, 50 inputs, N0=100, N=1000, σ=0.25
    python bench/bench_certify.py --device cuda --inputs 500 --n 10000 --batch-size 20000
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import beta, norm
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))


def _count_arr(arr: np.ndarray, length: int) -> np.ndarray:
    """The reference's label count: a Python loop over the predictions."""
    counts = np.zeros(length, dtype=int)
    for idx in arr:
        counts[idx] += 1
    return counts


def reference_certify(base: nn.Module, x: torch.Tensor, num_classes: int, sigma: float, n0: int, n: int,
                      alpha: float, batch_size: int, *, python_count: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Cohen et al.'s ``Smooth.certify`` on each input in turn (its structure: one input, noise batches of
    ``batch_size``, counted on the CPU). Returns (prediction or -1, radius or NaN) per input."""
    dev = next(base.parameters()).device

    def sample_noise(xi: torch.Tensor, num: int) -> np.ndarray:
        with torch.no_grad():
            counts = np.zeros(num_classes, dtype=int)
            for _ in range(int(np.ceil(num / batch_size))):
                this = min(batch_size, num)
                num -= this
                batch = xi.repeat((this, 1, 1, 1))
                noise = torch.randn_like(batch, device=dev) * sigma
                pred = base(batch + noise).argmax(1).cpu().numpy()
                counts += _count_arr(pred, num_classes) if python_count else np.bincount(pred, minlength=num_classes)
            return counts

    preds, radii = [], []
    for xi in x.to(dev):
        c_a = int(sample_noise(xi, n0).argmax())
        n_a = int(sample_noise(xi, n)[c_a])
        p_a = beta.ppf(alpha, n_a, n - n_a + 1) if n_a > 0 else 0.0
        preds.append(c_a if p_a >= 0.5 else -1)
        radii.append(sigma * norm.ppf(p_a) if p_a >= 0.5 else np.nan)
    return np.array(preds), np.array(radii)


def _timed(fn: Callable[[], tuple[np.ndarray, np.ndarray]], dev: torch.device) -> tuple[float, np.ndarray, np.ndarray]:
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    pred, rad = fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, pred, rad


def smoothing_speed(net: nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> None:
    """Samples/s of CERTIFY: aisec batched vs the reference loop (and the loop with bincount counting)."""
    from aisec.certify.smoothing import certify
    from aisec.targets.torch import TorchTarget

    dev = torch.device(args.device)
    net = net.to(dev).eval()
    target = TorchTarget(net, input_shape=(1, 8, 8), num_classes=10, name="digits-cnn", device=str(dev))
    draws = len(x) * (args.n0 + args.n)
    yy = y.numpy()

    def ours() -> tuple[np.ndarray, np.ndarray]:
        r = certify(target, x, sigma=args.sigma, n0=args.n0, n=args.n, alpha=args.alpha, batch_size=args.batch_size)
        return r.prediction, r.radius

    ours()  # warm-up (CUDA context, cuDNN autotune)
    rows = [("aisec batched", *_timed(ours, dev))]
    ref_bs = min(args.batch_size, args.n)  # the reference's batch holds one input's draws
    rows.append(("reference loop (python count)", *_timed(lambda: reference_certify(
        net, x, 10, args.sigma, args.n0, args.n, args.alpha, ref_bs), dev)))
    rows.append(("per-sample loop (bincount)", *_timed(lambda: reference_certify(
        net, x, 10, args.sigma, args.n0, args.n, args.alpha, ref_bs, python_count=False), dev)))
    print(f"\n== randomized smoothing CERTIFY: digits CNN, {len(x)} inputs, σ={args.sigma}, N0={args.n0}, N={args.n}, "
          f"α={args.alpha}, batch {args.batch_size}, {dev} ==")
    print(f"{'method':32s} {'seconds':>9s} {'samples/s':>12s} {'speed-up':>9s} {'cert. acc@0.25':>14s} {'abstain':>8s}")
    base_s = rows[1][1]
    for name, secs, pred, rad in rows:
        acc = float(((pred == yy) & (np.nan_to_num(rad, nan=-1) >= 0.25)).mean())
        abstain = float((pred == -1).mean())
        print(f"{name:32s} {secs:9.2f} {draws / secs:12.0f} {base_s / secs:8.1f}x {acc:14.3f} {abstain:8.3f}")


def bounds_time_per_sample(net: nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> None:
    """IBP / CROWN time per sample (and vs auto_LiRPA where it runs): ``bench/_bench_bounds.py`` defines
    ``bench_bounds(n, eps, threads)`` on its own models (an MLP and the digits CNN, 16 digits, Linf 0.01);
    this section prints its rows when the file exists."""
    try:
        mod = importlib.import_module("_bench_bounds")
    except ModuleNotFoundError:
        print("\n== IBP / CROWN time per sample: bench/_bench_bounds.py is not present in this build ==")
        return
    result = mod.bench_bounds(16, 0.01, torch.get_num_threads())
    print(f"\n== IBP / CROWN, {result['n']} digits at Linf {result['eps']}, {result['threads']} thread(s) ==")
    for model in ("mlp", "cnn"):
        for method, row in result[model].items():
            print(f"{model:4s} {method:12s} {1000 * row['seconds_per_sample']:9.2f} ms/sample  "
                  f"mean bound {row['mean_min_margin_bound']:+.4f}  proved {row['proved']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=50)
    ap.add_argument("--sigma", type=float, default=0.25)
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip", default="", help="sections to skip: smoothing,bounds")
    args = ap.parse_args()
    from aisec.data.builtin import digits
    from aisec.models.train import digits_cnn, split

    torch.manual_seed(0)
    _, test = split(digits(), seed=0)
    x, y = test.x[: args.inputs], test.y[: args.inputs]
    net = digits_cnn(seed=0)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if "smoothing" not in skip:
        smoothing_speed(net, x, y, args)
    if "bounds" not in skip:
        bounds_time_per_sample(net, x, y, args)


if __name__ == "__main__":
    main()
