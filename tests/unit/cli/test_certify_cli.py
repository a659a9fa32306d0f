"""``--certify`` on the command line: the certificates reach the evidence, the console and the report."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from aisec.cli.main import main
from aisec.core.evidence import read_jsonl


@pytest.fixture()
def runner(aisec_cache):
    return CliRunner()


def test_certify_flag_runs_smoothing_beside_the_attacks(runner, tmp_path):
    out = tmp_path / "rep"
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-t", "robustness",
                               "-a", "fgsm", "--eps", "0.1", "--eps-l2", "0.5", "-c", "16", "--clever-samples", "0",
                               "--certify", "smoothing", "--certify-samples", "8", "--no-store", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "certified (lower bound) vs empirical" in res.output
    records = [r for r in read_jsonl(out / "evidence.jsonl") if r.metric == "robustness.certified_accuracy"]
    assert [r.parameters["radius"] for r in records] == [0.5]
    assert records[0].sample_count == 8 and records[0].parameters["method"] == "smoothing"
    html = (out / "report.html").read_text()
    assert "Certified lower bound vs empirical upper bound" in html and "smoothing" in html
    assert "Certified (lower bound) vs empirical (upper bound)" in (out / "report.md").read_text()
    plan = (out / "plan.yaml").read_text()
    assert "certify" in plan and "smoothing" in plan  # the plan replays the run (defaults are in the evidence)
