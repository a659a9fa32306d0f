"""Attack selection in the robustness check: ``all``, ``skip``, a fixed ``target_label`` and
untargetable attacks in a targeted run (digits CNN, 16 samples, one eps, few steps)."""

from __future__ import annotations

import pytest
import torch
from sklearn.linear_model import LogisticRegression

from aisec.checks._attack_spec import AttackSpec, select_attacks
from aisec.checks.robustness import RobustnessCheck, RobustnessParams
from aisec.core.errors import ConfigError
from aisec.core.registry import get_attack, names
from aisec.core.types import Capability
from aisec.targets.sklearn import ProbaTarget

WHITE = frozenset({Capability.GRADIENTS, Capability.LOGITS, Capability.PROBABILITIES})


@pytest.fixture(scope="module")
def tiny(digits_split):
    _, test = digits_split
    return test.subset(range(16), name="digits-test-16")


@pytest.fixture(scope="module")
def logreg(digits_split):
    train, _ = digits_split
    x = train.x.reshape(len(train), -1).numpy()
    clf = LogisticRegression(max_iter=200).fit(x, train.y.numpy())
    return ProbaTarget(clf, input_shape=(1, 8, 8), num_classes=10, name="logreg")


def _fast(**kw):
    return RobustnessParams(samples=16, eps=[0.1], eps_l2=[1.0], reference_eps={}, clever={"enabled": False},
                            examples=0, **kw)


def test_all_expands_to_every_attack_the_target_takes(logreg):
    black = logreg.spec.capabilities
    got, notes = select_attacks([AttackSpec(name="all")], family="evasion", capabilities=black, skip=[])
    chosen = {a.name for a in got}
    for name in names("evasion"):
        info = get_attack(name)
        if info.requires <= black and info.natural_norm in info.norms:
            assert name in chosen
        else:
            assert name not in chosen
            assert any(f"'{name}' skipped" in n and "gradients" in n for n in notes), (name, notes)
    assert chosen and "pgd" not in chosen  # white-box attacks need gradients


def test_all_respects_norm_targeted_skip_and_params():
    spec = AttackSpec(name="all", norm="l2", params={"steps": 3})
    got, notes = select_attacks([spec], family="evasion", capabilities=WHITE, skip=["cw", "boundary"])
    chosen = {a.name for a in got}
    assert not chosen & {"cw", "boundary"}
    assert all("l2" in {n.value for n in get_attack(a).norms} for a in chosen)
    assert any("'fgsm'" not in n and "not 'l2'" in n for n in notes) or all(
        "l2" in {n.value for n in get_attack(a).norms} for a in names("evasion")
    )
    for a in got:  # steps only where the attack declares it
        assert ("steps" in a.params) == ("steps" in get_attack(a.name).cls.Params.model_fields)
    tgt, tnotes = select_attacks([AttackSpec(name="all")], family="evasion", capabilities=WHITE, skip=[],
                                 targeted=True)
    assert all(get_attack(a.name).targeted for a in tgt)
    assert any("'deepfool' skipped: it cannot be targeted" in n for n in tnotes)


def test_skip_errors_are_specific():
    with pytest.raises(ConfigError, match=r"unknown attack.*'pgdd'"):
        select_attacks([AttackSpec(name="all")], family="evasion", capabilities=WHITE, skip=["pgdd"])
    with pytest.raises(ConfigError, match="no attack left"):
        select_attacks([AttackSpec(name="pgd")], family="evasion", capabilities=WHITE, skip=["pgd"])


def test_all_on_a_black_box_runs_and_notes_the_skipped(logreg, tiny):
    params = _fast(attacks=[{"name": "all", "params": {"max_queries": 20}}],
                   skip="boundary,hopskipjump,simba,gaussian-noise,uniform-noise,transfer")
    res = RobustnessCheck().run(logreg, tiny, params)
    ran = {c["attack"] for c in res.summary["curves"]}
    assert ran == {"square"}
    assert any("'pgd' skipped" in w and "gradients" in w for w in res.warnings)


def test_skip_flag_and_target_label_flag_reach_the_plan():
    flags = {k.dest: None for k in RobustnessCheck.flags}
    flags |= {"attacks": ["all"], "skip": ["jsma"], "target_label": 3, "steps": 2}
    r = RobustnessCheck.from_flags({}, flags, {})
    p = RobustnessParams(**r)
    assert p.skip == ["jsma"] and p.target_label == 3
    assert p.attacks[0].name == "all" and p.attacks[0].params == {"steps": 2}


def test_fixed_target_label_leaves_its_class_out(digits_target, tiny):
    k = 3
    params = _fast(attacks=[{"name": "pgd", "params": {"steps": 5}}, "deepfool"], target_label=k)
    res = RobustnessCheck().run(digits_target, tiny, params)
    # deepfool cannot be targeted: skipped with a note, the run goes on (a reliability rerun may follow)
    assert [c["attack"] for c in res.summary["curves"] if c["escalation"] is None] == ["pgd"]
    assert any("'deepfool' skipped: it cannot be targeted" in w for w in res.warnings)
    y = tiny.y[:16]
    own = int((y == k).sum())
    assert own > 0
    assert any(f"labelled {k}" in w and f"{16 - own} of 16" in w for w in res.warnings)
    ra = res.measurement("robustness.robust_accuracy", attack="pgd", targeted=True)
    asr = res.measurement("robustness.attack_success_rate", attack="pgd", targeted=True)
    assert ra.sample_count == 16 - own and ra.parameters["target_label"] == k
    pred = torch.as_tensor(res.tables["samples"]["pred_clean"])
    assert asr.sample_count == int(((pred == y) & (y != k)).sum())
    fooled = torch.as_tensor(res.tables["samples"]["pgd-linf-targeted@0.1:fooled"])
    assert not bool(fooled[y == k].any())
    assert asr.value > 0


def test_bad_target_label(digits_target, tiny):
    with pytest.raises(ConfigError, match="not a class"):
        RobustnessCheck().run(digits_target, tiny, _fast(attacks=["pgd"], target_label=10))


def test_default_attacks_adapt_to_a_target_without_gradients():
    from aisec.checks.robustness import default_attacks

    scores = frozenset({Capability.PROBABILITIES, Capability.QUERY_BUDGET})
    labels = frozenset({Capability.LABELS_ONLY})
    assert [a.name for a in default_attacks(RobustnessParams(), WHITE)[0]] == ["fgsm", "pgd"]
    got, note = default_attacks(RobustnessParams(), scores)
    assert [a.name for a in got] == ["square", "hopskipjump"] and "scores but no gradients" in note[0]
    got, note = default_attacks(RobustnessParams(), labels)
    assert [a.name for a in got] == ["hopskipjump"] and "predicted labels only" in note[0]
    # attacks the user named are kept, even the white-box ones (they then fail loudly, naming the cause)
    named = RobustnessParams(attacks=["fgsm"])
    assert [a.name for a in default_attacks(named, scores)[0]] == ["fgsm"] and default_attacks(named, scores)[1] == []


def test_black_box_without_attacks_runs_query_attacks(logreg, tiny):
    params = RobustnessParams(samples=4, eps=[0.1], clever={"enabled": False}, examples=0, skip=["hopskipjump"])
    res = RobustnessCheck().run(logreg, tiny, params)  # before: fgsm needs gradients, the run failed
    assert [c["attack"] for c in res.summary["curves"]] == ["square"]
    assert any("default attacks are the query attacks" in w for w in res.warnings)
