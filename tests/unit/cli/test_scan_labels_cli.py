"""``aisec scan --output-kind labels``: a label-only ONNX target gets the decision-based attacks only."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("onnxruntime")

from aisec.cli.main import main
from aisec.cli.scan import _grid
from aisec.core.types import Capability


class _ArgMax(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).argmax(1)


def test_default_grid_follows_the_target_output():
    labels = _grid(None, 50, [0.1], None, frozenset({Capability.LABELS_ONLY, Capability.QUERY_BUDGET}))
    probs = _grid(None, 50, [0.1], None, frozenset({Capability.PROBABILITIES}))
    assert set(labels) == {"boundary", "hopskipjump"}
    assert {"square", "simba", "boundary", "hopskipjump"} <= set(probs)


def test_scan_label_only_onnx(digits_model, tmp_path):
    path = tmp_path / "labels.onnx"
    torch.onnx.export(_ArgMax(digits_model).eval(), torch.zeros(1, 1, 8, 8), str(path), dynamo=False,
                      input_names=["x"], output_names=["label"], dynamic_axes={"x": {0: "n"}, "label": {0: "n"}})
    res = CliRunner().invoke(main, ["scan", "-m", str(path), "-d", "digits", "-c", "6", "--budget", "60",
                                    "--output-kind", "labels", "-o", str(tmp_path / "out"), "-q", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert sorted({r["attack"] for r in doc["runs"]}) == ["boundary", "hopskipjump"], doc
    res = CliRunner().invoke(main, ["scan", "-m", str(path), "-d", "digits", "-c", "4", "-a", "square",
                                    "--output-kind", "labels", "-o", str(tmp_path / "o2"), "-q", "--json"])
    assert "square" in res.output and "needs probabilities" in res.output
