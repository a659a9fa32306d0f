"""The policy is judged once per run: the orchestrator judges it, the gate reuses the verdict."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aisec.core.errors import ConfigError
from aisec.policy.gate import Gate, judge
from aisec.policy.rules import EXIT_POLICY_FAILED, Policy, Rule, parse_policy
from aisec.testing.evidence import fake_run

CHECKS = {"robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 20, "clever": {"enabled": False}}}


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("AISEC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AISEC_STORE_URL", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def digits():
    from aisec.api import load_data

    return load_data("digits", {"split": "test"})


def _strict() -> Policy:
    return parse_policy({"rules": [{"metric": "adversarialRobustnessScore", "operator": ">=", "target": 0.99}]})


def test_assess_with_policy_and_store_judges_once(env, policy_evaluations):
    from aisec.cli.main import main
    from aisec.store import open_store

    policy = env / "policy.yaml"
    policy.write_text("rules:\n  - {metric: adversarialRobustnessScore, operator: '>=', target: 0.99}\n")
    out, url = env / "r", f"sqlite:///{env / 'e.db'}"
    res = CliRunner().invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-a", "fgsm",
                                    "--eps", "0.1", "-c", "20", "--clever-samples", "0", "-o", str(out), "-q",
                                    "--policy", str(policy), "--store", url])
    assert res.exit_code == EXIT_POLICY_FAILED, res.output
    assert len(policy_evaluations) == 1
    verdict = json.loads((out / "policy.json").read_text())
    assert verdict == json.loads((out / "result.json").read_text())["verdict"] and verdict["passed"] is False
    with open_store(url) as store:
        assert [r.status for r in store.runs()] == ["complete"]


def test_gate_reuses_the_verdict_of_a_run_judged_against_its_policy(env, digits_target, digits, policy_evaluations):
    from aisec.api import assess

    gate = Gate.open(policy=_strict())
    run = assess(digits_target, digits, checks=CHECKS, out=env / "r", policy=gate.policy)
    assert len(policy_evaluations) == 1 and run.judged and run.verdict is not None
    outcome = gate.finish(run)
    assert len(policy_evaluations) == 1  # not evaluated a second time
    assert outcome.policy is run.verdict and outcome.exit_code == EXIT_POLICY_FAILED
    assert json.loads((env / "r" / "policy.json").read_text()) == run.verdict.model_dump(mode="json")


def test_gate_judges_a_run_assessed_without_its_policy_once(env, digits_target, digits, policy_evaluations):
    from aisec.api import assess

    run = assess(digits_target, digits, checks=CHECKS)  # judged against the default policy
    default = run.verdict
    gate = Gate.open(policy=_strict())
    outcome = gate.finish(run)
    assert len(policy_evaluations) == 2 and outcome.policy is run.verdict is not default
    assert run.policy is gate.policy
    gate.finish(run)
    assert len(policy_evaluations) == 2


def test_a_policy_that_cannot_be_applied_is_a_run_error_judged_once(policy_evaluations):
    from dataclasses import dataclass, field

    @dataclass
    class _Run:
        evidence: list
        policy: Policy | None
        out: None = None
        run_id: str = "r"
        plan: None = None
        errors: list = field(default_factory=list)

    policy = Policy(defaults="none", rules=(Rule(metric="privacy.lira_auc", operator="<=", target=0.6),))
    run = _Run(fake_run(2, run_id="r"), policy)
    assert judge(run) is None and judge(run) is None
    assert len(policy_evaluations) == 1
    assert run.errors == [f"policy could not be applied: {run.verdict_error}"] and "lira_auc" in run.verdict_error
    with pytest.raises(ConfigError, match="policy could not be applied"):
        Gate(policy=policy).finish(run)
    assert len(policy_evaluations) == 1
