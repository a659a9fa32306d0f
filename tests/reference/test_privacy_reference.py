"""aisec's privacy metrics and attacks against ART 1.20 on the same models and data.

- SHAPr: ART's ``art.metrics.SHAPr`` runs the K = 1 recursion in a Python loop on float32 model
  outputs and returns float32; aisec's vectorised float64 values must agree to float32 precision
  (relative 1e-5 of the largest value) on the very same output vectors.
- Gap attack: ART's ``MembershipInferenceBlackBoxRuleBased`` calls a record a member when the model
  classifies it correctly, exactly aisec's ``gap`` score.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.attacks.inference.base import MembershipTask, get_inference_attack
from aisec.metrics.shapr import shapr_values

art_metrics = pytest.importorskip("art.metrics")
art_cls = pytest.importorskip("art.estimators.classification")
art_mia = pytest.importorskip("art.attacks.inference.membership_inference")

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def test_shapr_equals_art_on_a_sklearn_model():
    from sklearn.linear_model import LogisticRegression

    from aisec.data.builtin import breast_cancer

    tr, te = breast_cancer("train"), breast_cancer("test")
    x_tr, y_tr, x_te, y_te = tr.x.numpy(), tr.y.numpy(), te.x.numpy(), te.y.numpy()
    clf = LogisticRegression(max_iter=2000).fit(x_tr, y_tr)
    ref = art_metrics.SHAPr(art_cls.SklearnClassifier(clf), x_tr, y_tr, x_te, y_te)
    ours = shapr_values(clf.predict_proba(x_tr).astype(np.float32), y_tr,
                        clf.predict_proba(x_te).astype(np.float32), y_te)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_shapr_equals_art_on_the_digits_cnn(digits_model, digits_split):
    train, test = digits_split
    x_tr, y_tr = train.x[:600].numpy(), train.y[:600].numpy()
    x_te, y_te = test.x[:120].numpy(), test.y[:120].numpy()
    clf = art_cls.PyTorchClassifier(model=digits_model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8),
                                    nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    ref = art_metrics.SHAPr(clf, x_tr, y_tr, x_te, y_te)
    # ART's kNN runs on clf.predict (logits for this estimator); give aisec the very same vectors.
    ours = shapr_values(clf.predict(x_tr), y_tr, clf.predict(x_te), y_te)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_gap_attack_equals_art_rule_based(digits_target, digits_model, digits_split):
    train, test = digits_split
    x_in, y_in, x_out, y_out = train.x[:300], train.y[:300], test.x[:300], test.y[:300]
    task = MembershipTask(digits_target, x_in, y_in, x_out, y_out)
    gap = get_inference_attack("gap")
    ours = gap.cls().run(task, gap.cls.Params())
    clf = art_cls.PyTorchClassifier(model=digits_model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8),
                                    nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    attack = art_mia.MembershipInferenceBlackBoxRuleBased(clf)
    ref_in = attack.infer(x_in.numpy(), y_in.numpy())
    ref_out = attack.infer(x_out.numpy(), y_out.numpy())
    np.testing.assert_array_equal(ours.members.numpy(), ref_in)
    np.testing.assert_array_equal(ours.nonmembers.numpy(), ref_out)
