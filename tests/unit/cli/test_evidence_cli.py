"""CLI: aisec evidence list/show/export/import/verify/push, aisec graph, aisec reproduce; and the assess gate."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aisec.cli.evidence import evidence
from aisec.cli.graph import graph
from aisec.cli.reproduce import reproduce
from aisec.store import open_store
from aisec.testing.evidence import fake_run
from aisec.testing.store_checks import tamper


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("AISEC_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'e.db'}"
    monkeypatch.setenv("AISEC_STORE_URL", url)
    s = open_store(url)
    records = fake_run(4, run_id="run-cli")
    s.add_evidence(records)
    s.close()
    return tmp_path, url, records


def _ok(result):
    assert result.exit_code == 0, result.output + (result.stderr if result.stderr_bytes else "")
    return result.output


def test_list_show_export_import_verify(env):
    tmp, _url, records = env
    r = CliRunner()
    assert records[0].id[:8] in _ok(r.invoke(evidence, ["list"]))
    lines = _ok(r.invoke(evidence, ["list", "--json", "--metric", "robustness.*", "--limit", "2"])).splitlines()
    assert len(lines) == 2
    shown = json.loads(_ok(r.invoke(evidence, ["show", records[1].id[:8]])))
    assert shown["evidence"]["id"] == records[1].id and shown["chain"]["seq"] == 2
    _ok(r.invoke(evidence, ["export", "-o", str(tmp / "b.jsonl")]))
    _ok(r.invoke(evidence, ["export", "--format", "clouditor", "-o", str(tmp / "c.json")]))
    assert json.loads((tmp / "c.json").read_text())[0]["toolId"] == "aisec"
    other = f"sqlite:///{tmp / 'other.db'}"
    assert "4 added" in _ok(r.invoke(evidence, ["import", "--store", other, str(tmp / "b.jsonl")]))
    assert "0 added, 4 already present" in _ok(r.invoke(evidence, ["import", "--store", other, str(tmp / "b.jsonl")]))
    assert _ok(r.invoke(evidence, ["verify"])).startswith("OK")
    assert _ok(r.invoke(evidence, ["verify", "--bundle", str(tmp / "b.jsonl")])).startswith("OK")
    assert "BEGIN PUBLIC KEY" in _ok(r.invoke(evidence, ["key"]))


def test_verify_exits_4_and_names_the_record(env):
    _, url, records = env
    s = open_store(url)
    tamper(s, "remove_middle")
    s.close()
    res = CliRunner().invoke(evidence, ["verify"])
    assert res.exit_code == 4 and f"removed {records[1].id}" in res.output


def test_store_and_push_errors_are_one_line_exit_2(env, tmp_path):
    r = CliRunner()
    res = r.invoke(evidence, ["list", "--store", "nosuchdialect://x/y"])
    assert res.exit_code == 2 and "error:" in res.stderr
    res = r.invoke(evidence, ["show", "does-not-exist"])
    assert res.exit_code == 2 and "no evidence" in res.stderr
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outbox = tmp_path / "outbox.json"
    res = r.invoke(evidence, ["push", "--to", f"http://127.0.0.1:{port}", "--token", "t", "--retries", "0",
                              "--outbox", str(outbox)])
    assert res.exit_code == 2 and "cannot reach" in res.stderr
    assert len(json.loads(outbox.read_text())) == 1  # nothing lost: the message waits in the outbox


def test_graph_command(env, tmp_path):
    r = CliRunner()
    assert "AIC4/SR-05" in _ok(r.invoke(graph, []))
    assert "metric (4)" in _ok(r.invoke(graph, ["--node", "AIC4/SR-05"]))
    _ok(r.invoke(graph, ["--format", "graphml", "-o", str(tmp_path / "g.graphml")]))
    assert (tmp_path / "g.graphml").read_text().startswith("<?xml")
    doc = json.loads(_ok(r.invoke(graph, ["--format", "jsonld"])))
    assert "@graph" in doc
    res = r.invoke(graph, ["--node", "nope"])
    assert res.exit_code == 2


def test_reproduce_refusal_exit_2(env):
    _, _, records = env
    res = CliRunner().invoke(reproduce, [records[0].id])
    assert res.exit_code == 2 and "no recorded plan" in res.stderr


def test_gate_validates_first_then_stores_and_judges(env, tmp_path):
    from dataclasses import dataclass, field
    from pathlib import Path

    from aisec.policy.gate import Gate
    from aisec.policy.rules import EXIT_POLICY_FAILED, UnknownMetricError

    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{metric: robustness.nope, operator: '>=', target: 1}]\n")
    with pytest.raises(UnknownMetricError):
        Gate.open(policy=bad)
    good = tmp_path / "good.yaml"
    good.write_text("rules: [{metric: robustness.robust_accuracy, operator: '>=', target: 0.75}]\n")
    _, url, _ = env
    gate = Gate.open(policy=good, store=url)

    @dataclass
    class FakeRun:
        run_id: str
        plan: object
        evidence: list
        out: Path | None
        errors: list = field(default_factory=list)

    out = tmp_path / "report"
    out.mkdir()
    records = fake_run(3, run_id="gated")  # 0.9, 0.8, 0.7: the worst (0.7) fails >= 0.75
    rec = gate.recorder(None, out)
    rec(records[:2])  # as each check finishes
    outcome = gate.finish(FakeRun("gated", None, records, out))
    assert outcome.exit_code == EXIT_POLICY_FAILED
    assert len(outcome.stored.added) == 1 and len(outcome.stored.skipped) == 2
    assert json.loads((out / "policy.json").read_text())["passed"] is False
    assert "robustness.robust_accuracy" in (out / "policy.md").read_text()
