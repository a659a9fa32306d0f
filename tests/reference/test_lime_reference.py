"""aisec's LIME equals a direct call of the ``lime`` library with the same seed and settings.

Images: aisec builds the perturbed images vectorised, lime in a Python loop; the random draws
are the same. With the same ``batch_size`` the model sees bit-identical batches, so segments,
weights, intercept and R² are *exactly* equal. With lime's default ``batch_size=10`` the model
runs on other batch shapes, whose float rounding (convolution kernels chosen per batch size)
moves the weights by ~1e-8: equal to a relative 1e-4. Tables and text use lime's own explainers,
which query the model once per explanation; they must agree exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from aisec.core.types import Modality
from aisec.explain import Segmenter, explain
from aisec.targets.torch import TorchTarget


def _image_fn(target, channels):
    def fn(imgs: np.ndarray) -> np.ndarray:
        if channels == 1:
            imgs = imgs[..., :1]
        x = torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2))).float()
        return target.predict(x).double().numpy()

    return fn


def _weights(exp, label, k):
    w = np.zeros(k)
    for f, v in exp.local_exp[label]:
        w[f] = v
    return w


def _assert_same(ours, theirs, i, label, k, exact=True):
    np.testing.assert_array_equal(ours.raw[i].segments, theirs.segments)
    if exact:
        np.testing.assert_array_equal(ours.group_weights[i], _weights(theirs, label, k))
        assert ours.score[i] == theirs.score
        assert ours.raw[i].intercept[label] == theirs.intercept[label]
        assert [f for f, _ in ours.raw[i].local_exp[label]] == [f for f, _ in theirs.local_exp[label]]
    else:
        np.testing.assert_allclose(ours.group_weights[i], _weights(theirs, label, k), rtol=1e-4, atol=1e-7)
        assert ours.score[i] == pytest.approx(theirs.score, rel=1e-4)


@pytest.mark.parametrize(("seed", "lime_batch"), [(0, 4096), (7, 4096), (0, 10)])
def test_image_lime_equals_lime_on_the_digits_model(digits_target, digits_test_batch, seed, lime_batch):
    from lime.lime_image import LimeImageExplainer

    x = digits_test_batch[0][:2]
    ours = explain(digits_target, x, method="lime", num_samples=300, seed=seed, batch_size=4096)
    for i in range(2):
        label = int(ours.label[i])
        theirs = LimeImageExplainer(random_state=seed).explain_instance(
            x[i, 0].numpy(), _image_fn(digits_target, 1), labels=(label,), top_labels=None, hide_color=0.0,
            num_samples=300, segmentation_fn=Segmenter("grid"), batch_size=lime_batch)
        _assert_same(ours, theirs, i, label, 64, exact=lime_batch == 4096)
        assert np.array_equal(ours.groups[i, 0].numpy(), theirs.segments)


@pytest.mark.parametrize("segmentation", ["grid", "slic"])
def test_image_lime_equals_lime_on_colour_32x32(segmentation):
    from lime.lime_image import LimeImageExplainer

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                        nn.Linear(128, 10))
    target = TorchTarget(net, input_shape=(3, 32, 32), num_classes=10, device="cpu")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ours = explain(target, x, method="lime", num_samples=200, seed=5, segmentation=segmentation, hide_color=None)
    label = int(ours.label[0])
    theirs = LimeImageExplainer(random_state=5).explain_instance(
        x[0].permute(1, 2, 0).numpy(), _image_fn(target, 3), labels=(label,), top_labels=None, num_samples=200,
        segmentation_fn=Segmenter(segmentation, seed=5), batch_size=4096)
    _assert_same(ours, theirs, 0, label, int(theirs.segments.max()) + 1)


def test_tabular_lime_equals_lime():
    from lime.lime_tabular import LimeTabularExplainer

    from aisec.data.builtin import breast_cancer
    from aisec.models.zoo import TabularMLP

    torch.manual_seed(0)
    data = breast_cancer(split="test")
    target = TorchTarget(TabularMLP(30, 2), input_shape=(30,), num_classes=2, modality=Modality.TABULAR, device="cpu")
    x = data.x[:2]
    ours = explain(target, x, method="lime", training_data=data.x, num_samples=800, seed=11)

    def fn(a: np.ndarray) -> np.ndarray:
        return target.predict(torch.from_numpy(a).float()).double().numpy()

    for i in range(2):
        label = int(ours.label[i])
        theirs = LimeTabularExplainer(data.x.double().numpy(), mode="classification", random_state=11).explain_instance(
            x[i].double().numpy(), fn, labels=(label,), num_features=30, num_samples=800)
        np.testing.assert_array_equal(ours.group_weights[i], _weights(theirs, label, 30))
        assert ours.score[i] == theirs.score


def test_text_lime_equals_lime():
    from lime.lime_text import LimeTextExplainer

    from aisec.data.text import decode_texts, python_docs
    from aisec.models.text import python_docs_target

    target = python_docs_target()
    text = decode_texts(python_docs(split="test").x[:1])[0]
    ours = explain(target, text, method="lime", num_samples=400, seed=2)
    label = int(ours.label[0])

    def fn(strings: list[str]) -> np.ndarray:
        return target.predict_texts(strings).double().numpy()

    theirs = LimeTextExplainer(class_names=list(target.spec.class_names), random_state=2).explain_instance(
        text, fn, labels=(label,), num_features=100000, num_samples=400)
    k = len(ours.tokens[0])
    np.testing.assert_array_equal(ours.group_weights[0], _weights(theirs, label, k))
    assert ours.tokens[0] == theirs.domain_mapper.indexed_string.inverse_vocab
