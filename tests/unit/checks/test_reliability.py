"""Reliability verdicts of the robustness check, the per-sample worst case, and escalation.

Models: the digits CNN (tests/conftest.py) and wrappers of it that break gradient attacks the way
defences do: outputs replaced by ±10 (zero gradients, the SAFAIR contest winner's trick), a forward
that detaches (no gradient path), input noise on every call (randomized), a softmax at the end
(probabilities as logits). Samples ≤ 64, CLEVER off, Square capped at 200 queries.

Tolerances and why:
- ±10 model: PGD cannot move (robust accuracy 0.91 at eps 0.2 on these 48 samples) while Square with
  200 queries reaches ≈0.6; the test asks only that the escalated worst case lies more than the PGD
  interval's half-width below PGD (the flag's own rule), so an escalation that finds nothing fails.
- Clean model, seeds 0-2: no flag at all; the calibration margin (see ``still_improving``) is a
  factor 2 on the digits CNN, so a seed that flags means a real change.
- Worst case: exact (≤ every attack's robust accuracy at the same eps and norm; a property over
  random per-sample outcomes, and on a real run).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aisec.checks._reliability import (
    ESCALATION,
    CurveRecord,
    Remedy,
    blackbox_flags,
    fgsm_flags,
    near_chance_flag,
    rising_flags,
    worst_case,
)
from aisec.checks.robustness import RobustnessCheck, RobustnessParams, _curve_from_step, _curve_to_step
from aisec.targets.torch import TorchTarget

FAST = {"square_queries": 200}


class PlusMinusTen(torch.nn.Module):
    """+10 for the predicted class, -10 elsewhere: same predictions, zero gradients everywhere."""

    def __init__(self, m: torch.nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.m(x)
        return 10 * torch.sign(z - z.amax(1, keepdim=True) + 1e-6)


class Detached(PlusMinusTen):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x).detach()


class Noisy(PlusMinusTen):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m((x + 0.1 * torch.randn_like(x)).clamp(0, 1))


class Softmaxed(PlusMinusTen):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.m(x), 1)


@pytest.fixture(scope="module")
def data(digits_split):
    return digits_split[1].subset(range(48), name="digits-48")


def _wrap(cls, digits_model):
    return TorchTarget(cls(digits_model), input_shape=(1, 8, 8), num_classes=10, name=cls.__name__, device="cpu")


def _run(target, data, **kw):
    params = RobustnessParams(**{"attacks": ["pgd"], "eps": [0.2], "samples": 48, "clever": {"enabled": False},
                                 "reliability": FAST, **kw})
    return RobustnessCheck().run(target, data, params)


def _flags(res):
    return {f.id for f in res.summary.reliability.flags}


def test_zero_gradients_flagged_and_square_finds_lower_robust_accuracy(digits_model, data):
    res = _run(_wrap(PlusMinusTen, digits_model), data)
    assert {"zero_gradients", "blackbox_beats_whitebox"} <= _flags(res)
    assert res.measurement("robustness.reliable").value == 0.0
    esc = {(e.flag, e.attack): e for e in res.summary.reliability.escalations}
    assert esc[("zero_gradients", "square")].status == "ran"
    pgd = res.measurement("robustness.robust_accuracy", attack="pgd", eps=0.2)
    sq = res.measurement("robustness.robust_accuracy", attack="square", eps=0.2, escalation="zero_gradients")
    worst = res.measurement("robustness.worst_case_robust_accuracy", norm="linf", eps=0.2)
    assert pgd.value > 0.8  # the masking works on PGD ...
    assert worst.value <= sq.value < pgd.interval.low  # ... and the escalation sees through it
    assert {"pgd-linf", "square-linf+zero_gradients"} <= set(worst.parameters["attacks"])
    assert any(w.startswith("[zero_gradients]") for w in res.warnings)


def test_no_gradient_path_is_flagged_not_a_crash(digits_model, data):
    target = _wrap(Detached, digits_model)
    from aisec.attacks.base import run_attack

    with pytest.raises(RuntimeError, match="does not require grad"):  # what the check used to die of
        run_attack("pgd", target, data.x[:4], data.y[:4], {"eps": 0.1})
    res = _run(target, data, attacks=["fgsm", "pgd"], clever={"samples": 2})
    assert "no_gradient_path" in _flags(res)
    assert [c.key for c in res.summary.curves] == ["square-linf+no_gradient_path", "transfer-linf+no_gradient_path"]
    assert any("pgd (linf) skipped" in w for w in res.warnings)
    assert any("CLEVER skipped" in w for w in res.warnings)
    worst = res.measurement("robustness.worst_case_robust_accuracy", norm="linf", eps=0.2)
    assert worst.value < res.measurement("robustness.clean_accuracy").value  # the black box did fool some


def test_randomized_model_is_flagged_and_asks_for_eot(digits_model, data):
    res = _run(_wrap(Noisy, digits_model), data, attacks=["fgsm"])
    assert "randomized" in _flags(res)
    esc = [e for e in res.summary.reliability.escalations if e.flag == "randomized"]
    assert esc and esc[0].attack == "pgd" and "EOTTarget" in esc[0].remedy
    assert esc[0].status == "ran" or "not available" in esc[0].note


def test_softmax_outputs_are_flagged(digits_model, data):
    res = _run(_wrap(Softmaxed, digits_model), data, attacks=["fgsm"])
    assert "probability_outputs" in _flags(res)
    remedies = {e.remedy for e in res.summary.reliability.escalations if e.flag == "probability_outputs"}
    assert "pgd (loss=dlr)" in remedies


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normal_model_is_reliable_without_false_flags(digits_target, data, seed):
    res = _run(digits_target, data, attacks=["fgsm", "pgd"], eps=[0.05, 0.1, 0.2], seed=seed)
    rel = res.summary.reliability
    assert rel.reliable and not rel.flags and not rel.escalations, [f.detail for f in rel.flags]
    assert res.measurement("robustness.reliable").value == 1.0
    assert res.summary.worst_case[0].points[0].attacks == ["fgsm-linf", "pgd-linf"]


def test_worst_case_never_above_any_attack_on_a_real_run(digits_target, data):
    res = _run(digits_target, data, attacks=["fgsm", "pgd", {"name": "deepfool", "norm": "linf"}],
               eps=[0.05, 0.1])
    for w in (m for m in res.measurements if m.metric == "robustness.worst_case_robust_accuracy"):
        each = [m.value for m in res.measurements if m.metric == "robustness.robust_accuracy"
                and m.parameters["norm"] == w.parameters["norm"] and m.parameters["eps"] == w.parameters["eps"]]
        assert len(each) == 3 and w.value <= min(each) + 1e-12
    table = res.tables["samples"]
    correct = table["label"] == table["pred_clean"]
    for p in res.summary.worst_case[0].points:
        assert (correct & ~table[f"worst-linf@{p.eps:g}:fooled"]).mean() == pytest.approx(p.robust_accuracy)


def test_not_converged_is_rerun_with_more_steps(digits_target, data):
    # 5 tiny steps cannot reach the eps-ball's edge: the margin is still climbing at the last step
    res = _run(digits_target, data, attacks=[{"name": "pgd", "params": {"steps": 5, "step_size": 0.004}}],
               eps=[0.1])
    assert "not_converged" in _flags(res)
    rerun = next(c for c in res.summary.curves if c.escalation == "not_converged")
    assert rerun.params["steps"] == 25 and rerun.key == "pgd-linf+not_converged"
    first = res.measurement("robustness.robust_accuracy", attack="pgd", eps=0.1, steps=5)
    again = res.measurement("robustness.robust_accuracy", attack="pgd", eps=0.1, steps=25)
    assert again.value < first.value
    assert len(rerun.loss_traces[0]) == 25


def test_unregistered_remedy_is_skipped_with_a_note(digits_model, data, monkeypatch):
    monkeypatch.setitem(ESCALATION, "zero_gradients", (Remedy("no-such-attack"), Remedy("square")))
    res = _run(_wrap(PlusMinusTen, digits_model), data, reliability={"square_queries": 20})
    esc = {e.attack: e for e in res.summary.reliability.escalations if e.flag == "zero_gradients"}
    assert esc["no-such-attack"].status == "skipped" and "not registered" in esc["no-such-attack"].note
    assert esc["square"].status == "ran"


def test_loss_traces_survive_the_checkpoint_step():
    curve = {"attack": "pgd", "norm": "linf", "kind": "fixed_eps", "targeted": False, "params": {},
             "points": [{"eps": 0.1, "raw_robust_accuracy": 0.5}], "warnings": [], "seconds": 1.0, "queries": 3,
             "example_eps": 0.1, "loss_traces": [[-3.0, -2.0, -1.5]], "fooled": [torch.tensor([True, False])],
             "distances": [np.array([0.1, np.nan])], "preds": [torch.tensor([1, 2])]}
    back = _curve_from_step(*_curve_to_step(curve))
    assert back["loss_traces"] == [[-3.0, -2.0, -1.5]]


def _rec(key, norm="linf", eps=(0.1, 0.2), robust=(40, 30), raw=(0.8, 0.6), black=False, attack="pgd",
         fooled=None):
    return CurveRecord(key=key, attack=attack, norm=norm, targeted=False, blackbox=black, iterative=attack != "fgsm",
                       eps=list(eps), robust=list(robust), raw=list(raw), fooled=fooled or [])


def test_curve_flags_on_synthetic_curves():
    assert rising_flags(_rec("a", raw=(0.5, 0.6)))[0].eps == (0.2,)
    assert not rising_flags(_rec("a", raw=(0.6, 0.6)))
    # black box at 20/64 vs white box 40/64 (Wilson low ≈ 0.50) is beyond the CI; 38/64 is not
    assert blackbox_flags([_rec("w"), _rec("b", robust=(20, 10), black=True, attack="square")], 64)
    assert not blackbox_flags([_rec("w"), _rec("b", robust=(38, 29), black=True, attack="square")], 64)
    assert fgsm_flags([_rec("f", attack="fgsm", raw=(0.5, 0.3)), _rec("p", raw=(0.8, 0.3))], 64)[0].eps == (0.1,)


def test_near_chance_limit():
    assert near_chance_flag(12, 100, 10) is not None  # 0.12 ≤ 0.15
    assert near_chance_flag(30, 100, 10) is None
    assert near_chance_flag(58, 100, 2) is not None and near_chance_flag(80, 100, 2) is None
    assert near_chance_flag(2, 10, 10) is not None  # 0.2 > 0.15, but 10 samples cannot tell it from guessing


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_worst_case_is_below_every_attack(seed, k):
    rng = np.random.default_rng(seed)
    n = 40
    correct = rng.random(n) < 0.8
    recs = []
    for i in range(k):
        eps = sorted(rng.choice([0.05, 0.1, 0.2, 0.3], size=rng.integers(1, 4), replace=False).tolist())
        fooled, acc = [], np.zeros(n, dtype=bool)
        for _ in eps:  # each curve is cumulative over its own grid, as the check keeps it
            acc = acc | (rng.random(n) < 0.3)
            fooled.append(acc.copy())
        recs.append(_rec(f"a{i}", eps=eps, robust=[int((correct & ~f).sum()) for f in fooled], raw=[None] * len(eps),
                         fooled=fooled))
    points = worst_case(correct, recs, "linf")
    assert [p.eps for p in points] == sorted({e for r in recs for e in r.eps})
    for p in points:
        assert p.robust <= int(correct.sum())
        for r in recs:
            if p.eps in r.eps:
                assert p.robust <= r.robust[r.eps.index(p.eps)]
    assert all(b.robust <= a.robust for a, b in itertools.pairwise(points))


def test_report_shows_the_verdict_first_and_the_policy_can_gate_on_it(digits_model, data, tmp_path):
    from aisec.api import assess
    from aisec.policy.rules import evaluate_policy, parse_policy

    run = assess(_wrap(PlusMinusTen, digits_model), data.subset(range(24), name="digits-24"), checks={
        "robustness": {"attacks": ["pgd"], "eps": [0.2], "samples": 24, "clever": {"enabled": False},
                       "examples": 0, "reliability": {"square_queries": 20}}}, out=tmp_path)
    html = (tmp_path / "report.html").read_text()
    start = html.index("Robustness — how easily")
    assert start < html.index("NOT RELIABLE", start) < html.index("zero_gradients", start) \
        < html.index("the number to quote", start) < html.index("Per attack and", start)
    md = (tmp_path / "report.md").read_text()
    assert md.index("**Reliability:** NOT RELIABLE (zero_gradients") < md.index("| robustness.clean_accuracy")
    policy = parse_policy({"defaults": "none", "rules": [
        {"metric": "robustness.reliable", "operator": "==", "target": 1}]})
    assert not evaluate_policy(run.evidence, policy).passed
