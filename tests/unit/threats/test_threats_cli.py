"""``aisec threats``, ``aisec plan --threat-model`` and, end to end on digits with small budgets,
``aisec assess --threat-model``: the plan it runs, the residual-risk table in every report, and the
threat-model node of the certification graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from aisec.cli.main import main

THREAT_MODEL = """\
name: label-only kiosk
system: {modality: image, access: labels, deployment: cloud-api, rate_limit: 60}
attacker:
  goals: [evasion-untargeted, inversion]
  knowledge: black
  capabilities: {perturbation: {domain: linf, budget: 0.1}, query_budget: 30}
  costs: {per_query: 0.01, currency: EUR}
out_of_scope: [{threat: AML.T0041, why: the camera sits behind glass}]
model: digits-cnn
data: {source: digits, options: {split: test}}
assessment: {samples: 8}
"""


@pytest.fixture
def tm_file(tmp_path: Path) -> Path:
    p = tmp_path / "tm.yaml"
    p.write_text(THREAT_MODEL, encoding="utf-8")
    return p


def test_threats_list_and_show() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["threats", "list"])
    assert res.exit_code == 0, res.output
    assert "AML.T0043.001  Black-Box Optimization" in res.output and "MITRE ATLAS 5.6.0" in res.output
    res = runner.invoke(main, ["threats", "show", "AML.T0024.000"])
    assert res.exit_code == 0, res.output
    assert "Infer Training Data Membership" in res.output and "checks:     privacy" in res.output
    assert "AML.M0004 Restrict Number of AI Model Queries" in res.output
    res = runner.invoke(main, ["threats", "show", "AML.T9"])
    assert res.exit_code == 2 and "error: no threat 'AML.T9' in the knowledge base" in res.output


def test_plan_command_writes_the_explained_plan(tm_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.yaml"
    res = CliRunner().invoke(main, ["plan", "--threat-model", str(tm_file), "--samples", "5", "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    assert "#   robustness: hopskipjump, 30 queries per input <- black-box labels access" in text
    assert "#   not tested <- goal inversion: aisec has no model-inversion attack" in text
    plan = yaml.safe_load(text)
    assert plan["checks"]["robustness"]["attacks"] == [{"name": "hopskipjump", "norm": "linf",
                                                        "params": {"max_queries": 30}}]
    assert plan["checks"]["robustness"]["samples"] == 5 and plan["threat_model"]["name"] == "label-only kiosk"


def test_plan_command_refuses_a_bad_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(THREAT_MODEL.replace("access: labels", "access: weights"), encoding="utf-8")
    res = CliRunner().invoke(main, ["plan", "--threat-model", str(bad)])
    assert res.exit_code == 2
    assert res.output.startswith("error: invalid threat model") and res.output.count("\n") == 1
    assert "attacker.knowledge is white" in res.output


def test_assess_threat_model_end_to_end(tm_file: Path, tmp_path: Path) -> None:
    out, db = tmp_path / "r", tmp_path / "ev.db"
    res = CliRunner().invoke(main, ["assess", "--threat-model", str(tm_file), "-o", str(out), "-q",
                                    "--store", f"sqlite:///{db}"])
    assert res.exit_code in (0, 3), res.output  # 3: the default policy may fail; the run is complete
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    risk = result["residual_risk"]
    rows = {r["threat"]: r for r in risk["rows"]}
    assert risk["threat_model"] == "label-only kiosk" and risk["access"] == "labels"
    hsj = rows["AML.T0043.001"]
    assert hsj["status"] == "measured" and hsj["reliability"].startswith(("reliable", "NOT RELIABLE"))
    # the row's number is the run's own evidence: HopSkipJump's robust accuracy at the attacker's budget
    ev = [e for e in result["evidence"] if e["metric"] == "robustness.robust_accuracy"
          and e["parameters"]["attack"] == "hopskipjump" and abs(e["parameters"]["eps"] - 0.1) < 1e-9]
    assert len(ev) == 1 and hsj["value"] == pytest.approx(ev[0]["value"])
    assert hsj["ci"] == pytest.approx([ev[0]["interval"]["low"], ev[0]["interval"]["high"]])
    assert hsj["n"] == 8 and 0 < hsj["queries_per_input"] <= 30  # the budget per input is never exceeded
    curve = next(c for c in result["checks"]["robustness"]["summary"]["curves"] if c["attack"] == "hopskipjump")
    assert curve["kind"] == "min_norm"  # one run for the whole grid: its queries are the attacker's
    assert hsj["queries_per_input"] == pytest.approx(curve["queries"] / 8)
    assert "an attacker with 30 queries per input succeeds on" in hsj["result"]
    assert "min per input at 60 queries/min" in hsj["cost"] and "EUR per input" in hsj["cost"]
    assert any(m.startswith("AML.M0002 Passive AI Output Obfuscation (labels only)") for m in hsj["in_place"])
    assert rows["AML.T0041"]["status"] == "out of scope"
    assert rows["AML.T0024.001"]["status"] == "not tested" and "model-inversion" in rows["AML.T0024.001"]["why_not"]
    html = (out / "report.html").read_text(encoding="utf-8")
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "Residual risk: threat model “label-only kiosk”" in html and "out of scope" in html
    assert '## Residual risk: threat model "label-only kiosk"' in md
    row = "| AML.T0043.001 Black-Box Optimization<br>EU AI Act Art. 15 15(5) adversarial examples (model evasion) |"
    assert f"{row} measured |" in md
    assert hsj["standards"] == ["EU AI Act Art. 15 15(5) adversarial examples (model evasion)"]
    assert "hopskipjump, 30 queries per input — black-box labels access" in md  # why, in the report too
    plan = yaml.safe_load((out / "plan.yaml").read_text(encoding="utf-8"))
    assert plan["rationale"] and plan["threat_model"]["name"] == "label-only kiosk"
    # a re-rendered report (aisec report) keeps the residual-risk table as written
    res = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "again")])
    assert res.exit_code == 0, res.output
    assert f"{row} measured |" in (tmp_path / "again" / "report.md").read_text()
    # the certification graph gains the threat model, linked from the run and to the threats it considers
    from aisec.graph import build_graph
    from aisec.store import open_store

    store = open_store(f"sqlite:///{db}")
    g = build_graph([r.evidence for r in store.query()], runs=store.runs())
    node = g.resolve("threat_model:label-only kiosk")
    assert node.kind == "threat_model" and node.attrs["access"] == "labels"
    considered = {n.attrs["atlas_id"] for n in g.neighbours(node.id, kind="threat", edge="considers")}
    assert {"AML.T0043.001", "AML.T0041", "AML.T0024.001"} <= considered
    assert "out of scope" in node.attrs["not_tested"]["AML.T0041"]
    assert g.neighbours(node.id, kind="run", edge="answers")


def test_assess_threat_model_and_plan_are_exclusive(tm_file: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["assess", "--threat-model", str(tm_file), "--plan", str(tm_file)])
    assert res.exit_code == 2 and "give it or --plan, not both" in res.output
