"""Must-hold properties of the IBP and CROWN bounds on random nets of every supported layer kind: no
point of the ball has a margin below the bound (soundness, against sampled corners and interior points
and a PGD search), and the bounds only loosen as eps grows."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from aisec.certify.bounds import crown_margin_bounds, ibp_margin_bounds, read_module


def _net(kind: str, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    if kind == "mlp":
        net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.BatchNorm1d(12), nn.Linear(12, 8), nn.ReLU(),
                            nn.Linear(8, 4))
    elif kind == "cnn":
        net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(3, 4, 2, stride=1), nn.ReLU(), nn.AvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))
    elif kind == "conv1d":  # rows of the 4x4 input as a 4-channel sequence; autograd's transpose of Conv1d
        net = nn.Sequential(nn.Flatten(1, 2), nn.Conv1d(4, 5, 2), nn.ReLU(), nn.Flatten(), nn.Linear(15, 4))
    else:  # 'same' padding and adaptive pooling: the transposes by autograd
        net = nn.Sequential(nn.Conv2d(1, 3, 3, padding="same", stride=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                            nn.Conv2d(3, 4, 2, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16, 4))
    for m in net:
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(-1.5, 1.5)  # negative scales too
    return net.eval()


def _margins(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = net(x)
    return z.gather(1, y.view(-1, 1)) - z


@settings(max_examples=16, deadline=None, derandomize=True)
@given(kind=st.sampled_from(["mlp", "cnn", "conv1d", "adaptive"]), seed=st.integers(0, 10_000),
       eps=st.floats(0.0, 0.3))
def test_no_point_in_the_ball_has_a_margin_below_the_bound(kind: str, seed: int, eps: float) -> None:
    net = _net(kind, seed)
    chain = read_module(net, (1, 4, 4))
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 1, 4, 4, generator=g)
    y = torch.randint(0, 4, (3,), generator=g)
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    with torch.no_grad():
        ibp, crown = ibp_margin_bounds(chain, lo, hi, y), crown_margin_bounds(chain, lo, hi, y)
        u = torch.rand(256, *x.shape, generator=g)
        u[:128] = u[:128].round()  # corners of the box, where ReLU nets take their extremes
        pts = lo + (hi - lo) * u
        sampled = _margins(net, pts.reshape(-1, 1, 4, 4), y.repeat(256)).reshape(256, 3, 4).min(0).values
    # a few PGD steps towards the smallest margin of each class
    xa = ((lo + hi) / 2).repeat(4, 1, 1, 1).requires_grad_(True)
    ys, js = y.repeat(4), torch.arange(4).repeat_interleave(3)
    for _ in range(20):
        z = net(xa)
        m = z.gather(1, ys.view(-1, 1)).squeeze(1) - z.gather(1, js.view(-1, 1)).squeeze(1)
        (grad,) = torch.autograd.grad(m.sum(), xa)
        step = (hi - lo).repeat(4, 1, 1, 1) / 8
        xa = torch.min(torch.max(xa.detach() - step * grad.sign(), lo.repeat(4, 1, 1, 1)),
                       hi.repeat(4, 1, 1, 1)).requires_grad_(True)
    with torch.no_grad():
        z = net(xa)
        pgd = (z.gather(1, ys.view(-1, 1)).squeeze(1) - z.gather(1, js.view(-1, 1)).squeeze(1)).view(4, 3).T
    worst = torch.minimum(sampled, pgd)
    assert (ibp <= worst + 1e-5).all() and (crown <= worst + 1e-5).all()


@settings(max_examples=8, deadline=None, derandomize=True)
@given(kind=st.sampled_from(["mlp", "cnn"]), seed=st.integers(0, 10_000))
def test_bounds_loosen_as_eps_grows(kind: str, seed: int) -> None:
    net = _net(kind, seed)
    chain = read_module(net, (1, 4, 4))
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(4, 1, 4, 4, generator=g), torch.randint(0, 4, (4,), generator=g)
    previous = None
    crown_monotone = total = 0
    for eps in (0.0, 0.01, 0.03, 0.1, 0.3):
        lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
        with torch.no_grad():
            now = torch.stack([ibp_margin_bounds(chain, lo, hi, y), crown_margin_bounds(chain, lo, hi, y)])
        if previous is None:
            exact = _margins(net, x, y).detach()
            torch.testing.assert_close(now, torch.stack([exact, exact]), atol=1e-5, rtol=0)  # eps 0: the margin
        else:
            assert (now[0] <= previous[0] + 1e-5).all()
            crown_monotone += int((now[1] <= previous[1] + 1e-5).sum())
            total += now[1].numel()
        previous = now
    assert crown_monotone >= 0.9 * total
