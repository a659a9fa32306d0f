"""Known answers: a model that only uses known features or a known image region is explained by them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aisec.core.types import Modality
from aisec.explain import explain
from aisec.metrics.faithfulness import topk_sets
from aisec.targets.sklearn import ProbaTarget
from aisec.targets.torch import TorchTarget

USED = [2, 5, 7]


class SubsetLinear(nn.Module):
    """Two-class logits (w·x_S, 0): only columns S matter, one of them negatively."""

    def __init__(self, d: int = 10) -> None:
        super().__init__()
        self.w = torch.zeros(d)
        self.w[USED] = torch.tensor([3.0, -2.5, 4.0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.reshape(x.shape[0], -1) @ self.w - 0.5 * float(self.w.sum())
        return torch.stack([s, torch.zeros_like(s)], 1)


class RegionModel(nn.Module):
    """Class 0 logit grows with the mean brightness of one image region; nothing else matters."""

    def __init__(self, rows: slice, cols: slice) -> None:
        super().__init__()
        self.rows, self.cols = rows, cols

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x[:, :, self.rows, self.cols].mean((1, 2, 3))
        return torch.stack([8 * (m - 0.3), torch.zeros_like(m)], 1)


@pytest.mark.parametrize("method", ["lime", "kernel_shap", "integrated_gradients", "saliency"])
def test_tabular_top_features_are_the_used_subset(method):
    target = TorchTarget(SubsetLinear(), input_shape=(10,), num_classes=2, modality=Modality.TABULAR, device="cpu")
    g = torch.Generator().manual_seed(0)
    train = torch.rand(200, 10, generator=g)
    x = torch.rand(4, 10, generator=g)
    opts = {"training_data": train, "num_samples": 1000} if method in ("lime", "kernel_shap") else {}
    attr = explain(target, x, method=method, label=0, **opts)
    scores = attr.values.abs()
    for i in range(len(attr)):
        assert set(scores[i].argsort(descending=True)[:3].tolist()) == set(USED)


def test_tabular_known_answer_for_a_black_box_too():
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(1)
    xtr = torch.rand(400, 10, generator=g)
    ytr = (xtr[:, USED] @ torch.tensor([3.0, -2.5, 4.0]) > 2.25).long()
    clf = LogisticRegression(C=100.0, max_iter=2000).fit(xtr.numpy(), ytr.numpy())
    target = ProbaTarget(clf, input_shape=(10,), num_classes=2)
    attr = explain(target, xtr[:3], method="lime", training_data=xtr, num_samples=2000)
    for i in range(3):
        assert set(attr.values[i].abs().argsort(descending=True)[:3].tolist()) == set(USED)


@pytest.mark.parametrize(("shape", "rows", "cols", "k"), [
    ((1, 8, 8), slice(0, 3), slice(5, 8), 9),      # 9 one-pixel cells
    ((1, 28, 28), slice(0, 12), slice(0, 12), 144),  # 3x3 cells of 4x4 pixels
    ((3, 32, 32), slice(16, 24), slice(8, 16), 64),  # 2x2 cells of 4x4 pixels
])
@pytest.mark.parametrize("method", ["lime", "kernel_shap", "integrated_gradients"])
def test_image_top_pixels_are_the_known_region(shape, rows, cols, k, method):
    if method == "kernel_shap" and shape[0] == 3:
        pytest.skip("Captum's KernelShap builds perturbations one by one; 3x32x32 is covered by the shape test")
    target = TorchTarget(RegionModel(rows, cols), input_shape=shape, num_classes=2, device="cpu")
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(2)) * 0.8 + 0.2
    opts = {"num_samples": 300} if method in ("lime", "kernel_shap") else {}
    attr = explain(target, x, method=method, label=0, **opts)
    region = torch.zeros(shape[1:], dtype=torch.bool)
    region[rows, cols] = True
    want = set(region.reshape(-1).nonzero().reshape(-1).tolist())
    for top in topk_sets(attr, k):
        assert top == want
