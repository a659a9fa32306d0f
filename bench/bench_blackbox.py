"""Black-box attack speed: queries/s of aisec's Square (Linf, L2) and HopSkipJump vs ART's on the same
model, and the per-query overhead of the HTTP (v2, loopback) target vs calling the model in-process.

    python bench/bench_blackbox.py [--n 64] [--threads 1] [--repeats 3]

Both sides query the same digits CNN through the same numpy ``predict`` (ART:
BlackBoxClassifierNeuralNetwork; aisec: ProbaTarget), with the same samples, eps and budget.
Queries are counted at the model (rows evaluated), the same way for both; the time spent inside
the model is measured there too, so the table also shows each attack's own overhead per query.

Reading the numbers: queries/s cannot exceed the model's own throughput, printed first (``model
ceiling``), so on a small CPU model queries/s mostly measures how the attack batches its calls. ART
re-queries the whole batch every iteration (Square) and runs HopSkipJump one sample at a time; aisec
queries each live sample once and stops at success, so it needs far fewer queries for the same
success, which shows in ``time`` (wall seconds) and ``ART/aisec time``. The CPU is shared with other
jobs: compare ratios from the same run (``--repeats`` prints their medians, and the queries/s ratio per
CPU-second of this process, which contention disturbs less than wall time), not absolute figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

# (label, aisec attack, aisec params, ART attack, ART kwargs)
CASES: list[tuple[str, str, dict[str, Any], str, dict[str, Any]]] = [
    ("square linf", "square", {"eps": 0.1, "max_queries": 300},
     "square", {"norm": np.inf, "eps": 0.1, "max_iter": 300, "p_init": 0.8, "nb_restarts": 1}),
    ("square l2", "square", {"norm": "l2", "eps": 1.0, "max_queries": 300},
     "square", {"norm": 2, "eps": 1.0, "max_iter": 300, "p_init": 0.8, "nb_restarts": 1}),
    ("hopskipjump", "hopskipjump", {"norm": "l2", "max_queries": 1000, "max_iter": 10},
     "hopskipjump", {"norm": 2, "max_iter": 10, "max_eval": 1000, "init_eval": 100}),
]


class _Model:
    """The digits CNN as a numpy ``predict``; counts rows and the seconds spent inside the model."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.rows = 0
        self.seconds = 0.0

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        self.rows += arr.shape[0]
        with torch.no_grad():
            out = torch.softmax(self.module(torch.as_tensor(arr, dtype=torch.float32).view(-1, 1, 8, 8)), 1).numpy()
        self.seconds += time.perf_counter() - t0
        return out

    def predict_proba(self, arr: np.ndarray) -> np.ndarray:
        return self(arr)

    def reset(self) -> None:
        self.rows, self.seconds = 0, 0.0


def _timed(model: _Model, fn: Callable[[], float]) -> dict[str, float]:
    model.reset()
    c0, t0 = time.process_time(), time.perf_counter()
    succ = fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    q = model.rows
    return {"qps": q / wall, "succ": succ, "q": q, "wall": wall, "cpu": cpu,
            "over_us": (wall - model.seconds) / q * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="run every case this many times; print median ratios")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from art.attacks.evasion import HopSkipJump, SquareAttack
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    from aisec.attacks.base import run_attack
    from aisec.core.registry import get_attack
    from aisec.data.builtin import digits
    from aisec.models.train import digits_cnn, split
    from aisec.targets.sklearn import ProbaTarget

    module = digits_cnn(seed=0)
    _, test = split(digits(), seed=0)
    x, y = test.x[: a.n].float(), test.y[: a.n]
    model = _Model(module)
    clf = BlackBoxClassifierNeuralNetwork(model, input_shape=(1, 8, 8), nb_classes=10, clip_values=(0.0, 1.0))
    y_onehot = np.eye(10)[y.numpy()]

    def ours(name: str, params: dict[str, Any], xs: torch.Tensor, ys: torch.Tensor) -> float:
        t = ProbaTarget(model, input_shape=(1, 8, 8), num_classes=10, modality="image")
        return float(run_attack(name, t, xs, ys, params, batch_size=1024).success.float().mean())

    def art(name: str, kw: dict[str, Any], xs: np.ndarray, ys: np.ndarray) -> float:
        cls = SquareAttack if name == "square" else HopSkipJump
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            xa = cls(clf, verbose=False, **kw).generate(xs, y=ys)
        pred_clean = model(xs).argmax(1)
        label = ys.argmax(1)
        return float(((model(xa).argmax(1) != label) & (pred_clean == label)).mean())

    # Warm-up (imports, attack registry, first-call checks) so neither side pays it in the timings.
    for _, name, params, art_name, kw in CASES:
        ours(name, params | {"max_queries": 20}, x[:2], y[:2])
        art(art_name, kw | {"max_iter": 2}, x[:2].numpy(), y_onehot[:2])

    print("model ceiling (rows/s of the numpy predict alone):", end="")
    for b in (16, 64, 128, 512, 4096):
        xb = np.random.default_rng(0).random((b, 64), dtype=np.float32)
        model.reset()
        reps = max(3, 4096 // b)
        for _ in range(reps):
            model(xb)
        print(f"  batch {b}: {model.rows / model.seconds:,.0f}", end="")
    print()

    head = (f"{'attack':<13}{'aisec q/s':>10}{'ART q/s':>9}{'q/s x':>7}{'succ aisec':>11}{'ART':>6}"
            f"{'q/sample aisec':>15}{'ART':>6}{'time aisec':>11}{'ART':>7}{'ART/aisec time':>15}"
            f"{'us/q over aisec':>16}{'ART':>6}")
    ratios: dict[str, list[tuple[float, float, float]]] = {c[0]: [] for c in CASES}
    for r in range(a.repeats):
        print(f"\nrun {r + 1}/{a.repeats}\n{head}")
        for label, name, params, art_name, kw in CASES:
            get_attack(name)
            o = _timed(model, lambda name=name, params=params: ours(name, params, x, y))
            t = _timed(model, lambda art_name=art_name, kw=kw: art(art_name, kw, x.numpy(), y_onehot))
            per_cpu = (o["q"] / o["cpu"]) / (t["q"] / t["cpu"])
            ratios[label].append((o["qps"] / t["qps"], t["wall"] / o["wall"], per_cpu))
            print(f"{label:<13}{o['qps']:>10,.0f}{t['qps']:>9,.0f}{o['qps'] / t['qps']:>6.2f}x"
                  f"{o['succ']:>11.2f}{t['succ']:>6.2f}{o['q'] / a.n:>15.0f}{t['q'] / a.n:>6.0f}"
                  f"{o['wall']:>10.2f}s{t['wall']:>6.2f}s{t['wall'] / o['wall']:>14.2f}x"
                  f"{o['over_us']:>16.1f}{t['over_us']:>6.1f}")
    if a.repeats > 1:
        print("\nmedians over runs:")
        for label, rs in ratios.items():
            print(f"  {label:<13} queries/s aisec/ART {statistics.median(r[0] for r in rs):.2f}x "
                  f"(per CPU-second {statistics.median(r[2] for r in rs):.2f}x)   "
                  f"wall time ART/aisec {statistics.median(r[1] for r in rs):.2f}x")

    # HTTP overhead per query (loopback v2 server) vs in-process.
    from aisec.targets.http import HttpTarget
    from aisec.targets.torch import TorchTarget
    from aisec.testing.v2_server import V2Server

    print()
    tt = TorchTarget(module, input_shape=(1, 8, 8), num_classes=10, device="cpu")
    for batch in (1, 64):
        xb = x[:batch]
        reps = 200 if batch == 1 else 50
        t0 = time.perf_counter()
        for _ in range(reps):
            tt.predict(xb)
        local = (time.perf_counter() - t0) / reps
        with V2Server(tt.predict, model="digits", input_shape=(1, 8, 8)) as srv, HttpTarget(
            srv.url, protocol="v2", model="digits", input_shape=(1, 8, 8), num_classes=10
        ) as ht:
            ht.predict(xb)
            t0 = time.perf_counter()
            for _ in range(reps):
                ht.predict(xb)
            remote = (time.perf_counter() - t0) / reps
        print(f"http v2 batch={batch:<3} in-process {local * 1e3:.3f} ms/request, http {remote * 1e3:.3f} ms/request, "
              f"overhead {(remote - local) * 1e3 / batch:.3f} ms/query")


if __name__ == "__main__":
    main()
