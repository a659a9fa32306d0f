"""Known answer: on a linear classifier DeepFool's first step lands exactly on the nearest boundary,
so its L2 (Linf) perturbation is |f| / ||w||_2 (|f| / ||w||_1) times (1 + overshoot)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aisec.attacks.base import run_attack
from aisec.core.types import Modality
from aisec.targets.torch import TorchTarget

D = 20
OVERSHOOT = 0.02


def _linear_target(num_classes: int, seed: int) -> TorchTarget:
    torch.manual_seed(seed)
    lin = nn.Linear(D, num_classes)
    # A wide value range so that clipping never touches the step.
    return TorchTarget(
        lin, input_shape=(D,), num_classes=num_classes, modality=Modality.TABULAR,
        value_range=(-100.0, 100.0), device="cpu",
    )


def _inputs(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g) * 2


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_binary_linear_distance_is_analytic(norm):
    target = _linear_target(2, 0)
    x = _inputs(32, 1)
    w = target.module.weight.detach()
    b = target.module.bias.detach()
    z = x @ w.T + b
    y = z.argmax(1)
    wd = w[1] - w[0]
    dual = wd.norm() if norm == "l2" else wd.abs().sum()
    expected = (z[:, 1] - z[:, 0]).abs() / dual * (1 + OVERSHOOT)
    out = run_attack("deepfool", target, x, y, {"norm": norm, "overshoot": OVERSHOOT, "steps": 50})
    assert bool(out.success.all())
    torch.testing.assert_close(out.distance, expected, rtol=1e-3, atol=0)


def test_multiclass_linear_distance_is_nearest_boundary():
    k = 5
    target = _linear_target(k, 2)
    x = _inputs(32, 3)
    w = target.module.weight.detach()
    b = target.module.bias.detach()
    z = x @ w.T + b
    y = z.argmax(1)
    f = z - z.gather(1, y[:, None])  # (N, K), 0 at the predicted class
    wd = w[None, :, :] - w[y][:, None, :]  # (N, K, D)
    dist = f.abs() / wd.norm(dim=2).clamp_min(1e-12)
    dist.scatter_(1, y[:, None], torch.inf)
    expected = dist.amin(1) * (1 + OVERSHOOT)
    out = run_attack("deepfool", target, x, y, {"norm": "l2", "overshoot": OVERSHOOT})
    assert bool(out.success.all())
    torch.testing.assert_close(out.distance, expected, rtol=1e-3, atol=0)
