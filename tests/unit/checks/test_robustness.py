from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from aisec.checks.robustness import RobustnessCheck, RobustnessParams, _masking_warnings
from aisec.core.dataset import TensorDataset
from aisec.core.errors import CapabilityError, ConfigError, ShapeError
from aisec.core.types import Modality
from aisec.targets.sklearn import ProbaTarget


@pytest.fixture(scope="module")
def small_data(digits_split):
    _, test = digits_split
    return test.subset(range(96), name="digits-test-96")


@pytest.fixture(scope="module")
def result(digits_target, small_data):
    params = RobustnessParams(
        attacks=["fgsm", "pgd", {"name": "pgd", "norm": "l2"}], eps=[0.2, 0.05, 0.1], eps_l2=[0.5, 1.0],
        samples=96, clever={"enabled": False},
    )
    return RobustnessCheck().run(digits_target, small_data, params)


def test_curves_never_rise_with_eps_and_stay_below_clean(result):
    clean = result.summary["clean_accuracy"]
    for c in result.summary["curves"]:
        accs = [p["robust_accuracy"] for p in c["points"]]
        assert [p["eps"] for p in c["points"]] == sorted(p["eps"] for p in c["points"])
        assert all(a <= clean + 1e-12 for a in accs)
        assert all(b <= a + 1e-12 for a, b in itertools.pairwise(accs))


def test_safair_delta_is_clean_minus_attacked_and_cis_contain_values(result):
    clean = result.summary["clean_accuracy"]
    for m in result.measurements:
        if m.interval is not None and np.isfinite(m.value):
            assert m.interval.contains(m.value), m
    for c in result.summary["curves"]:
        for p in c["points"]:
            assert p["safair_delta"] == pytest.approx(clean - p["robust_accuracy"])


def test_per_sample_table_reproduces_the_summary(result):
    table = result.tables["samples"]
    correct = table["pred_clean"] == table["label"]
    for c in result.summary["curves"]:
        for p in c["points"]:
            fooled = table[f"{c['key']}@{p['eps']:g}:fooled"].astype(bool)
            pred = table[f"{c['key']}@{p['eps']:g}:pred"]
            robust = correct & ~fooled
            assert robust.mean() == pytest.approx(p["robust_accuracy"])
            # On clean-correct samples the stored adversarial prediction agrees with "fooled".
            assert np.array_equal((pred != table["label"])[correct], fooled[correct])


def test_every_evidence_measurement_names_its_attack(result):
    metrics = {m.metric for m in result.measurements}
    assert {"robustness.clean_accuracy", "robustness.robust_accuracy", "robustness.attack_success_rate",
            "robustness.safair_delta", "robustness.median_perturbation"} <= metrics
    m = result.measurement("robustness.robust_accuracy", attack="pgd", norm="l2", eps=1.0)
    assert m.sample_count == 96


def test_iterative_attack_at_least_as_strong_as_fgsm(result):
    f = {p["eps"]: p["robust_accuracy"] for p in result.summary["curves"][0]["points"]}
    g = {p["eps"]: p["robust_accuracy"] for p in result.summary["curves"][1]["points"]}
    # PGD (10 steps, random start) vs one FGSM step on a normally trained CNN: allow 2 samples of noise.
    assert all(g[e] <= f[e] + 2 / 96 for e in f)


def test_targeted_attack_reports_success_toward_targets(digits_target, small_data):
    params = RobustnessParams(attacks=[{"name": "pgd", "targeted": True, "params": {"steps": 20}}],
                              eps=[0.3], samples=48, clever={"enabled": False})
    res = RobustnessCheck().run(digits_target, small_data, params)
    asr = res.measurement("robustness.attack_success_rate", attack="pgd", targeted=True, eps=0.3)
    assert asr.value > 0.5


def test_fail_fast_on_bad_requests(digits_target, small_data):
    with pytest.raises(ConfigError, match="unknown attack 'pgdd'"):
        RobustnessCheck().run(digits_target, small_data, RobustnessParams(attacks=["pgdd"]))
    with pytest.raises(ConfigError, match="supports norms"):
        RobustnessCheck().run(digits_target, small_data, RobustnessParams(attacks=[{"name": "pgd", "norm": "l0"}]))
    wrong = TensorDataset(small_data.x, small_data.y % 3, name="three", modality=Modality.IMAGE)
    with pytest.raises(ShapeError, match="3 classes"):
        RobustnessCheck().run(digits_target, wrong, RobustnessParams())


def test_gradient_attack_on_black_box_names_alternatives(small_data):
    x = small_data.x.reshape(len(small_data), -1).numpy()
    clf = LogisticRegression(max_iter=200).fit(x, small_data.y.numpy())
    target = ProbaTarget(clf, input_shape=(1, 8, 8), num_classes=10, name="logreg")
    with pytest.raises(CapabilityError, match=r"pgd.*needs gradients.*logreg"):
        RobustnessCheck().run(target, small_data, RobustnessParams(attacks=["pgd"], clever={"enabled": False}))


def test_masking_warning_when_fgsm_beats_pgd():
    curve = lambda name, acc: {"attack": name, "norm": "linf", "targeted": False,  # noqa: E731
                               "points": [{"eps": 0.1, "raw_robust_accuracy": acc}]}
    assert _masking_warnings([curve("fgsm", 0.2), curve("pgd", 0.6)])
    assert not _masking_warnings([curve("fgsm", 0.6), curve("pgd", 0.2)])


def test_quantized_adversarials_lie_on_the_8bit_grid(digits_target, small_data):
    from aisec.attacks.base import run_attack

    x, y = small_data.x[:32], small_data.y[:32]
    out = run_attack("pgd", digits_target, x, y, {"eps": 0.1}, quantize=True)
    u = out.x_adv * 255
    assert torch.allclose(u, u.round(), atol=1e-4)
    assert float((out.x_adv - x).abs().max()) <= 0.1 + 1e-6
