"""aisec's Square against AutoAttack's (pyautoattack ``square.SquareAttack``), the ensemble's fourth stage.

Same model (the digits CNN), samples, eps, query budget and ``p_init = 0.8``; AutoAttack's margin loss
on the logits. Budgets are equal: aisec's ``max_queries`` counts the query that scores the
initialisation, AutoAttack's ``n_queries`` counts the iterations after it, so aisec gets one more.
Tolerances (n = number of samples):
- Random search with different draws (aisec draws one window per sample, AutoAttack one per
  iteration for the batch; AutoAttack never places a window on the last row or column): the success
  rates at equal eps and queries must agree within three binomial standard errors,
  3 sqrt(p (1 - p) / n), as in test_evasion_reference.py; aisec may be stronger, never weaker by more.
- The margin loss is invariant to scaling the logits, so Square on ``k * logits`` must find exactly
  what it finds on the logits (one sample of slack for float ties). This holds only because aisec
  reads the logits when the target exposes them: on the log-probabilities of the same model, classes
  69+ logits behind fall under the probability clamp and the search stalls (at k = 30 the Linf success
  rate fell from 0.42 to 0.16 on these 64 samples, 300 queries), which the last assertion shows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aisec.attacks.base import run_attack
from aisec.targets.sklearn import ProbaTarget
from aisec.targets.torch import TorchTarget

square_ref = pytest.importorskip("pyautoattack.square")

N = 64
QUERIES = 300
EPS = {"linf": 0.1, "l2": 1.0}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(digits_test_batch):
    x, y = digits_test_batch
    return x[:N].float().contiguous(), y[:N].long()


def _three_se(p: float, n: int) -> float:
    return 3 * math.sqrt(max(p * (1 - p), 0.05) / n)


class _Scaled(torch.nn.Module):
    def __init__(self, module: torch.nn.Module, k: float) -> None:
        super().__init__()
        self.module, self.k = module, k

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.module(a) * self.k


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_square_matches_autoattack(digits_target, data, norm):
    x, y = data
    eps = EPS[norm]
    module = digits_target.module
    out = run_attack("square", digits_target, x, y, {"norm": norm, "eps": eps, "max_queries": QUERIES},
                     batch_size=N)
    ref = square_ref.SquareAttack(module, norm={"linf": "Linf", "l2": "L2"}[norm], n_queries=QUERIES - 1,
                                  eps=eps, p_init=0.8, loss="margin", seed=0, device="cpu")
    x_ref = ref.perturb(x, y)
    with torch.no_grad():
        s_ref = float(((module(x_ref).argmax(1) != y) & out.clean_correct).float().mean())
    s = float(out.success.float().mean())
    assert 0.05 < s_ref < 0.95  # an informative operating point
    assert s >= s_ref - _three_se(s_ref, N), (s, s_ref)
    assert abs(s - s_ref) <= _three_se(s_ref, N), (s, s_ref)


def test_square_margin_reads_logits_and_is_scale_invariant(digits_target, data):
    x, y = data
    params = {"norm": "linf", "eps": EPS["linf"], "max_queries": QUERIES}
    scaled = _Scaled(digits_target.module, 30.0).eval()
    t30 = TorchTarget(scaled, input_shape=(1, 8, 8), num_classes=10, name="digits-x30", device="cpu")
    base = run_attack("square", digits_target, x, y, params, batch_size=N)
    big = run_attack("square", t30, x, y, params, batch_size=N)
    assert abs(int(base.success.sum()) - int(big.success.sum())) <= 1
    assert int(base.success.sum()) >= N // 8

    class _Probs:  # the same scaled model, seen through probabilities only
        def predict_proba(self, a: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return torch.softmax(scaled(torch.as_tensor(a, dtype=torch.float32).view(-1, 1, 8, 8)), 1).numpy()

    proba = ProbaTarget(_Probs(), input_shape=(1, 8, 8), num_classes=10, modality="image")
    blind = run_attack("square", proba, x, y, params, batch_size=N)
    # What the logits fix: on saturated log-probabilities the search finds markedly less.
    assert int(blind.success.sum()) < int(big.success.sum()) - _three_se(0.5, N) * N
