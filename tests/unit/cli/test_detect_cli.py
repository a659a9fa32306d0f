"""``aisec assess --detector``: the detection check end to end on digits, its flags, and one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aisec.cli.main import main
from aisec.core.evidence import read_jsonl

NAMED = {"plan_file", "as_json", "quiet", "out", "policy_file", "store_url", "no_store", "allow_module",
         "allow_outside_paths", "resume_dir", "overwrite"}


@pytest.fixture()
def runner(aisec_cache):
    return CliRunner()


def _plan(*args: str):
    from aisec.cli.assess import _plan_from, assess

    ctx = assess.make_context("assess", ["-m", "digits-cnn", "-d", "digits", *args])
    return _plan_from(None, {k: v for k, v in ctx.params.items() if k not in NAMED})


def test_detector_alone_adds_the_detection_check_with_its_flags():
    plan = _plan("--detector", "feature-squeezing:bits=2,activation", "--detect-eps", "0.1", "--detect-fpr", "0.1",
                 "--detect-count", "100")
    assert list(plan.checks) == ["robustness", "detection"]
    assert plan.checks["detection"] == {"detectors": ["feature-squeezing:bits=2", "activation"], "eps": 0.1,
                                        "fpr": 0.1, "samples": 100}
    assert list(_plan("-t", "detection").checks) == ["detection"]
    assert list(_plan("-t", "robustness", "--detector", "activation").checks) == ["robustness"]  # -t wins


def test_assess_detection_end_to_end_on_digits(runner, tmp_path, digits_model):  # the built-in, cached
    out = tmp_path / "rep"
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-t", "detection",
                               "--detector", "feature-squeezing", "--detect-eps", "0.1", "--detect-count", "120",
                               "-o", str(out), "--json", "-q", "--no-store"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    (row,) = summary["checks"]["detection"]["summary"]["detectors"]
    assert row["spec"] == "feature-squeezing:fpr=0.05,bits=3,median=None" and row["samples"] == 60
    assert 0.5 < row["auc"] <= 1 and row["auc_ci"]["low"] <= row["auc"] <= row["auc_ci"]["high"]
    # a rejection is an error on a clean input: the system's clean accuracy cannot exceed the classifier's
    assert row["clean_accuracy"] <= row["undefended_clean_accuracy"]
    # ... and a defence on an adversarial one: the system is at least as robust as the classifier alone
    assert row["robust_accuracy"] >= row["undefended_robust_accuracy"] - (row["undefended_clean_accuracy"]
                                                                          - row["clean_accuracy"])
    records = read_jsonl(out / "evidence.jsonl")
    metrics = {r.metric for r in records}
    assert {"detection.auc", "detection.recall", "detection.precision", "detection.f1",
            "detection.adaptive_robust_accuracy", "detection.clean_accuracy"} <= metrics
    mine = [r for r in records if r.metric.startswith("detection.")]
    assert all(r.parameters["detector"].startswith("feature-squeezing") for r in mine)
    assert "## Defences" in (out / "report.md").read_text()
    assert 'id="defences"' in (out / "report.html").read_text()
    assert (out / "samples" / "detection-samples-feature-squeezing.csv").exists()
    # re-rendered from result.json (typed summary), the table is the same
    again = tmp_path / "again"
    res = runner.invoke(main, ["report", str(out), "--out", str(again)])
    assert res.exit_code == 0, res.output
    table = (out / "report.md").read_text().split("## Defences")[1].split("\n\n## ")[0]
    assert table in (again / "report.md").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--detector", "nosuch"], "unknown detector 'nosuch'; known: activation, feature-squeezing"),
    (["--detector", "feature-squeezing:median=4"], "median window side must be odd"),
    (["-t", "detection", "--detect-fpr", "2"], "--detect-fpr 2"),
])
def test_bad_detector_input_gets_one_line_and_exit_2(runner, tmp_path, args, message):
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", *args, "-o", str(tmp_path / "r"), "-q",
                               "--no-store"])
    assert res.exit_code == 2, res.output
    assert message in res.output
