"""TorchTarget's frozen TorchScript copy answers gradient-free forwards only where it gives the eager logits.

It is a speed choice (prepacked oneDNN weights, in-place activations); it must never change an output, never
answer for weights it was not made from, never replay a trace of data-dependent control flow, and never
stand in for a forward that needs gradients.
"""

from __future__ import annotations

import torch
from torch import nn

from aisec.attacks.base import run_attack
from aisec.targets.torch import TorchTarget


class _Net(nn.Module):
    def __init__(self, branchy: bool = False, noisy: bool = False) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 5)
        self.branchy, self.noisy = branchy, noisy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.noisy:
            x = x + 0.05 * torch.randn_like(x)
        h = torch.max_pool2d(torch.relu(self.c2(torch.relu(self.c1(x)))), 2).flatten(1)
        z = self.fc(h)
        if self.branchy and bool(x.mean() > 0.5):  # data-dependent Python control flow
            z = -z
        return z


def _targets(seed: int = 0, **kw: bool) -> tuple[TorchTarget, TorchTarget, nn.Module]:
    torch.manual_seed(seed)
    net = _Net(**kw)
    ref = _Net(**kw)
    ref.load_state_dict(net.state_dict())
    fast = TorchTarget(net, input_shape=(3, 8, 8), num_classes=5, device="cpu", memory_format="auto")
    plain = TorchTarget(ref, input_shape=(3, 8, 8), num_classes=5, device="cpu", frozen_inference=False)
    return fast, plain, net


def _warm(t: TorchTarget, x: torch.Tensor) -> None:
    t.predict(x)  # the output check (eager)
    t.predict(x)  # the first gradient-free call after it makes the copy


def test_frozen_copy_gives_the_eager_logits_and_leaves_gradients_eager() -> None:
    fast, plain, _ = _targets()
    x = torch.rand(16, 3, 8, 8)
    _warm(fast, x)
    assert fast.frozen_inference and not plain.frozen_inference
    for xs in (x, x[:3], torch.rand(40, 3, 8, 8)):  # other batch sizes than the one traced
        with torch.no_grad():
            torch.testing.assert_close(fast.logits(xs), plain.logits(xs), rtol=1e-5, atol=1e-6)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    za = fast.logits(xa)  # grad mode: the eager module, so there is a graph
    assert za.requires_grad
    ga = torch.autograd.grad(za[:, 1].sum(), xa)[0]
    gb = torch.autograd.grad(plain.logits(xb)[:, 1].sum(), xb)[0]
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)
    assert fast.queries == plain.queries + 2 * 16  # the warm-up calls count, like any other query


def test_changed_weights_drop_the_copy_for_good() -> None:
    fast, plain, net = _targets()
    x = torch.rand(8, 3, 8, 8)
    _warm(fast, x)
    assert fast.frozen_inference
    with torch.no_grad():  # an in-place change (an optimiser step, load_state_dict)
        net.fc.weight.add_(0.5)
        plain.module.fc.weight.add_(0.5)  # type: ignore[union-attr, operator]
    torch.testing.assert_close(fast.predict(x), plain.predict(x), rtol=1e-5, atol=1e-6)
    assert not fast.frozen_inference
    net.fc.weight = nn.Parameter(torch.zeros_like(net.fc.weight))  # a replaced parameter: also eager
    assert torch.allclose(fast.predict(x), torch.softmax(net.fc.bias.expand(8, 5), 1))


def test_replaced_parameter_is_noticed_while_the_copy_is_on() -> None:
    fast, _, net = _targets()
    x = torch.rand(8, 3, 8, 8)
    _warm(fast, x)
    net.fc.weight = nn.Parameter(torch.zeros_like(net.fc.weight), requires_grad=False)
    assert torch.allclose(fast.predict(x), torch.softmax(net.fc.bias.expand(8, 5), 1))
    assert not fast.frozen_inference


def test_training_mode_runs_eager() -> None:
    fast, _, net = _targets()
    x = torch.rand(8, 3, 8, 8)
    _warm(fast, x)
    net.train()
    fast.predict(x)
    assert not fast.frozen_inference


def test_data_dependent_control_flow_stays_eager() -> None:
    fast, plain, _ = _targets(branchy=True)
    lo, hi = 0.4 * torch.rand(8, 3, 8, 8), 0.6 + 0.4 * torch.rand(8, 3, 8, 8)
    _warm(fast, lo)
    assert not fast.frozen_inference  # the trace warned about the Python bool: refused
    for xs in (lo, hi):  # both branches stay right
        torch.testing.assert_close(fast.predict(xs), plain.predict(xs), rtol=1e-5, atol=1e-6)


def test_a_stochastic_model_stays_eager() -> None:
    fast, _, _ = _targets(noisy=True)
    _warm(fast, torch.rand(8, 3, 8, 8))
    assert not fast.frozen_inference


def test_hooks_keep_the_module_eager() -> None:
    fast, _, net = _targets()
    calls: list[int] = []
    net.c1.register_forward_hook(lambda m, i, o: calls.append(1))
    _warm(fast, torch.rand(4, 3, 8, 8))
    before = len(calls)
    fast.predict(torch.rand(4, 3, 8, 8))
    assert not fast.frozen_inference and len(calls) == before + 1  # every forward still runs the hook


def test_only_models_aisec_loaded_get_a_copy_by_default() -> None:
    torch.manual_seed(0)
    given = TorchTarget(_Net(), input_shape=(3, 8, 8), num_classes=5, device="cpu")  # handed over in Python
    asked = TorchTarget(_Net(), input_shape=(3, 8, 8), num_classes=5, device="cpu", frozen_inference=True)
    x = torch.rand(4, 3, 8, 8)
    _warm(given, x)
    _warm(asked, x)
    assert not given.frozen_inference and asked.frozen_inference


def test_square_finds_the_same_examples_on_the_frozen_copy() -> None:
    fast, plain, _ = _targets(seed=1)
    x = torch.rand(24, 3, 8, 8)
    y = plain.predict(x).argmax(1)
    params = {"eps": 0.1, "max_queries": 200}
    a = run_attack("square", fast, x, y, params, seed=0)
    b = run_attack("square", plain, x, y, params, seed=0)
    assert fast.frozen_inference
    assert torch.equal(a.success, b.success)
    assert (a.x_adv - b.x_adv).abs().max() <= 1e-6
    assert a.queries == b.queries
