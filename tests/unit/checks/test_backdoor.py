"""The backdoor check: on a model the test backdoors itself it names the target class and writes the
flagged samples as raw evidence; bad input fails before anything is written."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from aisec.api import assess
from aisec.attacks.poisoning import PatchTrigger, poison_dataset
from aisec.checks.backdoor import BackdoorCheck, BackdoorParams
from aisec.core.dataset import TensorDataset
from aisec.core.errors import ConfigError
from aisec.core.evidence import file_sha256, read_jsonl
from aisec.core.registry import get_check
from aisec.core.types import Modality
from aisec.data.builtin import digits
from aisec.models.recipe import TrainingRecipe
from aisec.targets.torch import TorchTarget


@pytest.fixture(scope="module")
def backdoored():
    """DigitsCNN trained on digits-train with 5% BadNets poisons (3x3 patch) sending every class to 1."""
    tr = digits("train")
    ps = poison_dataset(tr.x, tr.y, PatchTrigger(size=3), rate=0.05, target_class=1, seed=0)
    model = TrainingRecipe(architecture="digits-cnn", epochs=8, lr=3e-3).train(ps.x, ps.y, seed=0, num_classes=10)
    target = TorchTarget(model, input_shape=(1, 8, 8), num_classes=10, name="digits-cnn-backdoored", device="cpu")
    data = TensorDataset(ps.x, ps.y, name="digits-train-poisoned", modality=Modality.IMAGE,
                         classes=[str(i) for i in range(10)])
    return target, data, ps


@pytest.fixture(scope="module")
def run(backdoored, tmp_path_factory):
    target, data, _ = backdoored
    out = tmp_path_factory.mktemp("backdoor")
    return assess(target, data, checks={"backdoor": {"methods": ["neural-cleanse", "activation-clustering"],
                                                     "samples": None}}, out=out)


def test_registered() -> None:
    assert get_check("backdoor").cls is BackdoorCheck


def test_neural_cleanse_names_the_target_class_in_the_evidence(run) -> None:
    by = {(e.metric, e.parameters["method"], e.parameters.get("class")): e for e in run.evidence}
    assert by[("backdoor.alarm", "neural-cleanse", None)].value == 1.0
    assert by[("backdoor.suspected_classes", "neural-cleanse", None)].parameters["suspected"] == [1]
    ai = [by[("backdoor.anomaly_index", "neural-cleanse", k)].value for k in range(10)]
    assert int(np.argmax(ai)) == 1 and ai[1] > 3.0
    # the evidence value is the robust z-score of the per-class statistic it records
    l1 = np.array([by[("backdoor.anomaly_index", "neural-cleanse", k)].parameters["statistic"] for k in range(10)])
    med = np.median(l1)
    assert ai[1] == pytest.approx((med - l1[1]) / (1.4826 * np.median(np.abs(l1 - med))), rel=1e-6)
    assert run.results[0].summary["alarm"] and 1 in run.results[0].summary["suspected"]
    assert any("neural-cleanse suspects a backdoor targeting class 1" in w for w in run.results[0].warnings)


def test_flagged_samples_are_raw_evidence(run, backdoored) -> None:
    _, data, ps = backdoored
    records = read_jsonl(run.out / "evidence.jsonl")
    assert len(records) == len(run.evidence) == 2 * (10 + 2) + 2
    frac = next(r for r in records if r.metric == "poisoning.poisoned_fraction")
    count = next(r for r in records if r.metric == "backdoor.flagged_samples")
    assert frac.raw is not None and frac.raw == count.raw
    path = run.out / frac.raw.path
    assert file_sha256(path) == frac.raw.sha256
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(data) == frac.sample_count
    flagged = [int(r["index"]) for r in rows if r["flagged_activation_clustering"] == "1"]
    assert len(flagged) == count.value and frac.value == pytest.approx(len(flagged) / len(data))
    assert frac.interval is not None and frac.interval.contains(frac.value)
    labels = ps.y[torch.as_tensor(flagged, dtype=torch.long)] if flagged else torch.zeros(0)
    suspected = next(r for r in records if r.metric == "backdoor.suspected_classes"
                     and r.parameters["method"] == "activation-clustering").parameters["suspected"]
    assert set(labels.tolist()) <= set(suspected)  # AC flags only samples of the classes it suspects


def test_report_section(run) -> None:
    html = (run.out / "report.html").read_text()
    assert "Backdoor detection" in html and "smallest trigger found per class" not in html  # figures are images
    assert html.count("data:image/png;base64,") >= 2  # anomaly bars and the reverse-engineered triggers


def test_bad_input(digits_target, tmp_path) -> None:
    from aisec.data.builtin import breast_cancer
    from aisec.models.zoo import TabularMLP

    tab = breast_cancer(split="test")
    mlp = TorchTarget(TabularMLP(in_features=30, num_classes=2), input_shape=(30,), num_classes=2, device="cpu")
    with pytest.raises(ConfigError, match="neural-cleanse reverse-engineers image triggers"):
        assess(mlp, tab, checks={"backdoor": {}}, out=tmp_path)
    assert not (tmp_path / "evidence.jsonl").exists()
    with pytest.raises(ConfigError, match="at least one detection method"):
        assess(digits_target, digits(), checks={"backdoor": {"methods": []}})
    with pytest.raises(ConfigError, match="magic"):
        assess(digits_target, digits(), checks={"backdoor": {"methods": ["magic"]}})
    assert BackdoorParams(methods=["spectral-signatures", "spectral-signatures"]).methods == ["spectral-signatures"]
