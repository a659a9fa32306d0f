from __future__ import annotations

import pytest
import torch
from torch import nn

from aisec.core.errors import DataError, OutputError, ShapeError
from aisec.core.target import check_inputs
from aisec.targets.torch import TorchTarget


def test_value_range_violation_is_specific(digits_target):
    x = torch.full((2, 1, 8, 8), 16.0)  # raw 0..16 digits pixels, not scaled
    with pytest.raises(DataError, match=r"declares the range \[0, 1\]"):
        check_inputs(digits_target.spec, x)


def test_shape_mismatch_says_expected_and_got(digits_target):
    with pytest.raises(ShapeError, match=r"\(1, 28, 28\).*expects \(1, 8, 8\)"):
        check_inputs(digits_target.spec, torch.zeros(2, 1, 28, 28))


def test_nan_input_rejected(digits_target):
    x = torch.zeros(2, 1, 8, 8)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        check_inputs(digits_target.spec, x)


def test_class_count_mismatch_on_first_use():
    t = TorchTarget(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), input_shape=(4,), num_classes=10, device="cpu")
    with pytest.raises(ShapeError, match="expected 10, got 3"):
        t.predict(torch.zeros(2, 4))


def test_nan_outputs_raise_output_error():
    class Bad(nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 2), float("nan"))

    t = TorchTarget(Bad(), input_shape=(3,), num_classes=2, device="cpu")
    with pytest.raises(OutputError, match="NaN"):
        t.predict(torch.zeros(1, 3))


def test_normalization_applied_inside_target():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))
    t = TorchTarget(net, input_shape=(3, 1, 1), num_classes=2, device="cpu",
                    normalization={"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.3, 0.4)})
    x = torch.rand(5, 3, 1, 1)
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1)
    torch.testing.assert_close(t.logits(x), net((x - mean) / std))
    assert t.queries == 5
