"""Properties every registered evasion attack must have, whatever its parameters.

Fixed-eps attacks stay inside the eps-ball and the value range, keep shape and dtype, and report
success that agrees with the target's predictions (also with 8-bit quantisation); min-norm attacks
stay in range and report success that agrees with the predictions. Attacks are found through the
registry, so a new attack file is tested without touching this one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisec.attacks.base import perturbation_norm, run_attack
from aisec.core.registry import ATTACKS, AttackKind, load_plugins
from aisec.core.types import Norm

load_plugins()
FIXED = sorted(n for n, a in ATTACKS.items() if a.kind is AttackKind.FIXED_EPS)
MIN_NORM = sorted(n for n, a in ATTACKS.items() if a.kind is AttackKind.MIN_NORM)
N = 16
SETTINGS = settings(
    max_examples=15, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def batch(digits_test_batch):
    x, y = digits_test_batch
    return x[:N].float(), y[:N].long()


def _usable(name: str, target) -> None:
    if not ATTACKS[name].requires <= target.spec.capabilities:
        pytest.skip(f"attack '{name}' needs capabilities the digits CNN lacks")


def _fast(name: str, params: dict) -> dict:
    """Cap iteration counts so the property runs stay cheap for every attack."""
    fields = ATTACKS[name].cls.Params.model_fields
    caps = (("steps", 5), ("binary_search_steps", 2), ("max_iter", 5), ("n_queries", 200), ("max_queries", 200),
            ("repeats", 20), ("epochs", 2), ("sinkhorn_steps", 10), ("n_target_classes", 2))
    for key, cap in caps:
        if key in fields and key not in params:
            default = fields[key].default
            params[key] = min(default, cap) if isinstance(default, int) else cap
    return params


def _check_consistent(out, target, y, tl) -> None:
    pred = target.predict(out.x_adv).argmax(1)
    assert torch.equal(pred, out.pred_adv)
    if tl is None:
        assert torch.equal(out.success, (pred != y) & out.clean_correct)
    else:
        assert torch.equal(out.success, pred == tl)


def _in_range(x_adv: torch.Tensor, target) -> None:
    lo, hi = target.spec.value_range
    assert float(x_adv.min()) >= lo - 1e-6
    assert float(x_adv.max()) <= hi + 1e-6


@pytest.mark.parametrize("name", FIXED)
@SETTINGS
@given(data=st.data())
def test_fixed_eps_attack_stays_in_ball(name, data, digits_target, batch, exact_wasserstein):
    _usable(name, digits_target)
    info = ATTACKS[name]
    x, y = batch
    norm = data.draw(st.sampled_from(sorted(info.norms)), label="norm")
    top = {Norm.LINF: 0.3, Norm.L2: 2.0, Norm.L1: 8.0, Norm.L0: 0.5, Norm.WASSERSTEIN: 0.3}[norm]
    eps = data.draw(st.floats(0.0, top), label="eps")
    quantize = data.draw(st.booleans(), label="quantize")
    targeted = info.targeted and data.draw(st.booleans(), label="targeted")
    if quantize:
        # The 8-bit rule assumes 8-bit clean inputs (digits are multiples of 1/16, not of 1/255).
        x = (x * 255).round() / 255
    tl = (y + 1 + torch.arange(N) % 9) % 10 if targeted else None
    params = _fast(name, {"eps": eps, "norm": norm})
    out = run_attack(name, digits_target, x, y, params, target_labels=tl, quantize=quantize)
    assert out.x_adv.shape == x.shape
    assert out.x_adv.dtype == x.dtype
    if norm.is_lp:
        assert float(perturbation_norm(out.x_adv - x, norm).max()) <= eps + 1e-5
        assert torch.allclose(out.distance, perturbation_norm(out.x_adv - x, norm))
    else:  # Wasserstein: measured again by an independent exact solver (tests/conftest.py)
        # (8 of the 16 rows: one dense LP each; the attack measured all 16 with its own solver)
        assert float(out.distance.max()) <= eps * (1 + 1e-6) + 1e-9
        ground = info.cls.Params(**params)  # the ball's ground cost and window
        exact = exact_wasserstein(x[:8], out.x_adv[:8], p=ground.p, window=ground.kernel_size // 2)
        assert float(exact.max()) <= eps * (1 + 1e-5) + 1e-7
        np.testing.assert_allclose(out.distance[:8].double().numpy(), exact, rtol=1e-4, atol=1e-6)
    _in_range(out.x_adv, digits_target)
    _check_consistent(out, digits_target, y, tl)


@pytest.mark.parametrize("name", MIN_NORM)
@SETTINGS
@given(data=st.data())
def test_min_norm_attack_in_range_and_consistent(name, data, digits_target, batch):
    _usable(name, digits_target)
    info = ATTACKS[name]
    x, y = batch
    norm = data.draw(st.sampled_from(sorted(info.norms)), label="norm")
    quantize = data.draw(st.booleans(), label="quantize")
    targeted = info.targeted and data.draw(st.booleans(), label="targeted")
    tl = (y + 1 + torch.arange(N) % 9) % 10 if targeted else None
    out = run_attack(name, digits_target, x, y, _fast(name, {"norm": norm}), target_labels=tl, quantize=quantize)
    assert out.x_adv.shape == x.shape
    assert out.x_adv.dtype == x.dtype
    _in_range(out.x_adv, digits_target)
    _check_consistent(out, digits_target, y, tl)


@pytest.mark.parametrize("name", FIXED)
def test_robust_accuracy_at_eps_zero_is_clean_accuracy(name, digits_target, batch):
    _usable(name, digits_target)
    x, y = batch
    for norm in sorted(ATTACKS[name].norms):
        out = run_attack(name, digits_target, x, y, _fast(name, {"eps": 0.0, "norm": norm}))
        assert torch.equal(out.robust, out.clean_correct)
        assert torch.equal(out.x_adv, x)
