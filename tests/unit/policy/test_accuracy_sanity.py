"""Issue 18, item 2: a run on a model that does not work on its data says so first and fails the
default policy.

Skill is ``(accuracy - chance) / (1 - chance)`` with chance = max(1/K, majority-class share of the
evaluated labels); below 0.1 the run warns at the top of the console, report.html and report.md, and
the default policy's rule ``model.accuracy_above_chance >= 0.1`` fails. The figures are exact counts
(accuracy k/n, chance a label share), so they are compared exactly (1e-12). Cases: digits CNN on
labels shuffled at random (a useless pairing, ~10 % on 10 classes), a constant "benign" answer on
breast-cancer (0.63 accuracy, exactly the majority share: skill 0, a trap 1/K = 0.5 would miss), and
the same CNN on its true labels (no warning, the rule passes).
"""

from __future__ import annotations

import pytest
import torch

from aisec.api import assess
from aisec.core.dataset import TensorDataset
from aisec.core.types import Modality
from aisec.data.builtin import breast_cancer
from aisec.policy.rules import evaluate_policy, parse_policy
from aisec.policy.sanity import MIN_SKILL, SKILL_METRIC, accuracy_skill, alerts
from aisec.targets.sklearn import ProbaTarget
from aisec.testing.evidence import fake_evidence

RULE = f"clean accuracy above chance ({SKILL_METRIC} >= {MIN_SKILL:g})"
CHEAP = {"robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 60, "clever": {"enabled": False}}}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _skill(run):
    ev = [e for e in run.evidence if e.metric == SKILL_METRIC]
    assert len(ev) == 1
    return ev[0]


def _rule(run):
    return next(r for r in run.verdict.rules if r.rule == RULE)


def test_skill_formula_and_policy_rule():
    assert accuracy_skill(0.12, 0.1) == pytest.approx(0.02 / 0.9)
    assert accuracy_skill(0.1, 0.1) == 0.0 and accuracy_skill(1.0, 0.3) == 1.0 and accuracy_skill(0.05, 0.1) < 0
    bad = [fake_evidence(SKILL_METRIC, 0.02, parameters={"clean_accuracy": 0.12, "chance": 0.1})]
    good = [fake_evidence(SKILL_METRIC, 0.9, parameters={"clean_accuracy": 0.91, "chance": 0.1})]
    r = evaluate_policy(bad)
    assert not r.passed and [x.rule for x in r.failures] == [RULE]
    assert next(x for x in evaluate_policy(good).rules if x.rule == RULE).status == "pass"
    assert alerts(good) == [] and "near or below chance" in alerts(bad)[0]
    # a policy may drop the defaults, or set its own threshold on the same metric
    assert all(x.rule != RULE for x in evaluate_policy(bad, parse_policy({"defaults": "none"})).rules)
    own = parse_policy({"rules": [{"metric": SKILL_METRIC, "operator": ">=", "target": 0.0}]})
    assert evaluate_policy(bad, own).passed


def test_useless_pairing_warns_first_and_fails(digits_target, digits_split, tmp_path, capsys):
    from aisec.cli.summary import print_summary

    _, test = digits_split
    x, y = test.x[:60], test.y[:60]
    shuffled = y[torch.randperm(60, generator=torch.Generator().manual_seed(1))]
    data = TensorDataset(x, shuffled, name="digits-wrong-labels", modality=Modality.IMAGE,
                         classes=[str(i) for i in range(10)])
    run = assess(digits_target, data, checks=CHEAP, out=tmp_path)
    clean = run.results[0].measurement("robustness.clean_accuracy").value
    s = _skill(run)
    share = int(torch.bincount(shuffled, minlength=10).max()) / 60
    chance = max(0.1, share)
    assert s.parameters["chance"] == pytest.approx(chance, abs=1e-6)
    assert s.value == pytest.approx(accuracy_skill(clean, chance), abs=1e-6) and s.value < MIN_SKILL
    assert s.interval is not None and s.interval.contains(s.value)
    assert _rule(run).status == "fail" and not run.verdict.passed
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    summary = html[html.index("Executive summary"):]
    assert summary.index("Useless model?") < summary.index("Verdict per requirement")
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert md.index("useless model?") < md.index("**Policy failed**")
    print_summary(run)
    out = capsys.readouterr().out
    assert out.lstrip().startswith("WARNING: useless model?") and "near or below chance" in out


def test_constant_answer_on_imbalanced_table_is_at_chance(tmp_path):
    data = breast_cancer("test")

    class Benign:
        def predict_proba(self, a):
            return torch.tensor([[0.0, 1.0]]).repeat(len(a), 1).numpy()

    target = ProbaTarget(Benign(), input_shape=(30,), num_classes=2, name="always-benign")
    run = assess(target, data, checks={"robustness": {
        "attacks": [{"name": "square", "params": {"max_queries": 3}}], "eps": [0.1], "samples": 120,
        "clever": {"enabled": False}}})
    clean = run.results[0].measurement("robustness.clean_accuracy").value
    share = int((data.y[:120] == 1).sum()) / 120
    assert clean == pytest.approx(share, abs=1e-12) and share > 0.5
    s = _skill(run)
    assert s.value == pytest.approx(0.0, abs=1e-6) and "majority class" in s.parameters["chance_basis"]
    assert _rule(run).status == "fail" and alerts(run.evidence)


def test_working_model_has_no_warning(digits_target, digits_split):
    _, test = digits_split
    run = assess(digits_target, test.subset(range(60), name="digits-60"), checks=CHEAP)
    s = _skill(run)
    assert s.value > 0.8 and _rule(run).status == "pass" and alerts(run.evidence) == []
