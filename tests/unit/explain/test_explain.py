"""explain(): every method on images of several sizes, tables and text; capabilities and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from aisec.core.errors import CapabilityError, ConfigError, ShapeError
from aisec.core.types import Modality
from aisec.explain import Segmenter, explain, grid_segments
from aisec.targets.sklearn import ProbaTarget
from aisec.targets.torch import TorchTarget


def tiny_cnn(channels: int, classes: int = 10, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Linear(64, classes))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("method", ["lime", "kernel_shap", "saliency", "integrated_gradients"])
def test_every_method_on_every_image_size(shape, method):
    target = TorchTarget(tiny_cnn(shape[0]), input_shape=shape, num_classes=10, device="cpu")
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(1))
    opts = {"num_samples": 64} if method in ("lime", "kernel_shap") else {}
    attr = explain(target, x, method=method, **opts)
    assert attr.values.shape == x.shape
    assert torch.isfinite(attr.values).all()
    assert attr.label.tolist() == target.predict(x).argmax(1).tolist()
    if method in ("lime", "kernel_shap"):
        assert attr.groups is not None and attr.groups.shape == x.shape
        k = int(attr.groups.max()) + 1
        assert k == int(grid_segments(*shape[1:]).max()) + 1  # default grid: 64, 49, 64 cells
        assert all(len(w) == k for w in attr.group_weights)


def test_one_sample_in_one_sample_out_and_label_choice(digits_target, digits_test_batch):
    x, _ = digits_test_batch
    attr = explain(digits_target, x[0], method="saliency", label=3)
    assert attr.values.shape == (1, 1, 8, 8) and attr.label.tolist() == [3]
    assert 0 <= float(attr.probability[0]) <= 1
    with pytest.raises(ConfigError, match="one per sample"):
        explain(digits_target, x[:3], method="saliency", label=[1, 2])
    with pytest.raises(ConfigError, match=r"label must lie in \[0, 9\]"):
        explain(digits_target, x[:1], method="saliency", label=10)


def test_wrong_shape_and_unknown_names_are_explained(digits_target):
    with pytest.raises(ShapeError, match=r"takes one sample of shape \(1, 8, 8\)"):
        explain(digits_target, torch.rand(2, 1, 9, 9), method="saliency")
    with pytest.raises(ConfigError, match="unknown explainer 'grad'"):
        explain(digits_target, torch.rand(1, 1, 8, 8), method="grad")
    with pytest.raises(ConfigError, match=r"explainer 'saliency'.*unexpected keyword"):
        explain(digits_target, torch.rand(1, 1, 8, 8), method="saliency", num_samples=5)


def test_gradient_methods_need_a_white_box_and_name_the_alternatives(digits_split):
    from sklearn.linear_model import LogisticRegression

    train, test = digits_split
    clf = LogisticRegression(max_iter=300).fit(train.x.reshape(len(train), -1).numpy(), train.y.numpy())
    target = ProbaTarget(clf, input_shape=(1, 8, 8), num_classes=10, modality=Modality.IMAGE, name="logreg")
    with pytest.raises(CapabilityError, match=r"integrated_gradients.*needs gradients.*'lime' or 'kernel_shap'"):
        explain(target, test.x[:2], method="ig")
    attr = explain(target, test.x[:2], method="lime", num_samples=50)  # black box: LIME works
    assert attr.values.shape == (2, 1, 8, 8)


def test_four_channel_images_use_segment_means_when_asked():
    target = TorchTarget(tiny_cnn(4), input_shape=(4, 16, 16), num_classes=10, device="cpu")
    x = torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    attr = explain(target, x, method="lime", num_samples=40, hide_color=None)
    assert attr.values.shape == x.shape and attr.params["hide_color"] is None


@pytest.mark.parametrize("kind", ["grid", "slic", "quickshift"])
@pytest.mark.parametrize("size", [8, 28, 32])
def test_segmentations_label_every_pixel_without_gaps(kind, size):
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(0.5, 0.2, (size, size, 3)).cumsum(0) / size, 0, 1)
    seg = Segmenter(kind)(img)
    assert seg.shape == (size, size)
    assert np.array_equal(np.unique(seg), np.arange(seg.max() + 1))
    if kind == "grid":
        assert seg.max() + 1 == {8: 64, 28: 49, 32: 64}[size]


def test_tabular_lime_needs_training_data(digits_split):
    from aisec.models.zoo import TabularMLP

    target = TorchTarget(TabularMLP(5, 2), input_shape=(5,), num_classes=2, modality=Modality.TABULAR, device="cpu")
    with pytest.raises(ConfigError, match="training_data"):
        explain(target, torch.rand(1, 5), method="lime")
    attr = explain(target, torch.rand(2, 5), method="lime", training_data=torch.rand(50, 5), num_samples=200)
    assert attr.values.shape == (2, 5) and attr.score is not None


def test_text_lime_weights_words_and_bytes_alike():
    from aisec.data.text import decode_texts, encode_texts
    from aisec.models.text import python_docs_target

    target = python_docs_target()
    text = "The while statement repeats the suite while the expression is true; café."
    attr = explain(target, text, method="lime", num_samples=200)
    assert attr.tokens is not None and "while" in attr.tokens[0] and "café" in attr.tokens[0]
    assert attr.values.shape == (1, target.spec.input_shape[0])
    w = dict(zip(attr.tokens[0], attr.group_weights[0], strict=True))
    raw = encode_texts([text], target.spec.input_shape[0])[0]
    start = text.encode().index(b"while")
    assert float(attr.values[0, start]) == pytest.approx(w["while"], abs=1e-6)
    # Every byte of the two-byte "é" carries the word's weight; separators carry none.
    cafe = text.encode().index("café".encode())
    assert attr.values[0, cafe : cafe + 5].tolist() == pytest.approx([w["café"]] * 5, abs=1e-6)
    assert float(attr.values[0, text.encode().index(b" ")]) == 0.0
    assert decode_texts(raw[None]) == [text]
    with pytest.raises(ConfigError, match="does not explain text"):
        explain(target, text, method="kernel_shap")
