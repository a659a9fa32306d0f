"""Input detectors (issue 15, item 3): feature squeezing against ART's squeezer and scipy's median, the
activation regression against scikit-learn, calibration at the chosen FPR, and the paper's behaviour —
plain PGD detected, the adaptive attack detected less."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.attacks.base import run_attack
from aisec.core.errors import ConfigError
from aisec.core.types import Norm
from aisec.defences.detect import GuardedTarget, adaptive_pgd, parse_detector
from aisec.defences.detect.activation import ActivationDetector
from aisec.defences.detect.squeezing import FeatureSqueezing

EPS = 0.1


@pytest.fixture(scope="module")
def split_batch(digits_split):
    _, test = digits_split
    x, y = test.x[:360].clone(), test.y[:360].clone()
    return (x[:200], y[:200]), (x[200:], y[200:])


@pytest.fixture(scope="module")
def squeezing(digits_target, split_batch):
    (xf, yf), _ = split_batch
    return FeatureSqueezing().fit(digits_target, xf, yf, eps=EPS)


@pytest.fixture(scope="module")
def pgd_eval(digits_target, split_batch):
    _, (xe, ye) = split_batch
    out = run_attack("pgd", digits_target, xe, ye, {"norm": Norm.LINF, "eps": EPS, "steps": 20})
    return out, out.success & out.clean_correct


def test_squeezing_score_matches_art_and_scipy_squeezers(digits_target, split_batch):
    from art.defences.preprocessor import FeatureSqueezing as ArtSqueezing
    from scipy.ndimage import median_filter

    _, (xe, _) = split_batch
    x = xe[:32]
    det = FeatureSqueezing(bits=3, median=3).fit(digits_target, x, torch.zeros(32, dtype=torch.long))
    p = digits_target.predict(x).numpy()
    art, _ = ArtSqueezing(clip_values=(0.0, 1.0), bit_depth=3)(x.numpy())
    med = median_filter(x.numpy(), size=(1, 1, 3, 3), mode="reflect")
    ref = np.maximum(*(np.abs(p - digits_target.predict(torch.as_tensor(v, dtype=torch.float32)).numpy()).sum(1)
                       for v in (art, med)))
    assert np.allclose(det.score(x).numpy(), ref, atol=1e-5)


def test_threshold_is_the_clean_quantile_at_the_chosen_fpr(squeezing, digits_target, split_batch):
    (xf, _), (xe, _) = split_batch
    cal = squeezing.score(xf)
    assert float((cal > squeezing.threshold).float().mean()) <= 0.05 + 1e-6
    strict = FeatureSqueezing(fpr=0.2).fit(digits_target, xf, torch.zeros(200, dtype=torch.long))
    assert strict.threshold <= squeezing.threshold  # a looser FPR rejects more
    # held-out clean inputs are rejected near the chosen rate (binomial spread on 160 samples)
    assert float(squeezing.rejects(xe).float().mean()) < 0.15


def test_squeezing_detects_plain_pgd_and_the_adaptive_attack_less(squeezing, pgd_eval, split_batch):
    """Xu et al. 2018: squeezing detects most examples of attacks that ignore it; an attacker who attacks the
    squeezed models too (BPDA) is detected less and gets more examples past it."""
    _, (xe, ye) = split_batch
    out, fooled = pgd_eval
    naive_rej = squeezing.rejects(out.x_adv)[fooled]
    naive_rate = float(naive_rej.float().mean())
    assert fooled.sum() > 30 and naive_rate > 0.5
    correct = out.clean_correct
    ad = adaptive_pgd(squeezing, xe[correct], ye[correct], eps=EPS, steps=20)
    adaptive_rate = float(ad.rejected[ad.fooled].float().mean())
    assert ad.fooled.sum() > 30
    assert adaptive_rate < naive_rate
    naive_evade = int((~naive_rej).sum())
    assert int((ad.fooled & ~ad.rejected).sum()) > naive_evade
    # the examples stay in the eps-ball and the value range
    assert float((ad.x_adv - xe[correct]).abs().max()) <= EPS + 1e-6
    assert ad.x_adv.min() >= 0 and ad.x_adv.max() <= 1


def test_activation_logit_is_the_regression_on_hooked_features(digits_target, split_batch, pgd_eval):
    from sklearn.metrics import roc_auc_score

    from aisec.models.torch_module import batched_features, module_copy

    (xf, yf), (xe, _) = split_batch
    det = ActivationDetector(steps=5).fit(digits_target, xf, yf, eps=EPS)
    assert det.weight is not None and det.mean is not None and det.std is not None
    feats = batched_features(module_copy(digits_target), xe).double()
    ref = ((feats - det.mean) / det.std).numpy() @ det.weight.numpy() + det.bias
    assert np.allclose(det.score(xe).numpy(), ref, atol=1e-4)
    out, fooled = pgd_eval
    adv = det.score(out.x_adv)[fooled].numpy()
    auc = roc_auc_score(np.r_[np.zeros(len(xe)), np.ones(adv.size)], np.r_[det.score(xe).numpy(), adv])
    assert auc > 0.6  # it sees PGD examples better than chance
    # the score is differentiable in x (the adaptive attack descends it exactly)
    x = xe[:4].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(det.attack_score(x).sum(), x)
    assert float(g.abs().sum()) > 0


def test_guarded_target_passes_answers_through_and_adds_rejection(squeezing, digits_target, split_batch):
    _, (xe, _) = split_batch
    g = GuardedTarget(digits_target, squeezing)
    assert torch.equal(g.predict(xe[:8]), digits_target.predict(xe[:8]))
    assert g.spec.name == "digits-cnn+detector(feature-squeezing)"
    assert torch.equal(g.rejects(xe[:8]), squeezing.score(xe[:8]) > squeezing.threshold)
    with pytest.raises(ConfigError, match="not fitted"):
        GuardedTarget(digits_target, FeatureSqueezing())


def test_detector_specs_fail_in_one_line():
    assert parse_detector("feature-squeezing:bits=2,median=none").params.model_dump() == \
        {"fpr": 0.05, "bits": 2, "median": None}
    assert parse_detector("squeezing").name == "feature-squeezing"
    for spec, msg in (("nope", "unknown detector 'nope'; known: activation, feature-squeezing"),
                      ("feature-squeezing:median=4", "median: the median window side must be odd"),
                      ("feature-squeezing:bitz=2", "bitz"), ("activation:5", "key=value")):
        with pytest.raises(ConfigError, match=msg) as exc:
            parse_detector(spec)
        assert "\n" not in str(exc.value)


class _Constant(FeatureSqueezing):
    """A squeezing detector whose score is the same for every input; ``reject_all`` moves the threshold below it."""

    reject_all = False

    def attack_score(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0]) + 0.0 * x.flatten(1).sum(1)

    def fit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().fit(*args, **kwargs)
        if self.reject_all:
            self.threshold = -1.0
        return self


@pytest.mark.parametrize("reject_all", [False, True])
def test_rejections_count_as_errors_on_clean_inputs_and_defences_on_adversarial_ones(digits_target, split_batch,
                                                                                     reject_all):
    from aisec.checks.detection import DetectionCheck, DetectionParams

    (xf, yf), (xe, ye) = split_batch
    det = _Constant()
    det.reject_all = reject_all
    params = DetectionParams(eps=EPS, steps=5, adaptive_steps=5)
    row, ms, table = DetectionCheck()._one(det, digits_target, xf[:40], yf[:40], xe[:40], ye[:40], params,
                                           lambda *a: None, [])
    if reject_all:  # everything refused: no clean input is accepted, so nothing counts as correct or robust
        assert row.clean_accuracy == row.robust_accuracy == row.adaptive_robust_accuracy == 0.0
        assert row.recall == 1.0 and row.false_positive_rate == 1.0
    else:  # nothing refused: the system is the classifier
        assert row.clean_accuracy == row.undefended_clean_accuracy
        assert row.robust_accuracy == row.undefended_robust_accuracy
        assert row.recall == 0.0 and row.adaptive_detection_rate == 0.0
    assert {m.metric for m in ms} >= {"detection.clean_accuracy", "detection.robust_accuracy"}
    assert table["rejected_clean"].all() == reject_all
