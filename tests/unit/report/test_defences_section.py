"""The report's Defences table (issue 15, item 4): one row per defence run, fed by the run's summaries —
the robustness check on a model behind a preprocessing defence and each detector of the detection check."""

from __future__ import annotations

import pytest

from aisec.api import assess
from aisec.checks.robustness import (
    CurveSummary,
    PointSummary,
    RobustnessParams,
    WorstCaseSummary,
    WorstPointSummary,
    defence_summary,
)
from aisec.core.check import IntervalSummary
from aisec.defences.preprocess import DefendedTarget
from aisec.report.html import render
from aisec.report.markdown import render_markdown
from aisec.report.sections.defences import COLUMNS, defence_rows

CI = IntervalSummary(low=0.0, high=1.0, level=0.95, method="wilson")


def _curve(key: str, attack: str, acc: float, *, escalation: str | None = None, wrapper: str | None = None,
           eps: float = 8 / 255) -> CurveSummary:
    point = PointSummary(eps=eps, raw_robust_accuracy=acc, robust_accuracy=acc, ci=CI, success_rate=0.0,
                         safair_delta=0.0, median_distance=0.0)
    return CurveSummary(attack=attack, norm="linf", kind="fixed_eps", targeted=False, params={}, points=[point],
                        warnings=[], seconds=0.0, queries=0, example_eps=None, key=key, escalation=escalation,
                        wrapper=wrapper)


def test_defence_summary_reads_autoattack_adaptive_and_worst_case_at_the_reference_eps(digits_target,
                                                                                        digits_test_batch):
    x, y = digits_test_batch
    defended = DefendedTarget(digits_target, "bit-depth:3")
    curves = [_curve("pgd-linf", "pgd", 0.9), _curve("autoattack-linf", "autoattack", 0.7),
              _curve("pgd-linf+zero_gradients", "pgd", 0.4, escalation="zero_gradients"),
              _curve("square-linf+zero_gradients", "square", 0.5, escalation="zero_gradients"),
              _curve("pgd-linf+not_converged", "pgd", 0.1, escalation="not_converged"),  # not an adaptive attack
              _curve("pgd-far", "pgd", 0.0, eps=0.3)]  # another budget: not read
    worst = [WorstCaseSummary(norm="linf", attacks=[], points=[WorstPointSummary(eps=8 / 255, robust_accuracy=0.35,
                                                                                 ci=CI, attacks=[])])]
    params = RobustnessParams()
    d = defence_summary(defended, x, y, 0.8, curves, worst, None, params, 0.0)
    assert d is not None
    undefended = float((digits_target.predict(x).argmax(1) == y).float().mean())
    assert d.undefended_clean_accuracy == pytest.approx(undefended)
    assert d.clean_cost == pytest.approx(undefended - 0.8)
    assert (d.autoattack_robust_accuracy, d.adaptive_robust_accuracy) == (0.7, 0.4)
    assert d.adaptive_attacks == ["pgd-linf+zero_gradients", "square-linf+zero_gradients"]
    assert d.worst_robust_accuracy == 0.35 and d.safair_delta == pytest.approx(0.8 - 0.35)
    assert d.defence == "bit-depth:bits=3" and not d.differentiable and d.reliable is None
    # a model without a defence has no row
    assert defence_summary(digits_target, x, y, 0.8, curves, worst, None, params, 0.0) is None


@pytest.fixture(scope="module")
def run(digits_target, digits_split):
    data = digits_split[1].subset(range(60), name="digits-test-60")
    robustness = {"attacks": ["pgd"], "eps": [0.1], "samples": 30, "clever": {"enabled": False}, "examples": 0,
                  "reliability": {"escalate": False}, "reference_eps": {"linf": 0.1}, "save_adversarial": 0}
    main = assess(digits_target, data, checks={"robustness": robustness}, defence="gaussian-blur:sigma=1")
    main.related.append(assess(digits_target, data, checks={"detection": {
        "detectors": ["feature-squeezing"], "eps": 0.1, "samples": 60, "adaptive_steps": 10}}))
    return main


def test_the_table_has_a_row_per_defence_in_html_and_markdown(run):
    rows = defence_rows(run)
    assert [(r.defence, r.kind) for r in rows] == [("gaussian-blur:sigma=1,truncate=4", "preprocessing"),
                                                   ("feature-squeezing:fpr=0.05,bits=3,median=None", "detector")]
    blur, fs = rows
    s = run.results[0].summary
    assert blur.clean == s.clean_accuracy and blur.cost == pytest.approx(blur.undefended_clean - blur.clean)
    assert blur.budget == "linf ε=0.1" and blur.autoattack is None  # the ensemble did not run
    assert blur.safair_delta == pytest.approx(s.clean_accuracy - s.worst_case[0].points[0].robust_accuracy)
    det = run.related[0].results[0].summary.detectors[0]
    assert fs.adaptive == det.adaptive_robust_accuracy and fs.clean == det.clean_accuracy
    html = render(run)
    assert '<section id="defences"><h2>Defences</h2>' in html
    assert 'alt="rejection ROC" src="data:image/png;base64,' in html  # the detection check's own section
    assert all(c in html for c in ("robust acc (AutoAttack)", "gaussian-blur:sigma=1,truncate=4", "feature-squeezing"))
    md = render_markdown(run)
    table = md[md.index("## Defences"):].splitlines()
    assert table[4] == "| " + " | ".join(COLUMNS) + " |"
    assert table[6].startswith("| gaussian-blur:sigma=1,truncate=4 | preprocessing |")
    assert table[7].startswith("| feature-squeezing:fpr=0.05,bits=3,median=None | detector |")


def test_a_run_without_defence_has_no_section(digits_target, digits_split):
    data = digits_split[1].subset(range(20), name="digits-test-20")
    plain = assess(digits_target, data, checks={"robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 20,
                                                                "clever": {"enabled": False}, "examples": 0}})
    assert defence_rows(plain) == [] and "Defences" not in render(plain) and "## Defences" not in render_markdown(plain)
