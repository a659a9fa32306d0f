from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aisec.checks.privacy import PrivacyCheck, PrivacyParams, complementary_split, overlap
from aisec.core.dataset import TensorDataset
from aisec.core.errors import CapabilityError, ConfigError, DataError, ShapeError
from aisec.core.types import Modality
from aisec.models.recipe import TrainingRecipe

RECIPE = TrainingRecipe(architecture="tabular-mlp", kwargs={"hidden": 128}, epochs=80, batch_size=25, lr=3e-3)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread synchronisation costs more than it saves
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def members():
    from aisec.data.builtin import digits

    return digits(split="train")


@pytest.fixture(scope="module")
def threshold_result(digits_target, members):
    params = PrivacyParams(attacks=["loss", "confidence", "gap"], examples=4)
    return PrivacyCheck().run(digits_target, members, params)


def test_builtin_split_gets_its_complement_and_metrics_are_consistent(threshold_result, members):
    r = threshold_result
    s = r.summary
    assert s["members"] == len(members) and s["nonmembers"] == 539
    assert "test split" in s["nonmember_source"]
    assert {a["key"] for a in s["attacks"]} == {"loss", "confidence", "gap"}
    for m in r.measurements:
        assert m.metric.startswith("privacy.")
        if m.interval is not None:
            assert m.interval.contains(m.value), m
    # 539 non-members cannot resolve 0.1% FPR: no such measurement, and a warning says why.
    assert not [m for m in r.measurements if m.metric == "privacy.mia_tpr_at_0.1pct_fpr"]
    assert len([m for m in r.measurements if m.metric == "privacy.mia_tpr_at_1pct_fpr"]) == 3
    assert any("0.1% FPR" in w and "1000" in w for w in r.warnings)
    # The table reproduces the AUC; SHAPr values are per member, NaN for non-members.
    t = r.tables["samples"]
    mem = t["set"] == "member"
    from aisec.metrics.membership import auc_delong

    auc, _, _ = auc_delong(t["score:loss"][mem], t["score:loss"][~mem])
    assert auc == pytest.approx(r.measurement("privacy.mia_auc", attack="loss").value)
    assert np.isfinite(t["shapr"][mem]).all() and np.isnan(t["shapr"][~mem]).all()
    shapr = r.measurement("privacy.shapr_score")
    assert shapr.value == pytest.approx(float(t["shapr"][mem].mean()))
    assert r.images["shapr_riskiest"]["x"].shape == (4, 1, 8, 8)
    assert r.threats == ("AML.T0024.000",)
    json.dumps(r.params)


def test_report_says_what_ran_and_headlines_members_at_risk(threshold_result, digits_target, members):
    """Without a recipe only threshold attacks run: the report must not claim shadow/LiRA/RMIA models were
    trained, must name them as not run and why, and must headline the members at risk, not SHAPr's mean (which
    equals the K-NN accuracy on non-members by construction)."""
    from aisec.core.run import Run
    from aisec.report.sections.privacy import privacy_section

    html = privacy_section(threshold_result, Run(run_id="r", plan=None, target=digits_target, data=members))
    assert "Attacks run: <b>loss, confidence, gap</b>" in html
    assert "not run: <b>lira, rmia, shadow</b>" in html and "no training recipe" in html
    assert "reference models" not in html and "shadow models" not in html
    shapr = threshold_result.summary.shapr
    assert f"{100 * shapr.at_risk_fraction:.1f}%</b><span>members at membership risk" in html


def test_members_that_were_never_seen_do_not_leak(digits_target):
    from aisec.data.builtin import digits

    test = digits(split="test")
    fake_members = test.subset(range(270), name="digits-test[:270]")
    held_out = test.subset(range(270, 539), name="digits-test[270:]")
    r = PrivacyCheck().run(digits_target, fake_members,
                           PrivacyParams(attacks=["loss"], nonmembers=held_out, shapr={"enabled": False}))
    auc = r.measurement("privacy.mia_auc", attack="loss")
    assert auc.interval.contains(0.5)


def test_bad_inputs_fail_before_any_work(digits_target, members):
    check = PrivacyCheck()
    overlapping = members.subset(range(50), name="digits-train[:50]")
    with pytest.raises(DataError, match="both the members"):
        check.run(digits_target, members, PrivacyParams(attacks=["loss"], nonmembers=overlapping))
    other_shape = TensorDataset(torch.rand(20, 1, 4, 4), torch.arange(20) % 10, name="small", modality=Modality.IMAGE)
    with pytest.raises(ShapeError, match="per-sample shape"):
        check.run(digits_target, members, PrivacyParams(attacks=["loss"], nonmembers=other_shape))
    custom = TensorDataset(torch.rand(30, 1, 8, 8), torch.arange(30) % 10, name="mine", modality=Modality.IMAGE)
    with pytest.raises(ConfigError, match="needs non-members"):
        check.run(digits_target, custom, PrivacyParams(attacks=["loss"]))
    with pytest.raises(ConfigError, match="recipe"):
        check.run(digits_target, members, PrivacyParams(attacks=["lira"]))
    with pytest.raises(ConfigError, match="listed twice"):
        check.run(digits_target, members, PrivacyParams(attacks=["loss", "loss"]))
    with pytest.raises(ConfigError, match="unknown membership"):
        check.run(digits_target, members, PrivacyParams(attacks=["psychic"]))
    with pytest.raises(ValueError):
        PrivacyParams(fprs=[0.0])
    with pytest.raises(ValueError):
        PrivacyParams(attack=["loss"])  # extra="forbid": typos are errors


def test_overlap_and_complement_helpers(members):
    from aisec.data.builtin import digits

    assert overlap(members.x[:10], members.x[5:20]).tolist() == list(range(5, 10))
    found = complementary_split(members, members.x[:40])
    assert found is not None and found[0].info.digest == digits(split="test").info.digest
    assert complementary_split(members, torch.rand(3, 1, 8, 8)) is None


@pytest.fixture(scope="module")
def mlp_setup(members):
    from aisec.data.builtin import digits
    from aisec.targets.torch import TorchTarget

    mem = members.subset(range(100), name="digits-train[:100]")
    non = digits(split="test").subset(range(300), name="digits-test[:300]")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = RECIPE.train(mem.x, mem.y, num_classes=10)
    finally:
        torch.set_num_threads(n)
    return TorchTarget(model, input_shape=(1, 8, 8), num_classes=10, name="mlp", device="cpu"), mem, non


def test_full_run_with_recipe_writes_evidence_and_report(mlp_setup, tmp_path):
    from aisec.api import assess
    from aisec.core.evidence import read_jsonl

    target, mem, non = mlp_setup
    run = assess(target, mem, checks={"privacy": {"recipe": RECIPE, "nonmembers": non, "reference_models": 4,
                                                  "shadow_models": 2}}, out=tmp_path)
    r = run.results[0]
    keys = [a["key"] for a in r.summary["attacks"]]
    assert keys == ["loss", "confidence", "gap", "shadow", "lira-online", "lira-offline", "rmia-offline"]
    shadow = next(a for a in r.summary["attacks"] if a["key"] == "shadow")
    assert shadow["n_nonmembers"] == 150 and r.summary["population"] == 150  # shadow data kept apart
    assert r.measurement("privacy.mia_auc", attack="lira").interval.low > 0.5  # the MLP memorised its 100
    ev = read_jsonl(tmp_path / "evidence.jsonl")
    assert {e.metric for e in ev} >= {"privacy.mia_auc", "privacy.mia_tpr_at_1pct_fpr", "privacy.shapr_score"}
    assert all(e.raw is not None for e in ev)
    csv = (tmp_path / ev[0].raw.path).read_text().splitlines()
    assert csv[0].startswith("set,index,label,pred,score:loss") and csv[0].endswith("shapr")
    assert len(csv) == 1 + 100 + 300
    html = (tmp_path / "report.html").read_text()
    assert "Privacy — does the model leak" in html and "Per-class AUC" in html
    # what ran is said, with the models the recipe-based attacks actually trained
    assert "shadow: 2 shadow models" in html and "lira: 4 reference models" in html and "not run:" not in html
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["checks"]["privacy"]["summary"]["members"] == 100
    assert r.params["nonmembers"]["dataset"] == "digits-test[:300]"


class _LabelsOnly:
    def __init__(self, target):
        from aisec.core.target import TargetSpec
        from aisec.core.types import Access, Capability, OutputKind

        self._t = target
        self._spec = TargetSpec(name="labels", modality=Modality.IMAGE, input_shape=(1, 8, 8), num_classes=10,
                                access=Access.BLACK, output=OutputKind.LABELS,
                                capabilities=frozenset({Capability.LABELS_ONLY}))

    spec = property(lambda self: self._spec)
    queries = property(lambda self: 0)

    def predict(self, x):
        return torch.nn.functional.one_hot(self._t.predict(x).argmax(1), 10).float()

    def logits(self, x):
        raise CapabilityError("labels only")


def test_labels_only_targets(mlp_setup):
    target, mem, non = mlp_setup
    black = _LabelsOnly(target)
    r = PrivacyCheck().run(black, mem, PrivacyParams(nonmembers=non, attacks=None))
    assert [a["key"] for a in r.summary["attacks"]] == ["gap", "label_only"]
    assert r.summary["shapr"] is None
    with pytest.raises(CapabilityError, match="label_only"):
        PrivacyCheck().run(black, mem, PrivacyParams(nonmembers=non, attacks=["loss"]))


def test_drop_overlap_removes_duplicates_with_a_warning(digits_target, members):
    from aisec.data.builtin import digits

    test = digits(split="test")
    mixed = TensorDataset(torch.cat([members.x[:5], test.x[:100]]), torch.cat([members.y[:5], test.y[:100]]),
                          name="mixed", modality=Modality.IMAGE)
    r = PrivacyCheck().run(digits_target, members, PrivacyParams(attacks=["loss"], nonmembers=mixed,
                                                                 drop_overlap=True, shapr={"enabled": False}))
    assert r.summary["nonmembers"] == 100
    assert any("dropped 5" in w for w in r.warnings)
    t = r.tables["samples"]
    assert sorted(t["index"][t["set"] == "nonmember"].tolist()) == list(range(5, 105))


def test_members_param_attacks_the_training_records_not_the_assessed_data(digits_target, members):
    """A threat-model plan assesses on test data and names the members apart: the result is the one the members
    themselves give as the check's data (same seed, same records), and the source is recorded."""
    from aisec.data.builtin import digits

    p = {"attacks": ["loss"], "samples": 200, "shapr": {"enabled": False}}
    direct = PrivacyCheck().run(digits_target, members, PrivacyParams(**p))
    named = PrivacyCheck().run(digits_target, digits(split="test"),
                               PrivacyParams(**p, members={"source": "digits", "options": {"split": "train"}}))
    a, b = direct.measurement("privacy.mia_auc", attack="loss"), named.measurement("privacy.mia_auc", attack="loss")
    assert b.value == pytest.approx(a.value) and b.sample_count == a.sample_count
    assert named.params["members"] == {"source": "digits", "options": {"split": "train"}}
    assert direct.params["members"] is None
