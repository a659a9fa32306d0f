"""IBP and CROWN time per sample, against auto_LiRPA where it imports, on a digits MLP and the digits CNN.

auto_LiRPA does not install beside torch 2.13 (PyPI's 0.3 pins torch < 1.13, GitHub's 0.7 declares
torch < 2.9); its source runs with this torch, so put a checkout on ``PYTHONPATH`` (with ``appdirs``) to
include it. Models: ``mlp`` (64-64-10, trained 15 epochs on the digits train split here, ~2 s) and
``cnn`` (:func:`aisec.models.train.digits_cnn`, the demo model: 3 conv + 2 max-pool + 2 linear layers).
Per model and method: seconds per sample (one batch of ``n``), the mean lower bound of the smallest
margin, and the fraction proved at ``eps``. ``bench/bench_certify.py`` imports :func:`bench_bounds`.

    python bench/_bench_bounds.py --n 16 --eps 0.01
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _mlp(x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(15):
        for idx in torch.randperm(len(x)).split(64):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _lirpa(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, method: str
           ) -> tuple[torch.Tensor, float] | None:
    try:
        from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bounded = BoundedModule(model, torch.zeros(1, *x.shape[1:]))
        bx = BoundedTensor(x, PerturbationLpNorm(norm=float("inf"), x_L=lo, x_U=hi))
        spec = torch.eye(10)[y].unsqueeze(1) - torch.eye(10).unsqueeze(0)
        t0 = time.perf_counter()
        with torch.no_grad():
            lb = bounded.compute_bounds(x=(bx,), method=method, C=spec)[0]
        return lb, time.perf_counter() - t0


def bench_bounds(n: int = 16, eps: float = 0.01, threads: int | None = None) -> dict[str, Any]:
    """``{model: {method: {"seconds_per_sample", "mean_min_margin_bound", "proved"}}}`` for the ``n`` first
    digits test samples at Linf ``eps`` (methods ``ibp``, ``crown``, and ``lirpa-ibp``/``lirpa-crown`` where
    auto_LiRPA imports)."""
    from aisec.certify.bounds import crown_margin_bounds, ibp_margin_bounds, read_module
    from aisec.certify.bounds.linear import excluding_true
    from aisec.data.builtin import digits
    from aisec.models.train import digits_cnn, split

    if threads:
        torch.set_num_threads(threads)
    train, test = split(digits(), seed=0)
    x, y = test.x[:n], test.y[:n]
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    out: dict[str, Any] = {"n": n, "eps": eps, "threads": torch.get_num_threads()}
    for name, model in (("mlp", _mlp(train.x, train.y)), ("cnn", digits_cnn(seed=0).eval())):
        net = read_module(model, (1, 8, 8))
        rows: dict[str, dict[str, float]] = {}
        for method, fn in (("ibp", ibp_margin_bounds), ("crown", crown_margin_bounds)):
            t0 = time.perf_counter()
            with torch.no_grad():
                lb = excluding_true(fn(net, lo, hi, y), y)
            rows[method] = {"seconds_per_sample": (time.perf_counter() - t0) / n,
                            "mean_min_margin_bound": float(lb.mean()), "proved": float((lb > 0).float().mean())}
        for method in ("IBP", "CROWN"):
            got = _lirpa(model, x, y, lo, hi, method)
            if got is not None:
                lb = excluding_true(got[0], y)
                rows[f"lirpa-{method.lower()}"] = {"seconds_per_sample": got[1] / n,
                                                   "mean_min_margin_bound": float(lb.mean()),
                                                   "proved": float((lb > 0).float().mean())}
        out[name] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--eps", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    result = bench_bounds(args.n, args.eps, args.threads)
    print(json.dumps(result, indent=1))
    for model in ("mlp", "cnn"):
        for method, row in result[model].items():
            print(f"{model:4s} {method:12s} {1000 * row['seconds_per_sample']:9.2f} ms/sample  "
                  f"mean bound {row['mean_min_margin_bound']:+.4f}  proved {row['proved']:.2f}")


if __name__ == "__main__":
    main()
