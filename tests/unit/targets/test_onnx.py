"""ONNX target: same scores as the torch model, budget, fixed-batch graphs, clear errors."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnxruntime")

from aisec.attacks.base import run_attack
from aisec.core.errors import BudgetExceeded, CapabilityError, ShapeError, TargetError
from aisec.core.types import Access, Capability, OutputKind
from aisec.targets.onnx import OnnxTarget


def export(model: torch.nn.Module, path, *, dynamic: bool = True, softmax: bool = False) -> None:
    net = torch.nn.Sequential(model, torch.nn.Softmax(1)) if softmax else model
    axes = {"x": {0: "n"}, "y": {0: "n"}} if dynamic else None
    torch.onnx.export(net.eval(), torch.zeros(1, 1, 8, 8), str(path), dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes=axes)


@pytest.fixture(scope="module")
def onnx_file(digits_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "digits.onnx"
    export(digits_model, path)
    return path


def test_matches_torch(onnx_file, digits_target, digits_test_batch):
    x, _ = digits_test_batch
    t = OnnxTarget(onnx_file, input_shape=(1, 8, 8), num_classes=10, threads=1)
    p = t.predict(x)
    assert torch.allclose(p, digits_target.predict(x), atol=1e-5)
    assert t.spec.output is OutputKind.LOGITS and t.spec.access is Access.GREY
    assert t.spec.has(Capability.LOGITS) and not t.spec.has(Capability.GRADIENTS)
    assert t.queries == x.shape[0] and len(t.spec.digest) == 64


def test_probability_graph_detected(digits_model, tmp_path, digits_test_batch):
    path = tmp_path / "p.onnx"
    export(digits_model, path, softmax=True)
    t = OnnxTarget(path, input_shape=(1, 8, 8), num_classes=10, threads=1)
    p = t.predict(digits_test_batch[0][:5])
    assert t.spec.output is OutputKind.PROBABILITIES
    assert torch.allclose(p.sum(1), torch.ones(5), atol=1e-5)


def test_fixed_batch_graph_is_chunked(digits_model, digits_target, tmp_path, digits_test_batch):
    path = tmp_path / "fixed.onnx"
    export(digits_model, path, dynamic=False)
    t = OnnxTarget(path, input_shape=(1, 8, 8), num_classes=10, threads=1)
    x = digits_test_batch[0][:7]
    assert torch.allclose(t.predict(x), digits_target.predict(x), atol=1e-5)


def test_budget_is_hard(onnx_file, digits_test_batch):
    x, _ = digits_test_batch
    t = OnnxTarget(onnx_file, input_shape=(1, 8, 8), num_classes=10, query_budget=10, access="black")
    t.predict(x[:6])
    with pytest.raises(BudgetExceeded):
        t.predict(x[:5])
    assert t.queries == 6
    assert t.spec.has(Capability.QUERY_BUDGET) and not t.spec.has(Capability.LOGITS)


def test_clear_errors(onnx_file, tmp_path):
    with pytest.raises(TargetError, match="not found"):
        OnnxTarget(tmp_path / "missing.onnx", input_shape=(1, 8, 8), num_classes=10)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(TargetError, match="cannot load"):
        OnnxTarget(bad, input_shape=(1, 8, 8), num_classes=10)
    t = OnnxTarget(onnx_file, input_shape=(1, 8, 8), num_classes=3)
    with pytest.raises(ShapeError, match="10 outputs but 3 classes"):
        t.predict(torch.zeros(2, 1, 8, 8))
    t = OnnxTarget(onnx_file, input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(CapabilityError, match="no gradients"):
        t.logits(torch.zeros(1, 1, 8, 8))


def test_black_box_attack_slots_in(onnx_file, digits_test_batch):
    x, y = digits_test_batch
    t = OnnxTarget(onnx_file, input_shape=(1, 8, 8), num_classes=10, threads=1)
    with pytest.raises(CapabilityError, match="square"):
        run_attack("pgd", t, x[:8], y[:8])
    out = run_attack("square", t, x[:32], y[:32], {"eps": 0.3, "max_queries": 50}, batch_size=64)
    assert out.success.float().mean() > 0.5


def test_reliability_probe_of_a_grey_graph_does_not_call_logits(onnx_file, digits_test_batch):
    """A grey ONNX graph offers logit scores but no ``logits()`` path: the robustness check's probability probe
    says it did not probe instead of failing the run (before: CapabilityError 'scores but no gradients')."""
    from aisec.checks._reliability import probe_probabilities

    t = OnnxTarget(onnx_file, input_shape=(1, 8, 8), num_classes=10, threads=1)
    probs, text = probe_probabilities(t, digits_test_batch[0][:4])
    assert probs is False and text.startswith("not probed")
