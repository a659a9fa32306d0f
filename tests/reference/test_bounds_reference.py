"""IBP and CROWN against exact answers: the worst-case margin of a small ReLU net over an Linf box, solved
as a mixed-integer program (big-M ReLU encoding, scipy's ``milp`` / HiGHS), and — where its source is
importable — auto_LiRPA's IBP and CROWN on the same nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn

from aisec.certify.bounds import crown_margin_bounds, ibp_margin_bounds, read_module


def _net(seed: int, d: int = 6, h: int = 12, k: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, k)).double().eval()


def exact_min_margin(net: nn.Sequential, lo: np.ndarray, hi: np.ndarray, y: int, j: int) -> float:
    """``min z_y - z_j`` over ``lo <= x <= hi`` for ``Linear-ReLU-Linear``: a MILP in ``(x, h, a)`` with
    ``h = relu(W1 x + b1)`` encoded by ``h >= z, h >= 0, h <= z - l (1 - a), h <= u a`` (``a`` binary)."""
    w1, b1 = net[0].weight.detach().numpy(), net[0].bias.detach().numpy()
    w2, b2 = net[2].weight.detach().numpy(), net[2].bias.detach().numpy()
    d, h = w1.shape[1], w1.shape[0]
    l_pre = np.clip(w1, 0, None) @ lo + np.clip(w1, None, 0) @ hi + b1  # exact bounds of an affine map on a box
    u_pre = np.clip(w1, 0, None) @ hi + np.clip(w1, None, 0) @ lo + b1
    rows, lb, ub = [], [], []

    def row(cx: np.ndarray, ch: np.ndarray, ca: np.ndarray, low: float, up: float) -> None:
        rows.append(np.concatenate([cx, ch, ca]))
        lb.append(low)
        ub.append(up)

    zero_x, zero_h = np.zeros(d), np.zeros(h)
    for i in range(h):
        e = np.eye(h)[i]
        row(-w1[i], e, zero_h, b1[i], np.inf)  # h_i - w x >= b  (h >= z)
        row(-w1[i], e, -l_pre[i] * e if l_pre[i] < 0 else zero_h, -np.inf,
            b1[i] - min(l_pre[i], 0.0))  # h - z <= -l (1 - a)
        row(zero_x, e, -max(u_pre[i], 0.0) * e, -np.inf, 0.0)  # h <= u a
    c = np.concatenate([zero_x, w2[y] - w2[j], zero_h])
    box = Bounds(np.concatenate([lo, zero_h, zero_h]), np.concatenate([hi, np.full(h, np.inf), np.ones(h)]))
    res = milp(c, constraints=LinearConstraint(np.array(rows), lb, ub), bounds=box,
               integrality=np.concatenate([np.zeros(d + h), np.ones(h)]))
    assert res.status == 0, res.message
    return float(res.fun + b2[y] - b2[j])


def _bounds(net: nn.Sequential, lo: np.ndarray, hi: np.ndarray, y: int) -> tuple[np.ndarray, np.ndarray]:
    chain = read_module(net, (lo.shape[0],))
    tl, th, ty = torch.from_numpy(lo)[None], torch.from_numpy(hi)[None], torch.tensor([y])
    with torch.no_grad():
        return ibp_margin_bounds(chain, tl, th, ty)[0].numpy(), crown_margin_bounds(chain, tl, th, ty)[0].numpy()


def test_exact_milp_is_attained_by_a_point_and_bounds_lie_below_it() -> None:
    """Both bounds lie below the exact worst margin (soundness); CROWN is at least as tight as IBP on most
    margins; the MILP itself is checked by evaluating the net on dense samples (never below it)."""
    rng = np.random.default_rng(0)
    crown_tighter = total = 0
    for seed in range(6):
        net = _net(seed)
        x = rng.uniform(0, 1, 6)
        eps = 0.05 + 0.05 * seed
        lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
        y = int(net(torch.from_numpy(x)[None]).argmax())
        ibp, crown = _bounds(net, lo, hi, y)
        pts = torch.from_numpy(rng.uniform(lo, hi, (4000, 6)))
        with torch.no_grad():
            z = net(pts).numpy()
        for j in range(3):
            if j == y:
                assert ibp[j] == 0 and crown[j] == 0
                continue
            exact = exact_min_margin(net, lo, hi, y, j)
            assert (z[:, y] - z[:, j]).min() >= exact - 1e-9
            assert ibp[j] <= exact + 1e-9 and crown[j] <= exact + 1e-9
            crown_tighter += int(crown[j] >= ibp[j] - 1e-12)
            total += 1
    assert crown_tighter >= 0.8 * total


def test_crown_proves_a_margin_that_is_large_and_exact_at_zero_radius() -> None:
    """At eps = 0 both bounds are the margin itself; with a large exact margin at small eps CROWN proves it."""
    net = _net(3)
    x = np.full(6, 0.5)
    y = int(net(torch.from_numpy(x)[None]).argmax())
    ibp, crown = _bounds(net, x, x, y)
    with torch.no_grad():
        z = net(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(ibp, z[y] - z, atol=1e-12)
    np.testing.assert_allclose(crown, z[y] - z, atol=1e-12)
    lo, hi = x - 0.02, x + 0.02
    _, crown = _bounds(net, lo, hi, y)
    exact = [exact_min_margin(net, lo, hi, y, j) for j in range(3) if j != y]
    assert min(exact) > 0.05
    assert np.delete(crown, y).min() > 0


def _lirpa() -> object:
    return pytest.importorskip("auto_LiRPA", reason="auto_LiRPA does not install beside torch 2.13; run with its "
                                                    "source on PYTHONPATH to cross-check")


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_matches_auto_lirpa_where_importable(arch: str) -> None:
    """Same IBP bounds as auto_LiRPA; CROWN the same on an MLP, and on a CNN with max-pooling (whose relaxation
    differs from auto_LiRPA's) within 1e-3 of it (much tighter on the digits CNN, see bench/_bench_bounds.py)."""
    lirpa = _lirpa()
    torch.manual_seed(0)
    if arch == "mlp":
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10))
    else:
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(4, 8, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 10))
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2)
    net.eval()
    x, y = torch.rand(4, 1, 8, 8), torch.randint(0, 10, (4,))
    lo, hi = (x - 0.03).clamp(0, 1), (x + 0.03).clamp(0, 1)
    chain = read_module(net, (1, 8, 8))
    spec = torch.eye(10)[y].unsqueeze(1) - torch.eye(10).unsqueeze(0)
    bounded = lirpa.BoundedModule(net, torch.zeros(1, 1, 8, 8))  # type: ignore[attr-defined]
    bx = lirpa.BoundedTensor(x, lirpa.PerturbationLpNorm(norm=float("inf"), x_L=lo, x_U=hi))  # type: ignore[attr-defined]
    with torch.no_grad():
        ours_ibp, ours_crown = ibp_margin_bounds(chain, lo, hi, y), crown_margin_bounds(chain, lo, hi, y)
    ref_ibp = bounded.compute_bounds(x=(bx,), method="IBP", C=spec)[0].detach()
    ref_crown = bounded.compute_bounds(x=(bx,), method="CROWN", C=spec)[0].detach()
    torch.testing.assert_close(ours_ibp, ref_ibp, atol=1e-5, rtol=1e-5)
    assert (ours_crown >= ref_crown - 1e-3).all()
    if arch == "mlp":
        torch.testing.assert_close(ours_crown, ref_crown, atol=1e-5, rtol=1e-5)
