"""BPDA against ART's BPDA-style preprocessing gradients on the same model and samples.

Setting: the digits CNN behind bit-depth reduction to 3 bits (feature squeezing, 8 levels), the
defended model ``f = g(h(x))``. ``h`` rounds, so ``df/dx`` is exactly zero: PGD on ``f`` moves only
through its random start. BPDA (straight-through) attacks ``f`` with ``dg/dx`` at ``h(x)``.

Checks and tolerances (n = 64 samples, eps 0.1 linf, 10 PGD steps):
- our bit-depth preprocessing equals ART's ``FeatureSqueezing(bit_depth=3)`` on random inputs
  (float precision, 1e-6);
- plain PGD on ``f`` keeps robust accuracy within 0.1 of the clean accuracy (it "finds nothing");
  BPDA-PGD drops it by at least 0.4 and to within 0.15 of the undefended CNN's PGD robust accuracy
  (the quantiser itself may add a little true robustness; measured plain 0.92, BPDA 0.28, undefended 0.41);
- ART's PGD on a ``PyTorchClassifier`` with the same ``FeatureSqueezing`` as a preprocessing
  defence (``apply_predict``; ART's default ``estimate_gradient`` is the identity, i.e. BPDA
  straight-through) reaches the same robust accuracy on ``f`` within three binomial standard errors,
  3 * sqrt(p (1 - p) / n): same math, different random start.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from aisec.attacks.adaptive import BPDATarget, preprocessing
from aisec.attacks.base import perturbation_norm, run_attack
from aisec.core.types import Norm
from aisec.targets.torch import TorchTarget

art_cls = pytest.importorskip("art.estimators.classification")
art_ev = pytest.importorskip("art.attacks.evasion")
art_pre = pytest.importorskip("art.defences.preprocessor")

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]

N, EPS, STEPS, BITS = 64, 0.1, 10, 3


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Squeezed(nn.Module):
    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m, self.h = m, preprocessing(f"bit-depth:{BITS}")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.m(self.h(z, (0.0, 1.0)))


class _Squeeze32(art_pre.FeatureSqueezing):  # type: ignore[misc]
    """ART's squeezer, cast back to float32: under NumPy 2 it returns float64 (its ``np.rint`` scalar
    promotes the array), which a float32 torch model refuses. The values are unchanged."""

    def __call__(self, x, y=None):  # type: ignore[no-untyped-def]
        res, y = super().__call__(x, y)
        return res.astype(np.float32), y


def _three_se(p: float, n: int) -> float:
    return 3 * math.sqrt(max(p * (1 - p), 0.05 * 0.95) / n)


def test_bit_depth_equals_art_feature_squeezing():
    x = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    ours = preprocessing(f"bit-depth:{BITS}")(torch.from_numpy(x), (0.0, 1.0)).numpy()
    art_out, _ = art_pre.FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=BITS)(x)
    np.testing.assert_allclose(ours, art_out, atol=1e-6)


def test_bpda_breaks_the_quantiser_and_matches_art(digits_model, digits_test_batch):
    x, y = digits_test_batch
    x, y = x[:N].float(), y[:N].long()
    g = TorchTarget(digits_model, input_shape=(1, 8, 8), num_classes=10, device="cpu")
    defended = TorchTarget(Squeezed(digits_model), input_shape=(1, 8, 8), num_classes=10, device="cpu")
    params = {"eps": EPS, "steps": STEPS}
    plain = run_attack("pgd", defended, x, y, params)
    bpda = run_attack("pgd", BPDATarget(g, f"bit-depth:{BITS}"), x, y, params)
    undefended = run_attack("pgd", g, x, y, params)
    clean = float(plain.clean_correct.float().mean())
    r_plain, r_bpda = float(plain.robust.float().mean()), float(bpda.robust.float().mean())
    r_undef = float(undefended.robust.float().mean())
    assert torch.equal(plain.pred_clean, bpda.pred_clean)  # BPDA is scored on the defended model
    assert float(perturbation_norm(bpda.x_adv - x, Norm.LINF).max()) <= EPS + 1e-6
    with torch.no_grad():
        assert torch.equal(defended.predict(bpda.x_adv).argmax(1), bpda.pred_adv)
    assert r_plain >= clean - 0.1, (r_plain, clean)
    assert r_bpda <= r_plain - 0.4, (r_bpda, r_plain)
    assert r_bpda <= r_undef + 0.15, (r_bpda, r_undef)

    squeeze = _Squeeze32(clip_values=(0.0, 1.0), bit_depth=BITS, apply_fit=False, apply_predict=True)
    clf = art_cls.PyTorchClassifier(digits_model, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                                    clip_values=(0.0, 1.0), preprocessing_defences=[squeeze], device_type="cpu")
    atk = art_ev.ProjectedGradientDescent(clf, norm=np.inf, eps=EPS, eps_step=2.5 * EPS / STEPS, max_iter=STEPS,
                                          num_random_init=1, batch_size=N, verbose=False)
    np.random.seed(0)
    x_art = torch.as_tensor(atk.generate(x.numpy(), y=y.numpy())).float()
    with torch.no_grad():
        r_art = float(((defended.predict(x_art).argmax(1) == y) & plain.clean_correct).float().mean())
    assert abs(r_bpda - r_art) <= _three_se(r_art, N), (r_bpda, r_art)
