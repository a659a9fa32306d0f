"""Known answers for FAB: its projection against a linear-programming solver, and FAB on linear models.

- ``project_to_hyperplane`` solves a convex problem in closed form; scipy solves the same problem
  (linprog for l1/linf, SLSQP for l2) on small random boxes, hyperplanes and points. The norms must
  agree to 1e-5 relative (solver tolerance), the result must lie on the plane (1e-5) and in the box;
  when the box cannot reach the plane the answer is the box point nearest it.
- On a linear classifier the linearisation is exact, so the smallest adversarial distance is known:
  ``|f| / ||w||_dual`` for the nearest boundary (wide value range), or the LP optimum when the value
  range binds. FAB can never go below it (up to float error, 1e-4 relative) and, with its backward
  steps and ``eta = 1.05``, ends within 1% above it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize
from torch import nn

from aisec.attacks.base import perturbation_norm, run_attack
from aisec.attacks.evasion._fab import project_to_hyperplane
from aisec.core.types import Modality, Norm
from aisec.targets.torch import TorchTarget

D = 6


def _lp_min_norm(t: np.ndarray, w: np.ndarray, b: float, lo: float, hi: float, norm: str) -> float | None:
    """min ||d|| s.t. w . (t + d) = b, lo <= t + d <= hi, by scipy; None if infeasible."""
    dim = t.shape[0]
    bounds_d = [(lo - ti, hi - ti) for ti in t]
    r = b - float(w @ t)
    if norm == "l2":
        res = minimize(lambda d: d @ d, np.zeros(dim), jac=lambda d: 2 * d, bounds=bounds_d,
                       constraints=[{"type": "eq", "fun": lambda d: w @ d - r, "jac": lambda d: w}],
                       method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
        return float(np.sqrt(res.fun)) if res.success else None
    # Variables [d (D), s]: linf minimises s with |d_i| <= s; l1 minimises sum s_i with |d_i| <= s_i.
    k = 1 if norm == "linf" else dim
    c = np.r_[np.zeros(dim), np.ones(k)]
    eye = np.eye(dim)
    sc = -np.ones((dim, 1)) if k == 1 else -eye
    a_ub = np.block([[eye, sc], [-eye, sc]])
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(2 * dim), A_eq=np.r_[w, np.zeros(k)][None], b_eq=[r],
                  bounds=bounds_d + [(0, None)] * k, method="highs")
    return float(res.fun) if res.status == 0 else None


@pytest.mark.parametrize("norm", ["l2", "linf", "l1"])
def test_projection_matches_scipy(norm):
    rng = np.random.default_rng(0)
    n = 40
    t = rng.uniform(0, 1, (n, D))
    t[:, 0] = 1.0  # coordinates on the box boundary
    w = rng.normal(size=(n, D))
    w[::5, 1] = 0.0  # coordinates that do not matter
    b = (w * t).sum(1) + rng.normal(scale=0.6, size=n)
    d = project_to_hyperplane(torch.tensor(t), torch.tensor(w), torch.tensor(b), 0.0, 1.0, Norm(norm)).numpy()
    z = t + d
    assert z.min() >= -1e-9 and z.max() <= 1 + 1e-9
    feasible = 0
    for i in range(n):
        ref = _lp_min_norm(t[i], w[i], float(b[i]), 0.0, 1.0, norm)
        if ref is None:  # the box cannot reach the plane: every coordinate moves all the way toward it
            toward = np.sign(w[i] * (b[i] - w[i] @ t[i]))
            corner = np.where(toward > 0, 1.0, np.where(toward < 0, 0.0, t[i]))
            np.testing.assert_allclose(z[i], corner, atol=1e-9)
            continue
        feasible += 1
        np.testing.assert_allclose(w[i] @ z[i], b[i], atol=1e-5)
        got = float(perturbation_norm(torch.tensor(d[i : i + 1]), Norm(norm))[0])
        assert got == pytest.approx(ref, rel=1e-5, abs=1e-7), (i, got, ref)
    assert feasible >= n // 2  # the test exercises the closed form, not only the corners


def _linear_target(k: int, seed: int, value_range: tuple[float, float]) -> TorchTarget:
    torch.manual_seed(seed)
    lin = nn.Linear(20, k)
    return TorchTarget(lin, input_shape=(20,), num_classes=k, modality=Modality.TABULAR,
                       value_range=value_range, device="cpu")


@pytest.mark.parametrize("name", ["fab", "fab-t"])
@pytest.mark.parametrize("norm", ["l2", "linf", "l1"])
def test_linear_model_distance_is_the_nearest_boundary(name, norm):
    k = 5
    target = _linear_target(k, 2, (-100.0, 100.0))  # a range that never binds
    x = torch.randn(16, 20, generator=torch.Generator().manual_seed(3)) * 2
    w, b = target.module.weight.detach(), target.module.bias.detach()
    z = x @ w.T + b
    y = z.argmax(1)
    f = z - z.gather(1, y[:, None])
    wd = w[None] - w[y][:, None]
    dual = {"l2": lambda v: v.norm(dim=2), "linf": lambda v: v.abs().sum(2), "l1": lambda v: v.abs().amax(2)}[norm]
    dist = f.abs() / dual(wd).clamp_min(1e-12)
    dist.scatter_(1, y[:, None], torch.inf)
    exact = dist.amin(1)
    # fab-t: eps = 0 so that no sample is done early and every runner-up class is tried (with a
    # large eps the first class that breaks a sample ends its search, nearest or not).
    eps = 100.0 if name == "fab" else 0.0
    out = run_attack(name, target, x, y, {"norm": norm, "steps": 30, "eps": eps})
    assert bool(out.success.all())
    ratio = out.distance / exact
    assert float(ratio.min()) >= 1 - 1e-4, ratio
    assert float(ratio.max()) <= 1.01, ratio


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_linear_model_in_a_binding_box_never_beats_the_lp(norm):
    target = _linear_target(2, 4, (0.0, 1.0))
    x = torch.rand(12, 20, generator=torch.Generator().manual_seed(5))
    w, b = target.module.weight.detach().double(), target.module.bias.detach().double()
    y = (x.double() @ w.T + b).argmax(1)
    out = run_attack("fab", target, x, y, {"norm": norm, "steps": 30, "eps": 100.0})
    wd = (w[1] - w[0]).numpy()
    checked = 0
    for i in range(len(y)):
        s = 1.0 if int(y[i]) == 0 else -1.0  # the boundary z_other = z_y, crossed in the direction s * wd
        ref = _lp_min_norm(x[i].double().numpy(), s * wd, -s * float(b[1] - b[0]), 0.0, 1.0, norm)
        if ref is None:
            assert not bool(out.success[i])
            continue
        checked += 1
        assert bool(out.success[i])
        assert float(out.distance[i]) >= ref * (1 - 1e-4)
        assert float(out.distance[i]) <= ref * 1.01
    assert checked >= 6



@pytest.mark.parametrize("rounds", [1, 3, None])
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_water_filling_solve_equals_the_sorted_solve(norm, rounds, monkeypatch):
    """The saturation-set iteration (with the sort as fallback after ``rounds``) and the full sort agree."""
    from aisec.attacks.evasion import _fab

    if rounds is not None:
        monkeypatch.setattr(_fab, "_FILL_ROUNDS", rounds)
    g = torch.Generator().manual_seed(7)
    n, d = 64, 3 * 32 * 32
    t = torch.rand(n, d, generator=g, dtype=torch.float64)
    t[:, : d // 3] = (t[:, : d // 3] > 0.5).double()  # many coordinates on the box boundary (room 0)
    w = torch.randn(n, d, generator=g, dtype=torch.float64)
    w[::4, ::7] = 0.0
    scale = torch.logspace(-3, 4, n, dtype=torch.float64)
    b = (w * t).sum(1) + torch.randn(n, generator=g, dtype=torch.float64) * scale
    r = (b - (w * t).sum(1)).abs()
    sign = torch.where(b - (w * t).sum(1) >= 0, 1.0, -1.0).double()
    ws = w * sign[:, None]
    a = ws.abs()
    room = torch.where(a > 0, torch.where(ws > 0, 1 - t, t).clamp_min(0), torch.zeros_like(t))
    if norm == "linf":
        kinks, slope = torch.where(a > 0, room, torch.full_like(a, torch.inf)), a
    else:
        kinks, slope = torch.where(a > 0, room / a.clamp_min(1e-30), torch.full_like(a, torch.inf)), a * a
    s_fast, f_fast = _fab._piecewise_solve(r, kinks, slope, a * room)
    s_sort, f_sort = _fab._piecewise_solve_sorted(r, kinks, slope, a * room)
    assert torch.equal(f_fast, f_sort) and bool(f_fast.any()) and not bool(f_fast.all())
    torch.testing.assert_close(s_fast[f_fast], s_sort[f_sort], rtol=1e-9, atol=1e-12)
    assert bool(torch.isinf(s_fast[~f_fast]).all())
