"""The margin and DLR losses: exact formulas, scale invariance, and what they buy against saturation.

- ``dlr`` equals the original AutoAttack code's ``dlr_loss`` / ``dlr_loss_targeted``
  (pyautoattack, Croce & Hein 2020) to float precision (1e-5 relative) on random logits.
- DLR is invariant to ``z -> a z + b`` (a > 0) and the margin to shifts and linear in scale
  (hypothesis, 1e-3: float32 rounding of the shifted logits, e.g. a = 1/64 and b = 16 leave ~5
  significant bits of the logit differences' precision unused, relative error ~2e-4 seen).
- On the digits CNN with logits x1000 the float32 softmax saturates and the cross-entropy gradient
  is exactly zero for confidently classified samples, so PGD-CE keeps robust accuracy within 0.15 of
  the clean accuracy; PGD-margin and PGD-DLR reach at least 0.4 lower (measured 0.92 vs 0.09-0.13).
- PGD-DLR gives the same adversarials for x1 and x10 logits (same seed): the sign steps see the
  same gradient direction; we allow float noise on at most 10% of the samples (a sign flip of a
  near-zero gradient coordinate changes an example), and the robust accuracies agree to 2 samples.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from aisec.attacks.base import run_attack
from aisec.attacks.evasion._losses import objective
from aisec.targets.torch import TorchTarget

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True)
N = 64


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Scaled(nn.Module):
    def __init__(self, m: nn.Module, s: float) -> None:
        super().__init__()
        self.m, self.s = m, s

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.m(z) * self.s


def _logits(seed: int, n: int = 32, k: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(n, k, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    t = (y + 1 + torch.randint(0, k - 1, (n,), generator=g)) % k
    return z, y, t


def test_dlr_equals_the_autoattack_code():
    apgd = pytest.importorskip("pyautoattack.autopgd_base")
    z, y, t = _logits(0)
    ref = apgd.APGDAttack.dlr_loss(None, z, y)
    torch.testing.assert_close(objective(z, y, None, "dlr"), ref, rtol=1e-5, atol=1e-6)
    ref_t = apgd.APGDAttack_targeted.dlr_loss_targeted(SimpleNamespace(y_target=t), z, y)
    torch.testing.assert_close(objective(z, y, t, "dlr"), ref_t, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(seed=st.integers(0, 10_000), a=st.floats(1e-2, 1e3), b=st.floats(-100, 100), targeted=st.booleans())
def test_dlr_is_scale_and_shift_invariant_and_margin_shift_invariant(seed, a, b, targeted):
    z, y, t = _logits(seed)
    tl = t if targeted else None
    base = objective(z, y, tl, "dlr")
    torch.testing.assert_close(objective(a * z + b, y, tl, "dlr"), base, rtol=1e-3, atol=1e-3)
    m = objective(z, y, tl, "margin")
    torch.testing.assert_close(objective(z + b, y, tl, "margin"), m, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(objective(a * z, y, tl, "margin"), a * m, rtol=1e-4, atol=1e-3 * a)


def test_margin_and_dlr_beat_a_saturated_softmax(digits_model, digits_test_batch):
    x, y = digits_test_batch
    x, y = x[:N].float(), y[:N].long()
    big = TorchTarget(Scaled(digits_model, 1000.0), input_shape=(1, 8, 8), num_classes=10, device="cpu")
    rob = {}
    for loss in ("ce", "margin", "dlr"):
        out = run_attack("pgd", big, x, y, {"eps": 0.15, "steps": 10, "loss": loss})
        rob[loss] = float(out.robust.float().mean())
    clean = float(out.clean_correct.float().mean())
    assert rob["ce"] >= clean - 0.15, rob
    assert rob["margin"] <= rob["ce"] - 0.4, rob
    assert rob["dlr"] <= rob["ce"] - 0.4, rob
    bim = run_attack("bim", big, x, y, {"eps": 0.15, "steps": 10, "loss": "dlr"})
    assert float(bim.robust.float().mean()) <= rob["ce"] - 0.4


def test_dlr_pgd_is_invariant_to_logit_scaling(digits_model, digits_test_batch):
    x, y = digits_test_batch
    x, y = x[:N].float(), y[:N].long()
    outs = []
    for s in (1.0, 10.0):
        t = TorchTarget(Scaled(digits_model, s), input_shape=(1, 8, 8), num_classes=10, device="cpu")
        outs.append(run_attack("pgd", t, x, y, {"eps": 0.15, "steps": 10, "loss": "dlr"}, seed=3))
    same = ((outs[0].x_adv - outs[1].x_adv).reshape(N, -1).abs().amax(1) <= 1e-4).float().mean()
    assert float(same) >= 0.9
    assert abs(int(outs[0].robust.sum()) - int(outs[1].robust.sum())) <= 2
