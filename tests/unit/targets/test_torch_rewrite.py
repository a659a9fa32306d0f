"""The exact rewrite (max-pooling before the ReLU) changes no logit and no input gradient, and TorchTarget
drops it whenever it could stop standing for the module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aisec.attacks.base import run_attack
from aisec.targets._rewrite import pool_before_relu
from aisec.targets.torch import TorchTarget


class _Mixed(nn.Module):
    """ReLU as a module, a function and a method; pooling as a module and a function."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3)
        self.act, self.pool = nn.ReLU(), nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 2 * 2, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.act(self.c1(x)))  # 16 -> 8
        h = F.max_pool2d(F.relu(self.c2(h)), 2, ceil_mode=True)  # 8 -> 4
        h = torch.max_pool2d(self.c3(F.pad(h, (1, 1, 1, 1))).relu(), 2)  # 4 -> 2
        return self.fc(h.flatten(1))


class _Shared(nn.Module):
    """A ReLU output used twice and an in-place ReLU whose input is used twice: neither may be swapped."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=1)
        self.inplace = nn.ReLU(inplace=True)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.c(x))
        left = F.max_pool2d(a, 2).repeat_interleave(2, 2).repeat_interleave(2, 3) + a  # a: two users
        h = self.c(x)
        right = F.max_pool2d(self.inplace(h), 2).repeat_interleave(2, 2).repeat_interleave(2, 3) + h
        return self.fc(torch.cat([left, right], 1)[:, :, ::2, ::2].flatten(1))


def _grads(m: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xr = x.clone().requires_grad_(True)
    z = m(xr)
    (g,) = torch.autograd.grad((z * torch.arange(z.shape[1], dtype=z.dtype)).sum(), xr)
    return z.detach(), g


def test_swapped_pairs_give_the_same_logits_and_gradients() -> None:
    torch.manual_seed(0)
    net = _Mixed().eval()
    gm = pool_before_relu(net)
    assert gm is not None
    code = gm.code
    assert code.count("torch.relu(") == 3 and "act(" not in code  # every pair swapped
    for x in (torch.rand(16, 3, 16, 16), torch.rand(16, 3, 16, 16) - 0.8):  # - 0.8: windows all below zero
        z0, g0 = _grads(net, x)
        z1, g1 = _grads(gm, x)
        assert torch.equal(z0, z1) and torch.equal(g0, g1)


def test_shared_values_are_left_alone() -> None:
    torch.manual_seed(0)
    net = _Shared().eval()
    assert pool_before_relu(net) is None  # nothing could be swapped safely
    x = torch.rand(4, 3, 8, 8)
    t = TorchTarget(net, input_shape=(3, 8, 8), num_classes=5, device="cpu", exact_rewrites=True)
    t.predict(x)
    assert not t.rewritten


def test_untraceable_or_indexed_pooling_is_not_rewritten() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv2d(1, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = F.max_pool2d(F.relu(self.c(x)), 2)
            return h.flatten(1) if x.sum() > 0 else -h.flatten(1)

    class Indexed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c, self.p = nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, return_indices=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.p(F.relu(self.c(x)))[0].flatten(1)

    assert pool_before_relu(Branchy()) is None
    assert pool_before_relu(Indexed()) is None


def _pair() -> tuple[TorchTarget, TorchTarget, nn.Module]:
    torch.manual_seed(1)
    net, ref = _Mixed(), _Mixed()
    ref.load_state_dict(net.state_dict())
    fast = TorchTarget(net, input_shape=(3, 16, 16), num_classes=5, device="cpu", memory_format="auto")
    plain = TorchTarget(ref, input_shape=(3, 16, 16), num_classes=5, device="cpu", exact_rewrites=False,
                        frozen_inference=False)
    return fast, plain, net


def test_target_uses_the_rewrite_for_gradients_and_attacks_agree() -> None:
    fast, plain, _ = _pair()
    x = torch.rand(12, 3, 16, 16)
    y = plain.predict(x).argmax(1)
    fast.predict(x)
    assert fast.rewritten and not plain.rewritten
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ga = torch.autograd.grad(fast.logits(xa)[:, 2].sum(), xa)[0]
    gb = torch.autograd.grad(plain.logits(xb)[:, 2].sum(), xb)[0]
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)
    params = {"eps": 0.03, "steps": 10, "random_start": False}
    a, b = run_attack("pgd", fast, x, y, params), run_attack("pgd", plain, x, y, params)
    assert torch.equal(a.success, b.success) and (a.x_adv - b.x_adv).abs().max() <= 1e-5


def test_weights_changed_in_place_are_seen_and_replaced_modules_drop_the_rewrite() -> None:
    fast, plain, net = _pair()
    x = torch.rand(6, 3, 16, 16)
    fast.predict(x)
    assert fast.rewritten
    with torch.no_grad():
        net.fc.weight.mul_(-1)
        plain.module.fc.weight.mul_(-1)  # type: ignore[union-attr, operator]
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    torch.testing.assert_close(fast.logits(xa), plain.logits(xb), rtol=1e-5, atol=1e-6)
    assert fast.rewritten  # shared parameters: still the same function
    net.fc = nn.Linear(32, 5)  # a replaced submodule: the rewrite would still call the old one
    xa = x.clone().requires_grad_(True)
    torch.testing.assert_close(fast.logits(xa), net(x), rtol=1e-5, atol=1e-6)
    assert not fast.rewritten


def test_training_mode_uses_the_module_as_given() -> None:
    fast, _, net = _pair()
    fast.predict(torch.rand(4, 3, 16, 16))
    net.train()
    xa = torch.rand(4, 3, 16, 16).requires_grad_(True)
    fast.logits(xa)
    assert not fast.rewritten
