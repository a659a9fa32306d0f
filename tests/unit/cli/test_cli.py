from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aisec.cli.main import main
from aisec.core.evidence import read_jsonl


@pytest.fixture()
def runner(aisec_cache):
    return CliRunner()


def test_assess_with_seed_toolbox_style_flags_writes_evidence(runner, tmp_path):
    out = tmp_path / "rep"
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-t", "robustness",
                               "-a", "fgsm,pgd", "--eps", "0.05,8/255", "-c", "40", "--clever-samples", "4",
                               "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    curves = summary["checks"]["robustness"]["summary"]["curves"]
    assert [c["attack"] for c in curves] == ["fgsm", "pgd"]
    assert [p["eps"] for p in curves[0]["points"]] == pytest.approx([8 / 255, 0.05])
    records = read_jsonl(out / "evidence.jsonl")
    assert len(records) == len(summary["evidence"]) > 0
    assert {r.metric for r in records} >= {"robustness.clean_accuracy", "robustness.clever_u"}
    assert (out / "report.html").stat().st_size > 10_000
    assert (out / "plan.yaml").exists()
    # One report across checks: the verdict per requirement heads the HTML and the Markdown.
    assert "Executive summary" in (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    assert "## Executive summary" in md and "adversarialRobustnessScore" in md
    assert summary["verdict"]["requirements"]


def test_plan_file_and_flag_override(runner, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "model: digits-cnn\ndata: {source: digits, options: {split: test}}\n"
        "checks:\n  robustness:\n    attacks: [fgsm]\n    eps: [0.1]\n    samples: 30\n    clever: {enabled: false}\n"
    )
    res = runner.invoke(main, ["assess", "--plan", str(plan), "-c", "20", "-o", str(tmp_path / "r"), "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)["checks"]["robustness"]["summary"]
    assert s["samples"] == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "no-such-model.pt", "-d", "digits"], "not found"),
        (["-m", "digits-cnn", "-d", "digits", "-a", "nosuch"], "unknown attack 'nosuch'"),
        (["-m", "digits-cnn", "-d", "breast-cancer"], "expects (1, 8, 8)"),
        (["-m", "digits-cnn", "-d", "digits", "--eps", "abc"], "not a number"),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_2(runner, tmp_path, args, message):
    res = runner.invoke(main, ["assess", *args, "-c", "10", "-o", str(tmp_path / "r"), "-q"])
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_policy_failure_exits_3_and_keeps_the_report(runner, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - {metric: adversarialRobustnessScore, operator: '>=', target: 0.99}\n")
    out = tmp_path / "r"
    res = runner.invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-a", "fgsm",
                               "--eps", "0.1", "-c", "30", "--clever-samples", "0", "-o", str(out), "-q",
                               "--policy", str(policy)])
    assert res.exit_code == 3, res.output
    assert "FAIL" in res.output
    assert (out / "evidence.jsonl").exists() and (out / "policy.md").exists()


def test_plugins_lists_every_attack_with_needs(runner):
    res = runner.invoke(main, ["plugins", "--json"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    names = {a["name"] for a in data["attacks"]}
    assert {"fgsm", "bim", "pgd", "cw", "deepfool", "jsma"} <= names
    assert all(a["requires"] or a["labels_only"] for a in data["attacks"])
    assert {a["name"] for a in data["attacks"] if a["labels_only"]} == {"boundary", "gaussian-noise", "hopskipjump",
                                                                              "transfer", "uniform-noise"}
    assert "robustness" in {c["name"] for c in data["checks"]}
    assert data["errors"] == {}


def test_seed_tool_check_names_are_aliases():
    """AI-SEC's ``-t poison`` / ``-t explain`` select aisec's poisoning and explainability checks."""
    from aisec.cli.assess import _plan_from, assess

    ctx = assess.make_context("assess", ["-m", "digits-cnn", "-d", "digits", "-t", "poison,explain,robustness"])
    named = {"plan_file", "as_json", "quiet", "out", "policy_file", "store_url", "no_store", "allow_module",
             "allow_outside_paths", "resume_dir", "overwrite"}
    plan = _plan_from(None, {k: v for k, v in ctx.params.items() if k not in named})
    assert list(plan.checks) == ["poisoning", "explainability", "robustness"]


def test_digits_without_split_warns_that_it_includes_training_data():
    from aisec.cli.assess import _data_warnings, _plan_from, assess

    named = {"plan_file", "as_json", "quiet", "out", "policy_file", "store_url", "no_store", "allow_module",
             "allow_outside_paths", "resume_dir", "overwrite"}

    def plan(*args: str):
        ctx = assess.make_context("assess", ["-m", "digits-cnn", "-d", "digits", *args])
        return _plan_from(None, {k: v for k, v in ctx.params.items() if k not in named})

    (w,) = _data_warnings(plan())
    assert "--split test" in w and "trained on" in w
    assert _data_warnings(plan("--split", "test")) == []
