"""SPADE's time and peak memory at 1,000 and 10,000 samples, by stage, and how they grow.

Data: the digits CNN (``aisec.models.train.digits_cnn``) on digits images — the 1,797 real ones, and beyond
that jittered copies (a random one-pixel shift plus Gaussian noise of 0.05, clipped to [0, 1]) so that N can
reach 10,000 with inputs that still look like digits to the model. The output graph is built on the centred
log-probabilities, as the ``spade`` check does.

Each N runs in a fresh process, so its peak resident memory (``ru_maxrss``) is its own; ``tracemalloc`` gives
the peak of Python and numpy allocations during SPADE alone (SuperLU's factor is allocated in C and only the
resident figure sees it). Stages: k-NN graph on the inputs, on the outputs (exact scikit-learn search,
including the repair of disconnected graphs), the generalised eigen-solve (``eigsh``) and the node scores.
At N ≤ 2,000 the dense exact solve (``scipy.linalg.eigh``) is timed too, for comparison.

With ``--compare`` it also scores two models on the 539 digits test samples — the digits CNN and a copy
fine-tuned with PGD adversarial training (``pgd-at:eps=0.1,epochs=5``, about 25 s) — beside their PGD
(Linf 0.1, 20 steps) robust accuracy and DeepFool's median minimal L2 distance, at k = 10 and 20, to see
whether the model-level score orders the two models as the attacks do.

    python bench/bench_spade.py                    # N = 1,000 and 10,000 (about a minute on 2 cores)
    python bench/bench_spade.py --sizes 1000,3000,10000 --k 10
    python bench/bench_spade.py --sizes "" --compare
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc


def _data(n: int, seed: int = 0):  # type: ignore[no-untyped-def]
    import numpy as np
    import torch

    from aisec.data.builtin import digits

    d = digits()
    x = d.x.float()
    if n > x.shape[0]:
        g = torch.Generator().manual_seed(seed)
        extra = n - x.shape[0]
        src = x[torch.randint(0, x.shape[0], (extra,), generator=g)]
        sh = torch.randint(-1, 2, (extra, 2), generator=g)
        moved = torch.stack([torch.roll(s, (int(a), int(b)), dims=(1, 2)) for s, (a, b) in zip(src, sh, strict=True)])
        x = torch.cat([x, (moved + 0.05 * torch.randn(moved.shape, generator=g)).clamp(0, 1)])
    return x[:n], np.random.default_rng(seed)


def one(n: int, k: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    from aisec.metrics import spade as sm
    from aisec.models.train import digits_cnn

    model = digits_cnn(seed=0)
    x, _ = _data(n)
    with torch.no_grad():
        p = torch.cat([torch.softmax(model(x[i : i + 1024]), 1) for i in range(0, n, 1024)]).numpy()
    xin = x.reshape(n, -1).double().numpy()
    out = sm.centred_log_probabilities(p)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    ax, b_in = sm.knn_graph(xin, k)
    t1 = time.perf_counter()
    ay, b_out = sm.knn_graph(out, k)
    t2 = time.perf_counter()
    lx, ly = sm.laplacian(ax), sm.laplacian(ay)
    vals, vecs, _ = sm.generalized_top(lx, ly, 2, solver="eigsh")
    t3 = time.perf_counter()
    sm.node_scores(ax, vals, vecs)
    t4 = time.perf_counter()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    row = {"n": n, "k": k, "score": float(vals[0]), "bridges_in": b_in, "bridges_out": b_out,
           "knn_inputs_s": t1 - t0, "knn_outputs_s": t2 - t1, "eigsh_s": t3 - t2, "node_scores_s": t4 - t3,
           "total_s": t4 - t0, "tracemalloc_peak_mb": peak / 2**20, "rss_peak_mb": rss / 1024,
           "rss_growth_mb": (rss - base) / 1024}
    if n <= 2000:
        t5 = time.perf_counter()
        dv, _, _ = sm.generalized_top(lx, ly, 2, solver="dense")
        row["dense_s"] = time.perf_counter() - t5
        row["dense_rel_diff"] = float(abs(dv[0] - vals[0]) / vals[0])
    return row


def compare() -> None:
    """SPADE score of the digits CNN and of its PGD-trained copy, beside the attacks' verdicts."""
    import torch

    torch.set_num_threads(1)
    from aisec.attacks.base import run_attack
    from aisec.data.builtin import digits
    from aisec.defences.training.defend import train_defended
    from aisec.metrics.spade import centred_log_probabilities, robustness_index, spade
    from aisec.models.train import digits_cnn, split
    from aisec.targets.torch import TorchTarget

    train, test = split(digits(), seed=0)
    std = TorchTarget(digits_cnn(seed=0), input_shape=(1, 8, 8), num_classes=10, name="digits-cnn", device="cpu")
    t0 = time.perf_counter()
    at = train_defended(std, train, "pgd-at:eps=0.1,epochs=5", eval_data=test, seed=0)
    print(f"PGD-AT fine-tuning: {time.perf_counter() - t0:.1f} s")
    adv = TorchTarget(at.module, input_shape=(1, 8, 8), num_classes=10, name="digits-cnn-pgd-at", device="cpu")
    x, y = test.x.float(), test.y.long()
    for target in (std, adv):
        with torch.no_grad():
            p = target.predict(x).numpy()
        out = centred_log_probabilities(p)
        scores = {k: spade(x.numpy(), out, k=k) for k in (10, 20)}
        pgd = run_attack("pgd", target, x, y, {"eps": 0.1, "norm": "linf", "steps": 20})
        df = run_attack("deepfool", target, x, y, {"norm": "l2", "steps": 50})
        ok = df.pred_clean == y
        robust = float(((pgd.pred_adv == y) & (pgd.pred_clean == y)).float().mean())
        med = float(df.distance[df.success & ok].median())
        print(f"{target.spec.name:>18}: clean acc {float(ok.float().mean()):.3f}  PGD Linf 0.1 robust acc {robust:.3f} "
              f"DeepFool median L2 {med:.3f}  " + "  ".join(
                  f"SPADE k={k} {r.score:.1f} (index {robustness_index(r.score):.3f}, bridges {r.bridges_out})"
                  for k, r in scores.items()), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--compare", action="store_true", help="also score the digits CNN against its PGD-trained copy")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.k)))
        return
    rows = []
    for n in (int(s) for s in a.sizes.split(",") if s):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        res = subprocess.run([sys.executable, __file__, "--one", str(n), "--k", str(a.k)], capture_output=True,
                             text=True, check=True, env=env)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"N={r['n']:>6}  k={r['k']}  score {r['score']:.4g}  "
              f"bridges in/out {r['bridges_in']}/{r['bridges_out']}  knn(in) {r['knn_inputs_s']:.2f}s  "
              f"knn(out) {r['knn_outputs_s']:.2f}s  eigsh {r['eigsh_s']:.2f}s  "
              f"nodes {r['node_scores_s']:.3f}s  total {r['total_s']:.2f}s  "
              f"peak(py) {r['tracemalloc_peak_mb']:.1f} MB  "
              f"rss {r['rss_peak_mb']:.0f} MB (+{r['rss_growth_mb']:.0f})"
              + (f"  dense {r['dense_s']:.2f}s (rel. diff {r['dense_rel_diff']:.1e})" if "dense_s" in r else ""),
              flush=True)
    if len(rows) >= 2:
        import math

        a0, a1 = rows[0], rows[-1]
        f = a1["n"] / a0["n"]
        for key in ("knn_inputs_s", "knn_outputs_s", "eigsh_s", "total_s", "tracemalloc_peak_mb"):
            if a0[key] > 0 and a1[key] > 0:
                print(f"{key}: x{a1[key] / a0[key]:.1f} for x{f:g} samples (exponent "
                      f"{math.log(a1[key] / a0[key]) / math.log(f):.2f})")
    if a.compare:
        compare()


if __name__ == "__main__":
    main()
