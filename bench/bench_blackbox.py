"""Black-box attack speed: queries/s of aisec's Square and HopSkipJump vs ART's on the same model,
and the per-query overhead of the HTTP (v2, loopback) target vs calling the model in-process.

    python bench/bench_blackbox.py [--n 64] [--threads 1]

Both sides query the same digits CNN through a numpy ``predict`` (ART: BlackBoxClassifierNeuralNetwork;
aisec: ProbaTarget), so the model cost is identical and the difference is the attack's own
overhead and batching. Queries are counted at the model.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from aisec.attacks.base import run_attack
    from aisec.data.builtin import digits
    from aisec.models.train import digits_cnn, split
    from aisec.targets.sklearn import ProbaTarget

    model = digits_cnn(seed=0)
    _, test = split(digits(), seed=0)
    x, y = test.x[: a.n].float(), test.y[: a.n]
    count = {"q": 0}

    def f(arr: np.ndarray) -> np.ndarray:
        count["q"] += arr.shape[0]
        with torch.no_grad():
            return torch.softmax(model(torch.as_tensor(arr, dtype=torch.float32).view(-1, 1, 8, 8)), 1).numpy()

    class Scores:
        def predict_proba(self, arr: np.ndarray) -> np.ndarray:
            return f(arr)

    def ours(name: str, params: dict) -> tuple[float, float, int]:
        t = ProbaTarget(Scores(), input_shape=(1, 8, 8), num_classes=10, modality="image")
        count["q"] = 0
        t0 = time.perf_counter()
        out = run_attack(name, t, x, y, params, batch_size=1024)
        dt = time.perf_counter() - t0
        return count["q"] / dt, float(out.success.float().mean()), count["q"]

    def art(name: str, kw: dict) -> tuple[float, float, int]:
        from art.attacks.evasion import HopSkipJump, SquareAttack
        from art.estimators.classification import BlackBoxClassifierNeuralNetwork

        clf = BlackBoxClassifierNeuralNetwork(f, input_shape=(1, 8, 8), nb_classes=10, clip_values=(0.0, 1.0))
        atk = SquareAttack(clf, **kw) if name == "square" else HopSkipJump(clf, **kw)
        count["q"] = 0
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xa = atk.generate(x.numpy(), y=np.eye(10)[y.numpy()])
        dt = time.perf_counter() - t0
        q = count["q"]
        succ = float((f(xa).argmax(1) != y.numpy()).mean())
        return q / dt, succ, q

    rows = [
        ("square", ours("square", {"eps": 0.1, "max_queries": 300}),
         art("square", {"norm": np.inf, "eps": 0.1, "max_iter": 300, "p_init": 0.8, "nb_restarts": 1,
                        "verbose": False})),
        ("hopskipjump", ours("hopskipjump", {"norm": "l2", "max_queries": 1000, "max_iter": 10}),
         art("hopskipjump", {"norm": 2, "max_iter": 10, "max_eval": 1000, "init_eval": 100, "verbose": False})),
    ]
    print(f"{'attack':<12}{'aisec q/s':>12}{'ART q/s':>12}{'speed-up':>10}{'aisec succ':>12}{'ART succ':>10}"
          f"{'aisec q':>10}{'ART q':>10}")
    for name, o, r in rows:
        print(f"{name:<12}{o[0]:>12.0f}{r[0]:>12.0f}{o[0] / r[0]:>9.1f}x{o[1]:>12.2f}{r[1]:>10.2f}{o[2]:>10}{r[2]:>10}")

    # HTTP overhead per query (loopback v2 server) vs in-process.
    from aisec.targets.http import HttpTarget
    from aisec.targets.torch import TorchTarget
    from aisec.testing.v2_server import V2Server

    tt = TorchTarget(model, input_shape=(1, 8, 8), num_classes=10, device="cpu")
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
