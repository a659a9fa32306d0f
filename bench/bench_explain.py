"""Seconds per LIME image explanation: aisec vs a plain ``lime`` call, same image, settings and seed.

The plain call is what the AI-SEC seed did: ``LimeImageExplainer.explain_instance`` with lime's
default ``batch_size=10``, so the model sees 10 perturbed images per forward pass, each built in a
Python loop. aisec draws the same random on/off matrix, builds all perturbed images in one
vectorised step and sends up to ``--batch-size`` per forward pass. Both use the same grid
segmentation, hide colour (0) and ``num_samples``, and the weights are checked to agree.

    python bench/bench_explain.py                      # digits CNN 1x8x8, LeNet5 1x28x28, CNN 3x32x32
    python bench/bench_explain.py --num-samples 2000 --repeats 5 --device cuda
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # lime's own progress bar would time the terminal too

import numpy as np
import torch
from torch import nn


def cifar_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def models(device: str) -> list[tuple[str, nn.Module, tuple[int, ...], torch.Tensor]]:
    from aisec.data.builtin import digits
    from aisec.models.train import digits_cnn
    from aisec.models.zoo import LeNet5

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    return [
        ("digits-cnn 1x8x8", digits_cnn(), (1, 8, 8), digits(split="test").x[:1]),
        ("lenet5 1x28x28 (random weights)", LeNet5(), (1, 28, 28), torch.rand(1, 1, 28, 28, generator=g)),
        ("cnn 3x32x32 (random weights)", cifar_cnn(), (3, 32, 32), torch.rand(1, 3, 32, 32, generator=g)),
    ]


def plain_lime(target, x: torch.Tensor, label: int, num_samples: int, seed: int):
    from lime.lime_image import LimeImageExplainer

    from aisec.explain import Segmenter

    c = x.shape[1]

    def fn(imgs: np.ndarray) -> np.ndarray:
        if c == 1:
            imgs = imgs[..., :1]
        t = torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2))).float()
        return target.predict(t).double().cpu().numpy()

    img = x[0, 0].numpy() if c == 1 else x[0].permute(1, 2, 0).numpy()
    return LimeImageExplainer(random_state=seed).explain_instance(
        img, fn, labels=(label,), top_labels=None, hide_color=0.0, num_samples=num_samples,
        segmentation_fn=Segmenter("grid"))  # lime's default batch_size=10


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-samples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from aisec.explain import explain
    from aisec.targets.torch import TorchTarget

    print(f"num_samples={args.num_samples}, repeats={args.repeats} (median), device={args.device}, "
          f"torch threads={args.threads}")
    print(f"{'model':34s} {'plain lime s':>12s} {'aisec s':>9s} {'speed-up':>9s}  max |Δw|")
    for name, net, shape, x in models(args.device):
        target = TorchTarget(net, input_shape=shape, num_classes=10, device=args.device)
        label = int(target.predict(x).argmax(1))
        explain(target, x, method="lime", num_samples=50, batch_size=args.batch_size)  # warm-up
        ours_t, plain_t = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            ours = explain(target, x, method="lime", label=label, num_samples=args.num_samples, seed=r,
                           batch_size=args.batch_size)
            ours_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            theirs = plain_lime(target, x, label, args.num_samples, seed=r)
            plain_t.append(time.perf_counter() - t0)
        w = np.zeros_like(ours.group_weights[0])
        for f, v in theirs.local_exp[label]:
            w[f] = v
        diff = float(np.abs(w - ours.group_weights[0]).max())
        a, b = statistics.median(ours_t), statistics.median(plain_t)
        print(f"{name:34s} {b:12.3f} {a:9.3f} {b / a:8.1f}x  {diff:.1e}")


if __name__ == "__main__":
    main()
