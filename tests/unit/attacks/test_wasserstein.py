"""The Wasserstein attack's pieces on known answers, and its clear errors.

Known answers: moving every unit of mass one pixel costs exactly 1 (p = 2, mass away from the border);
an image is at distance 0 from itself; the exact measurement equals an independent dense LP
(tests/conftest.py) to 1e-6; ``fit_to_ball`` brings any point inside the ball (re-measured exactly).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from aisec.attacks.base import perturbation_norm, project, run_attack
from aisec.attacks.evasion.wasserstein import Wasserstein, WassersteinParams, fit_to_ball, lambertw_exp
from aisec.core.errors import ConfigError
from aisec.core.types import Modality, Norm
from aisec.targets.torch import TorchTarget


def _blob(n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 8, 8)
    x[:, :, 2:6, 2:6] = torch.rand(n, 1, 4, 4, generator=g) + 0.1
    return x


def test_known_distances(exact_wasserstein):
    x = _blob()
    p = WassersteinParams()
    shifted = torch.roll(x, 1, dims=3)
    d = Wasserstein().distance(x, shifted, p)
    torch.testing.assert_close(d, torch.ones(3), atol=1e-6, rtol=0)
    assert Wasserstein().distance(x, x, p).tolist() == [0.0, 0.0, 0.0]
    diag = torch.roll(x, (1, 1), dims=(2, 3))
    torch.testing.assert_close(Wasserstein().distance(x, diag, p), torch.full((3,), 2**0.5), atol=1e-6, rtol=0)
    other = _blob(seed=1)
    ours = Wasserstein().distance(x, other, p).double().numpy()
    np.testing.assert_allclose(ours, exact_wasserstein(x, other, p=2, window=2), atol=1e-6)
    far = torch.roll(x, 4, dims=3)  # beyond the 5 x 5 window: no local plan
    assert torch.isinf(Wasserstein().distance(x, far, p)).all()


def test_fit_to_ball_lands_inside():
    x = _blob(4)
    p = WassersteinParams(eps=0.3)
    moved = torch.roll(x, 1, dims=3) * 1.1  # distance 1 > 0.3, and more mass
    fitted, _ = fit_to_ball(x, moved, p)
    d = Wasserstein().distance(x, fitted, p)
    assert float(d.max()) <= 0.3 + 1e-7 and float(d.min()) > 0.2  # inside, and not needlessly close
    inside, dist = fit_to_ball(x, x, p)
    assert torch.equal(inside, x) and dist.tolist() == [0.0] * 4


def test_lambertw():
    from scipy.special import lambertw

    z = torch.linspace(-30, 200, 500, dtype=torch.float64)
    np.testing.assert_allclose(lambertw_exp(z).numpy(), np.real(lambertw(np.exp(z.numpy()))), rtol=1e-12)
    assert torch.isfinite(lambertw_exp(torch.tensor([5000.0], dtype=torch.float64))).all()  # exp(5000) overflows


def test_attack_stays_in_ball_and_fools(digits_target, digits_test_batch):
    x, y = digits_test_batch
    x, y = x[:16].float(), y[:16].long()
    out = run_attack("wasserstein", digits_target, x, y, {"eps": 0.3, "steps": 10, "sinkhorn_steps": 30})
    assert float(out.distance.max()) <= 0.3 * (1 + 1e-6)
    assert float(out.success.float().mean()) > 0.5
    torch.testing.assert_close(out.distance, Wasserstein().distance(x, out.x_adv, WassersteinParams(eps=0.3)))
    assert out.norm is Norm.WASSERSTEIN and len(out.loss_trace) >= 1


def test_clear_errors(digits_target, digits_test_batch):
    x, y = digits_test_batch
    x, y = x[:4].float(), y[:4].long()
    with pytest.raises(ConfigError, match="supports norms"):
        run_attack("wasserstein", digits_target, x, y, {"norm": "l2"})
    with pytest.raises(ConfigError, match="odd"):
        run_attack("wasserstein", digits_target, x, y, {"kernel_size": 4})
    tab = TorchTarget(nn.Linear(6, 2), input_shape=(6,), num_classes=2, modality=Modality.TABULAR, device="cpu")
    with pytest.raises(ConfigError, match="needs images"):
        run_attack("wasserstein", tab, torch.rand(3, 6), torch.zeros(3, dtype=torch.long))
    signed = TorchTarget(digits_target.module, input_shape=(1, 8, 8), num_classes=10, value_range=(-1.0, 1.0),
                         device="cpu")
    with pytest.raises(ConfigError, match="nonnegative"):
        run_attack("wasserstein", signed, x, y)
    with pytest.raises(ConfigError, match="not a norm of x_adv - x"):
        perturbation_norm(x, Norm.WASSERSTEIN)
    with pytest.raises(ConfigError, match="not a norm of x_adv - x"):
        project(x, x, 0.1, Norm.WASSERSTEIN)
