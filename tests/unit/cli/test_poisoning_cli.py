"""``aisec detect-backdoor --out`` writes evidence like ``assess``; poisoning/backdoor flags reach the plan."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from aisec.cli.assess import _plan_from
from aisec.cli.main import main
from aisec.core.evidence import read_jsonl


@pytest.fixture()
def runner(aisec_cache):
    return CliRunner()


def test_detect_backdoor_writes_evidence_and_report_with_out(runner, tmp_path) -> None:
    out = tmp_path / "bd"
    res = runner.invoke(main, ["detect-backdoor", "-m", "digits-cnn", "--method", "activation-clustering",
                               "--method", "spectral-signatures", "-c", "400", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "activation-clustering:" in res.output and "spectral-signatures:" in res.output
    records = read_jsonl(out / "evidence.jsonl")
    assert {r.check for r in records} == {"backdoor"}
    assert {r.parameters["method"] for r in records} == {"activation-clustering", "spectral-signatures"}
    assert all(r.sample_count == 400 for r in records)
    assert (out / "report.html").exists() and (out / "samples" / "backdoor-samples.csv").exists()
    # without --out nothing is written, and --json prints the check's summary
    res = runner.invoke(main, ["detect-backdoor", "-m", "digits-cnn", "--method", "spectral-signatures",
                               "-c", "200", "--threshold", "2.5", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["methods"][0]["threshold"] == 2.5 and d["samples"] == 200


def _flags(**over: object) -> dict[str, object]:
    """Every `aisec assess` option unset (as click passes them), then ``over``."""
    from aisec.cli.assess import assess

    f: dict[str, object] = {p.name: None for p in assess.params if p.name}
    f.update(over)
    return f


def test_poisoning_flags_override_the_plan_file(tmp_path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "model": "digits-cnn", "data": "digits",
        "checks": {"poisoning": {"rates": [0.1], "recipe": {"architecture": "digits-cnn", "mode": "finetune",
                                                             "epochs": 3, "lr": 5e-4}}},
    }))
    p = _plan_from(str(plan), _flags(train_epochs=2))
    assert p.checks["poisoning"]["recipe"]["epochs"] == 2 and p.checks["poisoning"]["recipe"]["mode"] == "finetune"
    assert p.checks["poisoning"]["recipe"]["architecture"] == "digits-cnn"
    p = _plan_from(None, _flags(model="digits-cnn", data="digits", checks="poisoning,backdoor",
                                poison_rates="0.01,1/20", train_mode="retrain", train_lr=0.002,
                                detect_methods="neural-cleanse"))
    assert p.checks["poisoning"] == {"rates": [0.01, 0.05],
                                     "recipe": {"mode": "retrain", "lr": 0.002, "architecture": "target"}}
    assert p.checks["backdoor"] == {"methods": ["neural-cleanse"]}


def test_bad_poisoning_input_is_one_clear_line(runner, tmp_path) -> None:
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "-t", "poisoning", "-q",
                               "--plan", str(_plan(tmp_path, {"trigger": {"kind": "patch", "size": 9}})),
                               "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "larger than the 8x8 image" in res.output
    assert not (tmp_path / "o" / "evidence.jsonl").exists()


def _plan(tmp_path, poisoning: dict[str, object]):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({"model": "digits-cnn", "data": "digits", "checks": {"poisoning": poisoning}}))
    return p
