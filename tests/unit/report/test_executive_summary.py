"""The executive summary is decision-ready: the reference eps is measured (not the nearest grid point), a
privacy check that ran enters the verdict, caveats are listed apart from the riskiest findings."""

from __future__ import annotations

import re

import pytest

from aisec.api import assess
from aisec.data.builtin import digits
from aisec.policy.rules import parse_policy
from aisec.report.html import render
from aisec.report.markdown import render_markdown
from aisec.report.verdict import is_caveat, requirement_rows, verdict_lines

ROBUSTNESS = {"attacks": ["fgsm"], "eps": [0.02, 0.1], "eps_l2": [], "samples": 40, "clever": {"enabled": False},
              "reliability": {"enabled": False}, "examples": 0}


@pytest.fixture(scope="module")
def small(digits_split):
    return digits_split[1].subset(range(40), name="digits-test-40")


@pytest.fixture(scope="module")
def run(digits_target, small):
    main = assess(digits_target, small, checks={"robustness": dict(ROBUSTNESS)})
    # a privacy check on another model of the same report (as the demo's over-fitted model is)
    main.related.append(assess(digits_target, digits(split="train"),
                               checks={"privacy": {"attacks": ["loss"], "samples": 100, "shapr": {"enabled": False},
                                                   "examples": 0}}))
    return main


def test_the_reference_eps_is_added_to_the_grid_and_quoted(run):
    curve = run.results[0].summary.curves[0]
    assert [p.eps for p in curve.points] == pytest.approx([0.02, 8 / 255, 0.1])
    assert run.results[0].summary.grid_notes == [
        "8/255 added to the linf eps grid (fgsm-linf): it is the reference budget the verdict reads robustness at"]
    rule = next(r for r in run.verdict.rules if r.metric == "evasionEfficacyLevel")
    assert "fgsm/linf at eps 0.03137" in rule.reason and "eps 0.02" not in rule.reason
    assert "8/255 added to the linf eps grid" in render(run) and "8/255 added" in render_markdown(run)


def test_a_policy_budget_is_measured_too(digits_target, small):
    policy = parse_policy({"reference_eps": {"linf": 0.06}})
    r = assess(digits_target, small, checks={"robustness": dict(ROBUSTNESS)}, policy=policy)
    assert [p.eps for p in r.results[0].summary.curves[0].points] == pytest.approx([0.02, 0.06, 0.1])
    rule = next(x for x in r.verdict.rules if x.metric == "evasionEfficacyLevel")
    assert "at eps 0.06" in rule.reason
    # a grid that has the budget (to 0.1 %) gets nothing added
    again = assess(digits_target, small, checks={"robustness": {**ROBUSTNESS, "eps": [0.0314, 0.1]}})
    assert [p.eps for p in again.results[0].summary.curves[0].points] == pytest.approx([0.0314, 0.1])
    assert not again.results[0].summary.grid_notes


def test_privacy_measured_on_a_related_model_enters_the_verdict(run):
    own = next(r for r in run.verdict.rules if r.metric == "membershipInferenceResilience")
    assert own.status == "skipped"  # the main model's own evidence has no privacy record ...
    lines = [x for x in verdict_lines(run) if x.metric == "membershipInferenceResilience"]
    related = next(r for r in run.related[0].verdict.rules if r.metric == "membershipInferenceResilience")
    assert len(lines) == 1 and lines[0].status == related.status != "skipped"  # ... the related run's has
    assert lines[0].model == "digits-cnn" and "privacy.mia_auc" in lines[0].measured_at
    md = render_markdown(run)
    line = next(x for x in md.splitlines() if "`membershipInferenceResilience <= 0.5`" in x and x.startswith("- "))
    assert "[on digits-cnn]" in line and "not measured" not in line
    # only a rule no check measured stays "not measured"
    steal = next(x for x in verdict_lines(run) if x.metric == "modelStealResilience")
    assert steal.status == "skipped" and "not measured" in steal.reason


def test_caveats_are_listed_apart_from_the_riskiest_findings(run):
    html = render(run)
    caveat = "TPR at 0.1% FPR is not reported"
    assert any(caveat in w for r in run.related[0].results for w in r.warnings)
    findings = html[html.index("Riskiest findings"):html.index("The verdict, line by line")] \
        if "Riskiest findings" in html else ""
    assert caveat not in findings
    caveats = html[html.index('id="caveats"'):html.index("Verdict per requirement")]
    assert caveat in caveats
    md = render_markdown(run)
    assert re.search(r"### Caveats\n\n.*\n\n- digits-cnn privacy: TPR at 0\.1% FPR is not reported", md)


@pytest.mark.parametrize(("warning", "caveat"), [
    ("[not_converged] [pgd-l2] pgd (l2, 20 steps): the objective was still rising", True),
    ("online LiRA with 4 reference models estimates a variance per record from few samples", True),
    ("no swept rate up to 0.1 reached ASR ≥ 0.9; min_poison_rate is a lower bound", True),
    ("neural-cleanse suspects a backdoor targeting class 3 (anomaly index 4.1 > 3)", False),
    ("clean accuracy fell by 0.080 under poisoning: the backdoor is not stealthy", False),
])
def test_statistical_caveats_are_told_from_findings(warning, caveat):
    assert is_caveat(warning) is caveat


def test_the_requirement_table_counts_what_a_related_run_measured(run):
    """Issue 18 #4: the per-requirement table agrees with the verdict lines, not with this model's evidence alone."""
    rule = next(r for r in run.verdict.rules if r.metric == "membershipInferenceResilience")
    own = [q for q in run.verdict.requirements if rule.rule in q.rules]
    assert own and all(q.status == "not_assessed" for q in own if q.rules == (rule.rule,))
    rows = {q.id: q for q in requirement_rows(run)}
    related = next(r for r in run.related[0].verdict.rules if r.metric == "membershipInferenceResilience")
    for q in own:
        row = rows[q.id]
        assert f"{rule.rule}: {related.status} (on digits-cnn)" in row.reasons
        assert row.status != "not_assessed"
    # a requirement no check measured stays not assessed, in both renderings
    html, md = render(run), render_markdown(run)
    for q in own:
        cell = f"| {q.id} {q.title} | {rows[q.id].status.replace('_', ' ')} |"
        assert cell in md
        assert f"{q.id} {q.title}</td>" in html
    assert any(r.status == "not_assessed" for r in rows.values())
