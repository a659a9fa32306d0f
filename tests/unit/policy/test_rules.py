"""Policy gate: Clouditor defaults, overrides, metric rules, requirements, and bad policies."""

from __future__ import annotations

import pytest

from aisec.core.errors import ConfigError
from aisec.policy.rules import (
    EXIT_POLICY_FAILED,
    UnknownMetricError,
    default_policy,
    evaluate_policy,
    load_policy,
    parse_policy,
)
from aisec.testing.evidence import fake_evidence

RUN = "policy-run"


def _curve(robust: list[float], success: list[float], eps: list[float]):
    out = []
    for i, (r, s, e) in enumerate(zip(robust, success, eps, strict=True)):
        p = {"attack": "pgd", "norm": "linf", "eps": e, "targeted": False}
        out.append(fake_evidence("robustness.robust_accuracy", r, run_id=RUN, index=2 * i, parameters=p))
        out.append(fake_evidence("robustness.attack_success_rate", s, run_id=RUN, index=2 * i + 1, parameters=p,
                                 higher_is_better=False))
    return out


def test_defaults_equal_clouditor_thresholds():
    rules = {r.metric: (r.operator, r.target) for r in default_policy().effective_rules()}
    assert rules == {
        "adversarialRobustnessScore": (">=", 0.5),
        "evasionEfficacyLevel": ("<", 33.0),
        "membershipInferenceResilience": ("<=", 0.5),
        "poisoningResilienceLevel": ("<=", 0.5),
        "poisonedDataLevel": ("<=", 5.0),
        "modelStealResilience": ("<", 70.0),
        "explainabilityEnabled": ("==", True),
        # aisec's own default beside Clouditor's: clean accuracy clearly above chance (issue 18, item 2)
        "model.accuracy_above_chance": (">=", 0.1),
    }


def test_robust_model_passes_and_reads_the_reference_eps():
    ev = _curve([0.9, 0.7, 0.2], [0.05, 0.25, 0.8], [0.01, 8 / 255, 0.3])
    report = evaluate_policy(ev)
    assert report.passed and report.exit_code == 0
    by = {r.metric: r for r in report.rules}
    assert by["adversarialRobustnessScore"].value == pytest.approx(0.7)  # at eps 8/255, not 0.3
    assert by["evasionEfficacyLevel"].value == pytest.approx(25.0)      # percent
    assert by["membershipInferenceResilience"].status == "skipped"
    assert by["explainabilityEnabled"].status == "skipped"
    sr05 = next(q for q in report.requirements if q.id == "AIC4/SR-05")
    assert sr05.status == "pass"


def test_weak_model_fails_with_reasons_per_requirement(tmp_path):
    ev = _curve([0.3], [0.6], [8 / 255])
    report = evaluate_policy(ev)
    assert not report.passed and report.exit_code == EXIT_POLICY_FAILED
    failed = {r.metric for r in report.failures}
    assert failed == {"adversarialRobustnessScore", "evasionEfficacyLevel"}
    assert "0.3 violates >= 0.5" in next(r.reason for r in report.failures if r.metric == "adversarialRobustnessScore")
    assert any(q.id == "AIACT/15(5)" and q.status == "fail" for q in report.requirements)
    assert "FAILED" in report.text() and "| AIC4/SR-05" in report.markdown()


def test_privacy_and_explainability_mappings():
    ev = [fake_evidence("privacy.mia_auc", 0.8, run_id=RUN, index=1, higher_is_better=False),
          fake_evidence("explainability.faithfulness_deletion", 0.7, run_id=RUN, index=2)]
    by = {r.metric: r for r in evaluate_policy(ev).rules}
    assert by["membershipInferenceResilience"].value == pytest.approx(0.6)  # advantage 2*AUC-1
    assert by["membershipInferenceResilience"].status == "fail"
    assert by["explainabilityEnabled"].status == "pass" and by["explainabilityEnabled"].value is True


def test_yaml_policy_overrides_and_metric_rules(tmp_path):
    f = tmp_path / "policy.yaml"
    f.write_text(
        "version: 1\n"
        "missing: fail\n"
        "reference_eps: {linf: 0.3}\n"
        "rules:\n"
        "  - {metric: adversarialRobustnessScore, operator: '>=', target: 0.1}\n"
        "  - metric: robustness.robust_accuracy\n"
        "    where: {attack: pgd, eps: 0.01}\n"
        "    operator: '>='\n"
        "    target: 0.88\n"
        "    use: conservative\n"
        "  - {metric: 'robustness.*', aggregate: all, operator: '>=', target: 0.0}\n",
        encoding="utf-8",
    )
    policy = load_policy(f)
    ev = _curve([0.9, 0.7, 0.2], [0.05, 0.25, 0.8], [0.01, 8 / 255, 0.3])
    report = evaluate_policy(ev, policy)
    by = {r.rule: r for r in report.rules}
    ars = next(r for r in report.rules if r.metric == "adversarialRobustnessScore")
    assert ars.value == pytest.approx(0.2) and ars.status == "pass"  # read at eps 0.3, own target 0.1
    cons = next(r for r in report.rules if r.metric == "robustness.robust_accuracy")
    assert cons.value == pytest.approx(0.85) and cons.status == "fail"  # CI low bound 0.85 < 0.88
    assert next(r for r in report.rules if r.metric == "robustness.*").status == "pass"
    # missing: fail turns rules without evidence into failures
    assert by["membershipInferenceResilience <= 0.5"].status == "fail"


def test_unknown_metric_is_a_specific_error_with_suggestion():
    with pytest.raises(UnknownMetricError, match=r"Did you mean 'robustness\.robust_accuracy'") as exc:
        parse_policy({"rules": [{"metric": "robustness.robust_acuracy", "operator": ">=", "target": 0.5}]})
    assert exc.value.metric == "robustness.robust_acuracy"
    assert isinstance(exc.value, ConfigError)
    with pytest.raises(UnknownMetricError):
        parse_policy({"rules": [{"metric": "adversarialRobustnesScore", "operator": ">=", "target": 0.5}]})


def test_malformed_policies(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="operator"):
        parse_policy({"rules": [{"metric": "robustness.clean_accuracy", "operator": "=>", "target": 0.5}]})
    with pytest.raises(ConfigError, match="threshold"):
        parse_policy({"threshold": 1})
    with pytest.raises(ConfigError, match="true/false"):
        parse_policy({"rules": [{"metric": "explainabilityEnabled", "operator": ">=", "target": True}]})


def test_metric_known_only_from_evidence_is_accepted():
    from aisec.policy.rules import Policy, Rule

    policy = Policy(defaults="none", rules=(Rule(metric="privacy.lira_auc", operator="<=", target=0.6),))
    ev = [fake_evidence("privacy.lira_auc", 0.55, run_id=RUN, higher_is_better=False)]
    assert evaluate_policy(ev, policy).passed
    with pytest.raises(UnknownMetricError):
        evaluate_policy([], policy)


def test_a_rule_can_require_reliable_robustness_numbers():
    """``robustness.reliable == 1`` gates on the robustness check's verdict: 0 (a flag fired) fails, 1 passes."""
    policy = parse_policy({"defaults": "none", "rules": [
        {"metric": "robustness.reliable", "operator": "==", "target": 1, "required": True}]})
    flagged = [fake_evidence("robustness.reliable", 0.0, run_id=RUN, unit="bool",
                             parameters={"flags": ["zero_gradients"], "attacks": ["pgd-linf"]})]
    report = evaluate_policy(flagged, policy)
    assert not report.passed and report.exit_code == EXIT_POLICY_FAILED
    assert report.rules[0].value == 0.0 and "violates == 1" in report.rules[0].reason
    assert "AIC4/SR-05" in report.rules[0].requirements
    ok = [fake_evidence("robustness.reliable", 1.0, run_id=RUN, unit="bool", parameters={"flags": []})]
    assert evaluate_policy(ok, policy).passed
    assert not evaluate_policy([], policy).passed  # required: no verdict is no pass


def test_robustness_score_quotes_the_worst_case_over_attacks():
    """With a per-sample worst case in the evidence, adversarialRobustnessScore reads it (it is ≤ every
    attack's own robust accuracy), at the reference eps."""
    ev = _curve([0.9, 0.7, 0.3], [0.1, 0.3, 0.7], [4 / 255, 8 / 255, 0.3])
    ev += [fake_evidence("robustness.worst_case_robust_accuracy", v, run_id=RUN, index=10 + i,
                         parameters={"norm": "linf", "eps": e, "attacks": ["pgd-linf", "square-linf"]})
           for i, (v, e) in enumerate([(0.8, 4 / 255), (0.55, 8 / 255), (0.2, 0.3)])]
    report = evaluate_policy(ev)
    ars = next(r for r in report.rules if r.metric == "adversarialRobustnessScore")
    assert ars.value == pytest.approx(0.55) and "worst_case" in ars.reason


def test_every_rule_has_plain_words_beside_its_id():
    """People read the verdict: each rule has a plain-words title, shown with the Clouditor/metric id beside it."""
    from aisec.policy.properties import PLAIN_TITLES, PROPERTIES

    assert set(PLAIN_TITLES) == set(PROPERTIES)
    report = evaluate_policy(_curve([0.3], [0.6], [8 / 255]))
    for r in report.rules:
        assert r.title and not any(c.isupper() for c in r.title.split()[0][1:]), r  # words, not camelCase
    score = next(r for r in report.rules if r.metric == "adversarialRobustnessScore")
    assert score.title == "Accuracy under the strongest attack at the reference budget"
    assert f"| {score.title} (`{score.rule}`) |" in report.markdown()


def test_report_templates_never_mention_the_seed_projects():
    """Reports are for the model's owners and auditors, not a history of how aisec started."""
    from pathlib import Path

    import aisec.report

    templates = Path(aisec.report.__file__).parent / "templates"
    for t in templates.glob("*.j2"):
        assert "AI-SEC" not in t.read_text(encoding="utf-8"), t.name
