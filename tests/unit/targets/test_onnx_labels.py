"""Label-only ONNX graphs (an int64 ``label`` first output, as sklearn-onnx classifiers export):
labels match the model, the spec offers labels only, decision-based attacks run, bad labels are refused."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnxruntime")

from aisec.attacks.base import run_attack
from aisec.core.errors import BudgetExceeded, CapabilityError, ConfigError, OutputError, ShapeError
from aisec.core.types import Capability, OutputKind
from aisec.targets.onnx import OnnxTarget


class Labelled(torch.nn.Module):
    """``(label, probabilities)`` like sklearn-onnx; ``mode`` spoils the labels (hostile graphs)."""

    def __init__(self, net: torch.nn.Module, mode: str = "ok") -> None:
        super().__init__()
        self.net, self.mode = net, mode

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.net(x)
        lab = z.argmax(1)
        if self.mode == "out_of_range":
            lab = lab + 10
        elif self.mode == "twice":
            lab = torch.cat([lab, lab])
        elif self.mode == "float":
            lab = lab.float()
        return lab, torch.softmax(z, 1)


def export(net: torch.nn.Module, path, mode: str = "ok") -> None:
    torch.onnx.export(Labelled(net, mode).eval(), torch.zeros(1, 1, 8, 8), str(path), dynamo=False,
                      input_names=["x"], output_names=["label", "probabilities"],
                      dynamic_axes={"x": {0: "n"}, "label": {0: "n"}, "probabilities": {0: "n"}})


@pytest.fixture(scope="module")
def label_file(digits_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx-labels") / "digits-labels.onnx"
    export(digits_model, path)
    return path


def test_label_output_detected_and_matches_model(label_file, digits_target, digits_test_batch):
    x, _ = digits_test_batch
    t = OnnxTarget(label_file, input_shape=(1, 8, 8), num_classes=10, threads=1, query_budget=500)
    assert t.spec.output is OutputKind.LABELS
    assert t.spec.capabilities == frozenset({Capability.LABELS_ONLY, Capability.QUERY_BUDGET})
    p = t.predict(x)
    assert torch.equal(p.argmax(1), digits_target.predict(x).argmax(1))
    assert torch.equal(p.sum(1), torch.ones(len(x))) and t.queries == len(x)
    with pytest.raises(CapabilityError, match="predicted labels only"):
        t.logits(x)
    with pytest.raises(CapabilityError, match="no scores"):
        t.raw_scores(x)
    with pytest.raises(BudgetExceeded):
        t.predict(x.repeat(3, 1, 1, 1))


def test_boundary_runs_on_label_graph_and_simba_is_refused(label_file, digits_test_batch):
    x, y = digits_test_batch
    x, y = x[:6], y[:6]
    t = OnnxTarget(label_file, input_shape=(1, 8, 8), num_classes=10, threads=1, output="labels")
    with pytest.raises(CapabilityError, match=r"attack 'simba' needs probabilities.*'boundary'"):
        run_attack("simba", t, x, y, {"eps": 0.2, "max_queries": 20})
    out = run_attack("boundary", t, x, y, {"max_queries": 300})
    assert out.queries <= 6 * 302
    eligible = out.pred_clean == out.y
    assert (out.success & eligible).sum() >= eligible.sum() // 2


@pytest.mark.parametrize(
    ("mode", "err", "match"),
    [
        ("out_of_range", OutputError, r"labels in \[1\d, 1\d\]; they must lie in \[0, 10\)"),
        ("twice", ShapeError, r"labels of shape \(8,\) for 4 samples"),
    ],
)
def test_bad_label_graphs(digits_model, tmp_path, mode, err, match):
    path = tmp_path / f"{mode}.onnx"
    export(digits_model, path, mode)
    t = OnnxTarget(path, input_shape=(1, 8, 8), num_classes=10, threads=1)
    with pytest.raises(err, match=match):
        t.predict(torch.rand(4, 1, 8, 8))


def test_float_labels_are_no_labels(digits_model, tmp_path):
    path = tmp_path / "float.onnx"
    export(digits_model, path, "float")
    with pytest.raises(ConfigError, match="no integer output to read labels from"):
        OnnxTarget(path, input_shape=(1, 8, 8), num_classes=10, output="labels")
    # Without output="labels" the float first output is read as scores, and its shape is wrong for that.
    t = OnnxTarget(path, input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(OutputError, match=r"returned shape \(3,\) for 3 samples"):
        t.predict(torch.rand(3, 1, 8, 8))


def test_extraction_check_trains_on_hard_labels(label_file, digits_test_batch):
    from aisec.checks.extraction import ExtractionCheck
    from aisec.core.dataset import TensorDataset
    from aisec.core.types import Modality

    x, y = digits_test_batch
    t = OnnxTarget(label_file, input_shape=(1, 8, 8), num_classes=10, threads=1)
    res = ExtractionCheck().run(t, TensorDataset(x, y, name="d", modality=Modality.IMAGE),
                                {"query_budget": 256, "epochs": 20, "steps": 5})
    fid = next(m for m in res.measurements if m.metric == "extraction.fidelity")
    assert fid.parameters["soft_labels"] is False and res.summary["queries"] >= 256
    assert fid.value > 0.5  # 256 hard labels (64 images + jitter) give a surrogate far above chance (0.1)
