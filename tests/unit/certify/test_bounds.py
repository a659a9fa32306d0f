"""The ``ibp`` and ``crown`` certifiers: reading models as layer chains, statuses, errors, and a digits MLP
trained with IBP in seconds whose verified robust accuracy is nonzero at small eps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aisec.certify import CERTIFIERS, Certificate
from aisec.certify.bounds import certify_bounds, ibp_margin_bounds, margin_lower_bounds, read_module
from aisec.core.errors import CapabilityError, ConfigError
from aisec.core.types import Access, Capability, OutputKind
from aisec.models.zoo import DigitsCNN, LeNet5
from aisec.targets.torch import TorchTarget


def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def ibp_trained(digits_split: tuple[object, object]) -> tuple[TorchTarget, torch.Tensor, torch.Tensor]:
    """A 64-64-10 digits MLP: 4 clean epochs, then 8 with the IBP loss at eps ramped to 0.1 (Gowal et al.:
    half clean cross-entropy, half that of the worst-case logits) — a few seconds on one core."""
    train, test = digits_split
    x, y = train.x, train.y  # type: ignore[attr-defined]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    net = read_module(model, (1, 8, 8))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(12):
        eps = 0.0 if epoch < 4 else 0.1 * min(1.0, (epoch - 3) / 5)
        for idx in torch.randperm(len(x)).split(64):
            xb, yb = x[idx], y[idx]
            loss = F.cross_entropy(model(xb), yb)
            if eps > 0:
                worst = -ibp_margin_bounds(net, (xb - eps).clamp(0, 1), (xb + eps).clamp(0, 1), yb)
                loss = 0.5 * loss + 0.5 * F.cross_entropy(worst, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    target = TorchTarget(model.eval(), input_shape=(1, 8, 8), num_classes=10, name="ibp-mlp", device="cpu")
    return target, test.x[:200], test.y[:200]  # type: ignore[attr-defined]


def test_registered_under_their_names() -> None:
    assert {"ibp", "crown"} <= set(CERTIFIERS)


def test_ibp_trained_digits_mlp_has_nonzero_verified_accuracy(ibp_trained) -> None:  # type: ignore[no-untyped-def]
    """Verified accuracy is positive at small eps, falls with eps, equals clean accuracy at eps 0, and CROWN
    proves at least as many samples as IBP at most eps (it is usually tighter)."""
    target, x, y = ibp_trained
    radii = [0.0, 0.01, 0.03, 0.05, 0.1]
    clean = float((target.predict(x).argmax(1) == y).float().mean())
    verified = {}
    for method in ("ibp", "crown"):
        certs = CERTIFIERS[method](target, x, y, "linf", radii, {})
        assert [c.radius for c in certs] == radii and all(isinstance(c, Certificate) for c in certs)
        acc = [c.count("proved") / c.n for c in certs]
        verified[method] = acc
        assert acc[0] == pytest.approx(clean)  # eps 0: proved exactly when correct
        assert all(a >= b for a, b in itertools.pairwise(acc))
        assert acc[2] > 0.3  # nonzero verified accuracy at eps 0.03 (~ 8/255)
        for c in certs:
            assert c.count("proved") + c.count("counterexample") + c.count("inconclusive") == c.n
            assert c.count("counterexample") == round((1 - clean) * c.n)  # only the clean mistakes
            assert c.seconds > 0 and c.params["seconds_per_sample"] == pytest.approx(c.seconds / c.n)
    assert sum(c >= i for c, i in zip(verified["crown"], verified["ibp"], strict=True)) >= 4
    print("verified accuracy", {m: [round(a, 3) for a in v] for m, v in verified.items()}, "clean", clean)


def test_attack_results_turn_samples_into_counterexamples(ibp_trained) -> None:  # type: ignore[no-untyped-def]
    target, x, y = ibp_trained
    x, y = x[:20], y[:20]
    broken = np.zeros(20, dtype=bool)
    broken[:5] = True
    certs = certify_bounds("ibp", target, x, y, "linf", [0.0, 0.01], {"broken": broken})
    assert all((c.status[:5] == "counterexample").all() for c in certs)
    assert certs[0].params["attack_results"] is True
    per_radius = np.zeros((2, 20), dtype=bool)
    correct = int(np.flatnonzero((target.predict(x).argmax(1) == y).numpy())[0])
    per_radius[1, correct] = True  # an "attack" that broke a sample at eps 0, where the bound is the margin itself
    certs = certify_bounds("crown", target, x, y, "linf", [0.01, 0.0], {"broken": per_radius})
    assert certs[1].status[correct] == "counterexample" and certs[0].status[correct] != "counterexample"
    assert certs[0].notes == [] and "outside the ball" in certs[1].notes[0]
    with pytest.raises(ConfigError, match="no samples"):
        certify_bounds("ibp", target, x[:0], y[:0], "linf", [0.01], {})
    with pytest.raises(ConfigError, match="one boolean per sample"):
        certify_bounds("ibp", target, x, y, "linf", [0.01], {"broken": np.zeros(3, dtype=bool)})
    with pytest.raises(ConfigError, match="booleans"):
        certify_bounds("ibp", target, x, y, "linf", [0.01], {"broken": np.zeros(20)})


def test_bad_norm_and_radius_are_config_errors() -> None:
    target = TorchTarget(_mlp(), input_shape=(1, 8, 8), num_classes=10, device="cpu")
    x, y = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    with pytest.raises(ConfigError, match="Linf balls"):
        CERTIFIERS["ibp"](target, x, y, "l2", [0.1], {})
    with pytest.raises(ConfigError, match=">= 0"):
        CERTIFIERS["crown"](target, x, y, "linf", [-0.1], {})


class _GreyBox:
    def __init__(self, spec: object) -> None:
        self.spec = spec.model_copy(  # type: ignore[attr-defined]
            update={"access": Access.GREY, "capabilities": frozenset({Capability.PROBABILITIES})})


def test_non_white_box_target_is_a_capability_error() -> None:
    target = TorchTarget(_mlp(), input_shape=(1, 8, 8), num_classes=10, device="cpu")
    with pytest.raises(CapabilityError, match=r"needs gradients.*smoothing"):
        CERTIFIERS["ibp"](_GreyBox(target.spec), torch.rand(2, 1, 8, 8), torch.tensor([0, 1]), "linf",  # type: ignore[arg-type]
                          [0.1], {})


def test_unsupported_layers_are_named() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 10))
    with pytest.raises(CapabilityError, match=r"layer '2' \(torch.nn.modules.activation.Tanh\)"):
        read_module(net, (1, 8, 8))

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(x + self.a(x))  # type: ignore[no-any-return]

    with pytest.raises(CapabilityError, match="not a chain"):
        read_module(Residual(), (4,))

    class Sliced(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x)[:, :3]  # type: ignore[no-any-return]

    with pytest.raises(CapabilityError, match="getitem"):
        read_module(Sliced(), (4,))
    with pytest.raises(CapabilityError, match="padding"):
        net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2, padding=1), nn.Flatten(), nn.Linear(32, 2))
        target = TorchTarget(net, input_shape=(1, 8, 8), num_classes=2, device="cpu")
        CERTIFIERS["crown"](target, torch.rand(2, 1, 8, 8), torch.tensor([0, 1]), "linf", [0.01], {})


@pytest.mark.parametrize("arch", [DigitsCNN, LeNet5])
def test_custom_forwards_are_read_through_fx(arch: type[nn.Module]) -> None:
    """DigitsCNN (nested Sequentials) and LeNet5 (``x.reshape(x.shape[0], -1)`` in forward) read as chains
    that reproduce the model's logits."""
    torch.manual_seed(0)
    model = arch().eval()
    shape = (1, 8, 8) if arch is DigitsCNN else (1, 28, 28)
    net = read_module(model, shape)
    x = torch.rand(3, *shape)
    with torch.no_grad():
        torch.testing.assert_close(net.forward(x), model(x))


def test_normalisation_and_softmax_output_are_handled() -> None:
    """A declared normalisation is the first layer (same bounds as folding it into the model by hand), and a
    model that ends in Softmax, declared to output probabilities, is bounded on its logits."""
    model = _mlp(1).eval()
    norm = {"mean": (0.5,), "std": (0.25,)}
    folded = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    folded.load_state_dict(model.state_dict())
    with torch.no_grad():
        folded[1].weight.mul_(4.0)
        folded[1].bias.sub_(model[1].weight.sum(1) * 2.0)
    x, y = torch.rand(5, 1, 8, 8), torch.randint(0, 10, (5,))
    normed = TorchTarget(model, input_shape=(1, 8, 8), num_classes=10, normalization=norm, device="cpu")
    plain = TorchTarget(folded, input_shape=(1, 8, 8), num_classes=10, device="cpu")
    soft = TorchTarget(nn.Sequential(*folded, nn.Softmax(1)), input_shape=(1, 8, 8), num_classes=10, device="cpu",
                       output=OutputKind.PROBABILITIES)
    for method in ("ibp", "crown"):
        a = margin_lower_bounds(method, normed, x, y, 0.02)
        b = margin_lower_bounds(method, plain, x, y, 0.02)
        c = margin_lower_bounds(method, soft, x, y, 0.02)
        np.testing.assert_allclose(a, b, atol=1e-4)
        np.testing.assert_allclose(c, b, atol=1e-6)
    with pytest.raises(CapabilityError, match="final Softmax"):
        read_module(nn.Sequential(*folded, nn.Softmax(1)), (1, 8, 8))
