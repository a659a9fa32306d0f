"""``aisec scan`` goes through the same Result -> Evidence -> store -> report path as ``aisec assess``."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aisec.cli.main import main
from aisec.core.evidence import Evidence, file_sha256, read_jsonl

SCAN = ["scan", "-m", "digits-cnn", "-d", "digits", "-c", "10", "--budget", "20", "-a", "square,simba",
        "--eps", "0.3", "-q"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("AISEC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AISEC_STORE_URL", raising=False)
    return tmp_path


def _ok(res):
    assert res.exit_code == 0, res.output + (res.stderr if res.stderr_bytes else "")
    return res


def _verifies(out, records: list[Evidence]) -> None:
    """Every per-sample file an evidence record points to is there, with the sha256 and rows it says."""
    for e in records:
        assert e.raw is not None, e
        f = out / e.raw.path
        assert file_sha256(f) == e.raw.sha256
        assert len(f.read_text().splitlines()) - 1 == e.raw.rows


def test_scan_folder_has_assess_evidence_and_a_report(env):
    r = CliRunner()
    _ok(r.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "-a", "fgsm", "--eps", "0.1", "-c", "10",
                        "--clever-samples", "0", "-o", str(env / "a"), "-q"]))
    _ok(r.invoke(main, [*SCAN, "-o", str(env / "s")]))
    assessed, scanned = read_jsonl(env / "a" / "evidence.jsonl"), read_jsonl(env / "s" / "evidence.jsonl")
    doc = json.loads((env / "s" / "scan.json").read_text())
    result = json.loads((env / "s" / "result.json").read_text())
    assert len(scanned) == len(doc["runs"]) == 2 and {e.check for e in scanned} == {"scan"}
    a = assessed[0]
    for e in scanned:
        assert e.tool_version == a.tool_version and e.tool == "aisec"
        assert e.run_id == doc["run_id"] == result["run_id"]
        assert e.resource == a.resource  # the same model sha256 and dataset digest as assess records
        assert e.environment == a.environment
        assert e.seed == 0 and e.threats and e.target_of_evaluation_id == a.target_of_evaluation_id
        assert e.parameters["mode"] == "scan" and e.interval is not None
    _verifies(env / "s", scanned)
    assert [e.model_dump(mode="json") for e in scanned] == result["evidence"]
    assert result["checks"]["scan"]["summary"]["complete"] is True
    html = (env / "s" / "report.html").read_text()
    md = (env / "s" / "report.md").read_text()
    for attack in ("square", "simba"):
        assert attack in html and attack in md
    assert "Scan" in html and "samples/scan-run01-square.csv" in html


def test_scan_report_escapes_what_comes_from_outside():
    from types import SimpleNamespace

    from aisec.core.check import Result
    from aisec.report.sections.scan import scan_section

    result = Result(check="scan", measurements=[], params={}, warnings=["<script>w</script>"], summary={
        "target": "<b>t</b>", "samples": 1, "complete": False, "stopped": "<img src=x>", "planned": 1,
        "constraints": None, "rows": [],
        "runs": [{"attack": "<i>a</i>", "params": {"p": "<x>"}, "error": "<script>e</script>"}]})
    html = scan_section(result, SimpleNamespace(evidence=[]))
    assert "<script>" not in html and "<img" not in html and "<i>a</i>" not in html
    assert "&lt;script&gt;e&lt;/script&gt;" in html


def test_scan_with_store_records_the_run_and_its_evidence(env):
    from aisec.store import open_store

    url = f"sqlite:///{env / 'e.db'}"
    _ok(CliRunner().invoke(main, [*SCAN, "-o", str(env / "s"), "--store", url]))
    records = read_jsonl(env / "s" / "evidence.jsonl")
    run_id = records[0].run_id
    with open_store(url) as store:
        info = store.run(run_id)
        assert info.status == "complete" and info.evidence_count == len(records) == 2
        assert info.model_sha256 == records[0].resource.model_sha256
        stored = store.query(run_id=run_id, check="scan", metric="robustness.attack_success_rate")
        assert [s.evidence for s in stored] == records
        assert {a.path for a in store.artifacts(run_id)} == {e.raw.path for e in records if e.raw}
        assert store.verify().ok


def test_scan_policy_is_judged_once_and_fails_with_3(env, policy_evaluations):
    policy = env / "p.yaml"
    policy.write_text("rules: [{metric: robustness.attack_success_rate, operator: '<=', target: 0.0}]\n")
    res = CliRunner().invoke(main, [*SCAN, "-o", str(env / "s"), "--policy", str(policy),
                                    "--store", f"sqlite:///{env / 'e.db'}"])
    assert res.exit_code == 3, res.output
    assert "policy FAILED" in res.output
    assert json.loads((env / "s" / "policy.json").read_text())["passed"] is False
    assert json.loads((env / "s" / "result.json").read_text())["verdict"]["passed"] is False
    assert len(policy_evaluations) == 1

