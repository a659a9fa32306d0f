"""Residual-risk rows from results the checks would hand back: each figure comes from the right measurement,
the attacker's cost is computed from queries, rate limit and price, and mitigations in place are recognised."""

from __future__ import annotations

from typing import Any

from aisec.core.check import Result
from aisec.core.evidence import Interval, Measurement
from aisec.core.run import Run
from aisec.threats.model import ThreatModel
from aisec.threats.planner import plan_for
from aisec.threats.residual import residual_risk


def _m(metric: str, value: float, n: int = 100, ci: tuple[float, float] | None = None, **params: Any) -> Measurement:
    return Measurement(metric=metric, value=value, unit="fraction", higher_is_better=False, sample_count=n,
                       interval=Interval(low=ci[0], high=ci[1], level=0.95, method="wilson") if ci else None,
                       parameters=params)


def _run(results: list[Result], **system: Any) -> Run:
    tm = ThreatModel.parse({
        "name": "api", "system": {"modality": "image", "access": "scores", "deployment": "cloud-api",
                                  "rate_limit": 100, **system},
        "attacker": {"goals": ["poisoning", "membership", "extraction"], "knowledge": "black",
                     "capabilities": {"query_budget": 500, "training_data_share": 0.04},
                     "costs": {"per_query": 0.002, "currency": "USD"}},
        "model": "digits-cnn", "data": "digits", "training_data": {"source": "digits", "options": {"split": "train"}},
    })
    return Run(run_id="r", plan=plan_for(tm), target=None, data=None, results=results)  # type: ignore[arg-type]


def test_poisoning_row_reads_the_largest_rate_within_the_share_and_the_share_needed() -> None:
    asr = [_m("poisoning.attack_success_rate", v, 60, (max(v - 0.1, 0), min(v + 0.1, 1)), attack="badnets", rate=r)
           for r, v in ((0.0, 0.02), (0.01, 0.4), (0.02, 0.93), (0.04, 1.0), (0.08, 1.0))]
    least = _m("poisoning.min_poison_rate", 0.02, 60, rates=[0, 0.01, 0.02, 0.04, 0.08], reached=True)
    run = _run([Result(check="poisoning", measurements=[*asr, least], params={}, seconds=12.0)])
    risk = residual_risk(run)
    assert risk is not None
    row = next(r for r in risk.rows if r.threat == "AML.T0020")
    assert row.status == "measured" and row.value == 1.0 and row.ci == (0.9, 1.0)
    assert "at rate 0.04" in (row.measured or "")  # 0.08 lies beyond the attacker's 4 %
    assert row.poison_share == 0.02 and "takes hold at 2.0% of the training data" in (row.cost or "")
    unreached = _m("poisoning.min_poison_rate", 0.08, 60, reached=False)
    row2 = next(r for r in residual_risk(_run([Result(check="poisoning", measurements=[*asr, unreached],
                                                      params={})])).rows if r.threat == "AML.T0020")  # type: ignore[union-attr]
    assert row2.poison_share is None and "no swept rate" in (row2.cost or "")


def test_privacy_and_extraction_rows_and_the_cost_in_time_and_money() -> None:
    priv = Result(check="privacy", params={}, measurements=[
        _m("privacy.mia_auc", 0.55, 200, (0.5, 0.6), attack="loss"),
        _m("privacy.mia_auc", 0.62, 200, (0.57, 0.67), attack="gap")])
    ext = Result(check="extraction", params={}, seconds=30.0, measurements=[
        _m("extraction.fidelity", 0.9, 300, (0.86, 0.93)), _m("extraction.queries", 1000.0, 300)])
    risk = residual_risk(_run([priv, ext]))
    assert risk is not None
    rows = {r.threat: r for r in risk.rows}
    mia = rows["AML.T0024.000"]
    assert mia.value == 0.62 and "gap" in (mia.measured or "")  # the strongest attack is the one quoted
    steal = rows["AML.T0024.002"]
    assert steal.value == 0.9
    assert "an attacker with 1,000 queries gets a copy that agrees on 90%" in (steal.result or "")
    assert "10.0 min at 100 queries/min" in (steal.cost or "") and "2.00 USD" in (steal.cost or "")
    # a rate limit counts as ATLAS M0004 in place; the rest is recommended
    assert any(m.startswith("AML.M0004") and "rate limit 100" in m for m in steal.in_place)
    assert any(m.startswith("AML.M0024") for m in steal.recommended)
    # poisoning was a goal but no poisoning result came back: not tested, and said so
    assert rows["AML.T0020"].status == "not tested" and "ran none of its checks" in (rows["AML.T0020"].why_not or "")


def test_a_defence_in_front_of_the_model_is_a_mitigation_in_place() -> None:
    run = _run([], defences=["median:size=3"])
    assert run.plan is not None and run.plan.model.defence == "median:size=3"
    risk = residual_risk(run)
    assert risk is not None
    backdoor = next(r for r in risk.rows if r.threat == "AML.T0043.004")
    assert any(m.startswith("AML.M0010 Input Restoration (median:size=3)") for m in backdoor.in_place)


def test_a_run_without_a_threat_model_has_no_residual_risk() -> None:
    run = _run([])
    run.plan = run.plan.model_copy(update={"threat_model": None}) if run.plan else None
    assert residual_risk(run) is None


def test_rows_cover_every_goal_and_say_why_nothing_ran() -> None:
    risk = residual_risk(_run([]))
    assert risk is not None
    assert {"AML.T0020", "AML.T0043.004", "AML.T0024.000", "AML.T0024.002"} <= {r.threat for r in risk.rows}
    assert all(r.status == "not tested" and r.why_not for r in risk.rows)


def test_a_fixed_eps_attack_counts_the_queries_of_one_run_at_the_budget() -> None:
    """Square runs once per eps of the grid: the curve's queries are their sum, the attacker pays for one run."""
    from aisec.core.check import DictSummary

    tm = ThreatModel.parse({
        "name": "e", "system": {"modality": "image", "access": "scores", "deployment": "cloud-api"},
        "attacker": {"goals": ["evasion-untargeted"], "knowledge": "black",
                     "capabilities": {"perturbation": {"domain": "linf", "budget": 0.1}, "query_budget": 1000}},
        "model": "digits-cnn", "data": "digits"})
    pts = [{"eps": e, "robust_accuracy": ra, "success_rate": 1 - ra, "ci": {"low": ra - 0.1, "high": ra + 0.05}}
           for e, ra in ((0.025, 0.9), (0.05, 0.7), (0.1, 0.5))]
    curves = [{"attack": "square", "norm": "linf", "kind": "fixed_eps", "targeted": False, "points": pts,
               "queries": 3 * 10 * 600, "seconds": 9.0, "params": {"max_queries": 1000}},
              {"attack": "hopskipjump", "norm": "linf", "kind": "min_norm", "targeted": False,
               "points": [{**p, "robust_accuracy": 0.8} for p in pts], "queries": 10 * 900, "seconds": 3.0,
               "params": {"max_queries": 1000}}]
    summary = DictSummary.of({"samples": 10, "curves": curves, "reliability": {"reliable": True, "flags": []}})
    run = Run(run_id="r", plan=plan_for(tm), target=None, data=None,  # type: ignore[arg-type]
              results=[Result(check="robustness", measurements=[], params={}, summary=summary)])
    risk = residual_risk(run)
    assert risk is not None
    row = next(r for r in risk.rows if r.threat == "AML.T0043.001")
    assert row.value == 0.5 and "square" in (row.measured or "")  # the strongest attack at eps 0.1
    assert row.queries_per_input == 600 and row.reliability == "reliable (no flag raised)"
    assert "an attacker with 1,000 queries per input succeeds on 50%" in (row.result or "")
