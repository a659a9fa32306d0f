"""ONNX graphs with an int64 ``label`` output (as sklearn-onnx classifiers export, first, before the
probabilities): with a probability output beside it the probabilities are read (score-based attacks run);
label-only graphs offer labels only, decision-based attacks run on them, bad labels are refused."""

from __future__ import annotations

import numpy as np
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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        z = self.net(x)
        lab = z.argmax(1)
        if self.mode == "out_of_range":
            lab = lab + 10
        elif self.mode == "twice":
            lab = torch.cat([lab, lab])
        elif self.mode == "float":
            lab = lab.float()
        if self.mode == "label_only":
            return lab
        return lab, torch.softmax(z, 1)


def export(net: torch.nn.Module, path, mode: str = "ok") -> None:
    names = ["label"] if mode == "label_only" else ["label", "probabilities"]
    torch.onnx.export(Labelled(net, mode).eval(), torch.zeros(1, 1, 8, 8), str(path), dynamo=False,
                      input_names=["x"], output_names=names,
                      dynamic_axes={"x": {0: "n"}, **{o: {0: "n"} for o in names}})


@pytest.fixture(scope="module")
def label_file(digits_model, tmp_path_factory):
    """A label-only graph (one int64 output)."""
    path = tmp_path_factory.mktemp("onnx-labels") / "digits-labels.onnx"
    export(digits_model, path, "label_only")
    return path


@pytest.fixture(scope="module")
def label_and_probs_file(digits_model, tmp_path_factory):
    """``label`` first, then ``probabilities``, as sklearn-onnx writes a classifier."""
    path = tmp_path_factory.mktemp("onnx-labels") / "digits-label-probs.onnx"
    export(digits_model, path)
    return path


def test_label_and_probabilities_graph_reads_the_probabilities(label_and_probs_file, digits_target,
                                                               digits_test_batch):
    x, _ = digits_test_batch
    t = OnnxTarget(label_and_probs_file, input_shape=(1, 8, 8), num_classes=10, threads=1)
    assert t.spec.output is OutputKind.PROBABILITIES
    assert t.spec.capabilities == frozenset({Capability.PROBABILITIES})
    assert torch.allclose(t.predict(x), digits_target.predict(x), atol=1e-5)
    # a score-based attack runs where the label output alone allowed decision-based ones only
    out = run_attack("simba", t, x[:4], digits_target.predict(x[:4]).argmax(1), {"eps": 0.2, "max_queries": 20})
    assert out.queries > 0
    # the label output is still there when asked for
    lab = OnnxTarget(label_and_probs_file, input_shape=(1, 8, 8), num_classes=10, threads=1, output="labels")
    assert lab.spec.output is OutputKind.LABELS


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
    t = OnnxTarget(path, input_shape=(1, 8, 8), num_classes=10, threads=1, output="labels")
    with pytest.raises(err, match=match):
        t.predict(torch.rand(4, 1, 8, 8))


def test_float_labels_are_no_labels(digits_model, tmp_path):
    path = tmp_path / "float.onnx"
    export(digits_model, path, "float")
    with pytest.raises(ConfigError, match="no integer output to read labels from"):
        OnnxTarget(path, input_shape=(1, 8, 8), num_classes=10, output="labels")
    # Without output="labels" the probabilities are read, not the float label output before them.
    t = OnnxTarget(path, input_shape=(1, 8, 8), num_classes=10)
    assert t.spec.output is OutputKind.PROBABILITIES and t.predict(torch.rand(3, 1, 8, 8)).shape == (3, 10)


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


def _sklearn_like(path, *, zipmap: bool, w: np.ndarray, b: np.ndarray) -> None:
    """A linear classifier laid out as sklearn-onnx writes one: ``output_label`` (int64) first, then
    ``output_probability`` (a ZipMap of ``{class: p}`` per sample, or a float tensor with zipmap=False)."""
    from onnx import TensorProto, helper, numpy_helper

    k = w.shape[1]
    nodes = [helper.make_node("MatMul", ["X", "W"], ["z0"]), helper.make_node("Add", ["z0", "B"], ["z"]),
             helper.make_node("Softmax", ["z"], ["probs" if zipmap else "output_probability"], axis=1),
             helper.make_node("ArgMax", ["z"], ["output_label"], axis=1, keepdims=0)]
    prob = helper.make_tensor_value_info("output_probability", TensorProto.FLOAT, ["n", k])
    if zipmap:
        nodes.append(helper.make_node("ZipMap", ["probs"], ["output_probability"], domain="ai.onnx.ml",
                                      classlabels_int64s=list(range(k))))
        prob = helper.make_value_info("output_probability", helper.make_sequence_type_proto(
            helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))))
    graph = helper.make_graph(
        nodes, "sk", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n", w.shape[0]])],
        [helper.make_tensor_value_info("output_label", TensorProto.INT64, ["n"]), prob],
        initializer=[numpy_helper.from_array(w.astype(np.float32), "W"),
                     numpy_helper.from_array(b.astype(np.float32), "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())


@pytest.mark.parametrize("zipmap", [True, False])
def test_sklearn_onnx_layout_reads_probabilities(tmp_path, zipmap):
    from aisec.core.types import Modality

    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(4, 3)), rng.normal(size=3)
    path = tmp_path / "sk.onnx"
    _sklearn_like(path, zipmap=zipmap, w=w, b=b)
    t = OnnxTarget(path, input_shape=(4,), num_classes=3, modality=Modality.TABULAR, threads=1)
    assert t.spec.output is OutputKind.PROBABILITIES and Capability.PROBABILITIES in t.spec.capabilities
    x = rng.normal(size=(5, 4)).astype(np.float32)
    z = x @ w + b
    want = np.exp(z - z.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(t.predict(torch.from_numpy(x)).numpy(), want, atol=1e-5)
    assert t.queries == 5
    labels = OnnxTarget(path, input_shape=(4,), num_classes=3, modality=Modality.TABULAR, output="labels")
    assert torch.equal(labels.labels(torch.from_numpy(x)), torch.from_numpy(z.argmax(1)))


def test_one_dimensional_score_output_is_a_clear_error(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("ReduceSum", ["X"], ["s"], axes=[1], keepdims=0)], "flat",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["n"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 8
    (tmp_path / "flat.onnx").write_bytes(model.SerializeToString())
    t = OnnxTarget(tmp_path / "flat.onnx", input_shape=(4,), num_classes=3)
    with pytest.raises(OutputError, match=r"returned shape \(3,\) for 3 samples"):
        t.predict(torch.rand(3, 4))
