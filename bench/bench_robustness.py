"""Time aisec's PGD and CLEVER against ART, torchattacks and a bare torch loop, in one run.

Same model, samples and work for everyone:

(a) PGD-Linf, eps, 10 steps, step 2.5·eps/10, no random start: aisec ``run_attack("pgd")`` (the
    whole driver: checks, clean and adversarial predictions, projection), aisec's ``pgd_loop`` alone,
    aisec with ``amp=True`` (bfloat16 autocast), ART ``ProjectedGradientDescent``, torchattacks
    ``PGD`` and a bare loop (forward, backward, sign step, projection — the physical reference).
(b) CLEVER-u: aisec ``clever_u`` vs ART ``clever_u`` at equal sample counts (nb_batches ×
    batch_size per sample and class).

Warm-up first, then the median of ``--repeats`` runs. Prints a markdown table.

    python bench/bench_robustness.py                              # digits CNN, CPU, < 2 min on 2 cores
    python bench/bench_robustness.py --model resnet18-ish --device cuda --n 512 --clever-n 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

warnings.filterwarnings("ignore")


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + self.short(x))


class SmallResNet(nn.Module):
    """ResNet-18 layout (2-2-2-2 basic blocks) for 3x32x32 inputs; ``width`` 64 is the real ResNet-18."""

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        layers, cin = [], w
        for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
            layers += [_Block(cin, cout, 1 if i == 0 else 2), _Block(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build(model: str, n: int, device: str) -> tuple[nn.Module, tuple[int, ...], torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    if model == "digits":
        from aisec.data.builtin import digits
        from aisec.models.train import digits_cnn, split

        net = digits_cnn(seed=0)
        _, test = split(digits(), seed=0)
        x, y = test.x[:n].clone(), test.y[:n].clone()
        shape: tuple[int, ...] = (1, 8, 8)
    elif model == "lenet":
        from aisec.models.zoo import LeNet5

        net, shape = LeNet5(), (1, 28, 28)
        x = torch.rand(n, *shape)
        y = torch.randint(0, 10, (n,))
    elif model == "resnet18-ish":
        net, shape = SmallResNet(), (3, 32, 32)
        x = torch.rand(n, *shape)
        y = torch.randint(0, 10, (n,))
    else:
        raise SystemExit(f"unknown model {model}")
    net = net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, shape, x, y


def _clock(fn: Callable[[], object], device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


MINIMA: dict[str, float] = {}


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, device: str) -> dict[str, float]:
    """Median seconds per function (minima kept in ``MINIMA``); runs are interleaved so that load
    changes hit all alike."""
    for fn in fns.values():  # warm-up
        fn()
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            runs[name].append(_clock(fn, device))
    MINIMA.update({name: min(t) for name, t in runs.items()})
    return {name: statistics.median(t) for name, t in runs.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="digits", choices=["digits", "lenet", "resnet18-ish"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--n", type=int, default=128, help="samples for PGD")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--clever-n", type=int, default=2, help="samples for CLEVER (0 skips it)")
    ap.add_argument("--nb-batches", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    if dev == "cuda":
        torch.backends.cudnn.benchmark = True

    from aisec.attacks.base import run_attack
    from aisec.attacks.evasion.pgd import PGDParams, pgd_loop
    from aisec.metrics.clever import clever_u
    from aisec.targets.torch import TorchTarget

    net, shape, x, y = build(args.model, args.n, dev)
    target = TorchTarget(net, input_shape=shape, num_classes=10, device=dev)
    eps, steps = args.eps, args.steps
    alpha = 2.5 * eps / steps
    xd, yd = x.to(dev), y.to(dev)
    rows: list[tuple[str, float | None, str]] = []
    mins: dict[str, float] = {}

    def bare() -> torch.Tensor:
        x_adv = xd.clone()
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(net(x_adv), yd, reduction="sum")
            (g,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                x_adv = torch.minimum(torch.maximum(x_adv + alpha * g.sign(), xd - eps), xd + eps).clamp_(0, 1)
        return x_adv

    params = {"eps": eps, "steps": steps, "step_size": alpha, "random_start": False}
    pgd_params = PGDParams(**params)

    # The robustness check predicts the clean samples once for all its attacks and eps and hands
    # them to run_attack; the driver then adds only the one forward pass that scores x_adv.
    with torch.no_grad():
        pred_clean = target.predict(xd).argmax(1).cpu()

    def aisec_driver() -> object:
        return run_attack("pgd", target, x, y, params, batch_size=args.n, pred_clean=pred_clean)

    def aisec_loop() -> object:
        return pgd_loop(target, xd, yd, pgd_params, None, start=False)

    def aisec_amp() -> object:
        return run_attack("pgd", target, x, y, {**params, "amp": True}, batch_size=args.n, pred_clean=pred_clean)

    fns: dict[str, Callable[[], object]] = {"bare": bare, "aisec": aisec_driver, "loop": aisec_loop, "amp": aisec_amp}
    clf = None
    try:
        from art.attacks.evasion import ProjectedGradientDescent
        from art.estimators.classification import PyTorchClassifier

        clf = PyTorchClassifier(
            model=net, loss=nn.CrossEntropyLoss(), input_shape=shape, nb_classes=10, clip_values=(0.0, 1.0),
            device_type="gpu" if dev == "cuda" else "cpu",
        )
        art_pgd = ProjectedGradientDescent(
            clf, norm=float("inf"), eps=eps, eps_step=alpha, max_iter=steps, num_random_init=0,
            batch_size=args.n, verbose=False,
        )
        xn, yn = x.numpy(), y.numpy()
        fns["art"] = lambda: art_pgd.generate(xn, y=yn)
    except ImportError as exc:  # pragma: no cover - optional reference
        rows.append(("ART ProjectedGradientDescent", None, f"skipped: {exc}"))
    try:
        import torchattacks

        ta = torchattacks.PGD(net, eps=eps, alpha=alpha, steps=steps, random_start=False)
        fns["torchattacks"] = lambda: ta(xd, yd)
    except ImportError as exc:  # pragma: no cover
        rows.append(("torchattacks PGD", None, f"skipped: {exc}"))
    t = time_interleaved(fns, args.repeats, dev)
    names = {
        "bare": "bare torch loop (fp32)", "aisec": "aisec run_attack pgd", "loop": "aisec pgd_loop only (no driver)",
        "amp": "aisec run_attack pgd amp=True", "art": "ART ProjectedGradientDescent",
        "torchattacks": "torchattacks PGD",
    }
    mins.update({names[k]: MINIMA[k] for k in t})
    t_aisec = t["aisec"]
    rows[:0] = [
        ("bare torch loop (fp32)", t["bare"], "1.00x (reference)"),
        ("aisec run_attack pgd", t_aisec, f"aisec speed = {t['bare'] / t_aisec:.2f}x bare loop"),
        ("aisec pgd_loop only (no driver)", t["loop"], f"{t['bare'] / t['loop']:.2f}x bare loop"),
        ("aisec run_attack pgd amp=True", t["amp"], f"{t_aisec / t['amp']:.2f}x faster than fp32"),
    ]
    if "art" in t:
        rows.append(("ART ProjectedGradientDescent", t["art"], f"ART/aisec = {t['art'] / t_aisec:.2f}x"))
    if "torchattacks" in t:
        rows.append(("torchattacks PGD", t["torchattacks"], f"torchattacks/aisec = {t['torchattacks'] / t_aisec:.2f}x"))

    if args.clever_n > 0:
        xc = x[: args.clever_n]
        kw = {"nb_batches": args.nb_batches, "batch_size": args.batch_size, "radius": 2.0}
        fns = {"aisec": lambda: clever_u(target, xc, norm="l2", **kw)}
        art_repeats = 0
        if clf is not None:
            from art.metrics import clever_u as art_clever_u

            xn = xc.numpy()
            art_clever_u(clf, xn[0], 2, 2, 2.0, 2, verbose=False)  # warm-up (the full run is too slow to repeat)
            art_repeats = max(1, args.repeats // 3)
            fns["art"] = lambda: [
                art_clever_u(clf, xi, args.nb_batches, args.batch_size, 2.0, 2, verbose=False) for xi in xn
            ]
        fns_aisec = {"aisec": fns.pop("aisec")}
        t = time_interleaved(fns_aisec, args.repeats, dev)
        rows.append((f"aisec clever_u l2 ({args.clever_n} samples)", t["aisec"], ""))
        mins[rows[-1][0]] = MINIMA["aisec"]
        if "art" in fns:
            t_art = statistics.median(_clock(fns["art"], dev) for _ in range(art_repeats))
            rows.append((f"ART clever_u l2 ({args.clever_n} samples)", t_art, f"ART/aisec = {t_art / t['aisec']:.1f}x"))

    dev_name = torch.cuda.get_device_name() if dev == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(
        f"\nmodel={args.model} device={dev} ({dev_name}) torch={torch.__version__} n={args.n} eps={eps} "
        f"steps={steps} repeats={args.repeats} (median); CLEVER: {args.clever_n} samples x "
        f"{args.nb_batches}x{args.batch_size} points x 9 classes; load avg {os.getloadavg()[0]:.1f}\n"
    )
    print("| run | median s | min s | ratio (medians) |\n|---|---:|---:|---|")
    for name, sec, ratio in rows:
        low = f"{mins[name]:.3f}" if name in mins else "-"
        print(f"| {name} | {'-' if sec is None else f'{sec:.3f}'} | {low} | {ratio} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
