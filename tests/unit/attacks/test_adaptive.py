"""Unit tests of the adaptive-attack wrappers and the named preprocessings: forward passes equal the
defended model's, gradients flow where they must, queries are counted, errors are clear."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aisec.attacks.adaptive import BPDATarget, EOTTarget, adaptive_target, is_randomised, preprocessing
from aisec.attacks.base import run_attack
from aisec.core.errors import ConfigError
from aisec.core.registry import get, names
from aisec.targets.torch import TorchTarget


class _Noisy(torch.nn.Module):
    def __init__(self, m: torch.nn.Module, sigma: float = 0.2) -> None:
        super().__init__()
        self.m, self.sigma = m, sigma

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.m((z + self.sigma * torch.randn_like(z)).clamp(0, 1))


@pytest.fixture(scope="module")
def batch(digits_test_batch):
    x, y = digits_test_batch
    return x[:16].float(), y[:16].long()


def test_registry_family_lists_the_preprocessings():
    assert set(names("preprocessing")) >= {"bit-depth", "threshold", "jpeg-like"}
    info = get("preprocessing", "bit-depth")
    assert info.argument == "bits" and info.default == "4" and not info.differentiable
    assert info.paper.startswith("https://")
    assert get("preprocessing", "jpeg").name == "jpeg-like"  # alias


@pytest.mark.parametrize("spec, msg", [
    ("nope", "unknown preprocessing"), ("bit-depth:x", "integer"), ("bit-depth:0", "1..16"),
    ("threshold:1.5", "between 0 and 1"), ("jpeg-like:0", "1..100"),
])
def test_bad_preprocessing_names_are_config_errors(spec, msg):
    with pytest.raises(ConfigError, match=msg):
        preprocessing(spec)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(bits=st.integers(1, 8), lo=st.floats(-2, 1), width=st.floats(0.5, 3), seed=st.integers(0, 100))
def test_bit_depth_stays_in_range_on_its_grid_and_is_idempotent(bits, lo, width, seed):
    hi = lo + width
    x = lo + width * torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    h = preprocessing(f"bit-depth:{bits}")
    out = h(x, (lo, hi))
    assert float(out.min()) >= lo - 1e-5 and float(out.max()) <= hi + 1e-5
    u = (out - lo) / width * (2**bits - 1)
    assert torch.allclose(u, u.round(), atol=1e-3)  # on the 2^bits-level grid
    assert float((out - x).abs().max()) <= width / (2 * (2**bits - 1)) + 1e-5  # nearest level
    assert torch.allclose(h(out, (lo, hi)), out, atol=1e-5)


def test_threshold_and_jpeg_like():
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = preprocessing("threshold:0.3")(x, (0.0, 1.0))
    assert torch.equal(t, (x >= 0.3).float())
    j = preprocessing("jpeg-like:50")
    out = j(x, (0.0, 1.0))
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.allclose(j(out, (0.0, 1.0)), out, atol=0.05)  # nearly idempotent (rounding in between)
    hi_q = preprocessing("jpeg-like:100")(x, (0.0, 1.0))
    assert float((hi_q - x).abs().max()) < 4 / 255  # quality 100: every coefficient rounded to 1/255
    odd = j(torch.rand(2, 3, 10, 13), (0.0, 1.0))  # padded to 16x16 and cropped back
    assert odd.shape == (2, 3, 10, 13)


def test_bpda_forward_is_the_defended_model_and_its_gradient_is_straight_through(digits_model, batch):
    x, _ = batch
    g = TorchTarget(digits_model, input_shape=(1, 8, 8), num_classes=10, device="cpu")
    h = preprocessing("bit-depth:3")
    defended = TorchTarget(torch.nn.Sequential(_Pre(h), digits_model), input_shape=(1, 8, 8), num_classes=10,
                           device="cpu")
    bpda = BPDATarget(g, "bit-depth:3")
    assert torch.equal(bpda.predict(x), defended.predict(x))
    assert bpda.spec.name.startswith("bpda(bit-depth:3)")
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(bpda.logits(xr)[:, 0].sum(), xr)
    xq = h(x, (0.0, 1.0)).requires_grad_(True)
    (ref,) = torch.autograd.grad(g.logits(xq)[:, 0].sum(), xq)
    assert torch.allclose(grad, ref)  # identity in the backward pass, evaluated at h(x)
    xd = x.clone().requires_grad_(True)
    (zero,) = torch.autograd.grad(defended.logits(xd)[:, 0].sum(), xd)
    assert float(zero.abs().max()) == 0.0  # the masked gradient BPDA replaces
    # A user-given approximation: a = 2x doubles the straight-through gradient.
    twice = BPDATarget(g, lambda v: h(v, (0.0, 1.0)), approx=lambda v: 2 * v)
    xr2 = x.clone().requires_grad_(True)
    (g2,) = torch.autograd.grad(twice.logits(xr2)[:, 0].sum(), xr2)
    assert torch.allclose(g2, 2 * ref)


class _Pre(torch.nn.Module):
    def __init__(self, h) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.h = h

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.h(z, (0.0, 1.0))


def test_bpda_needs_a_white_box_classifier(batch):
    from aisec.core.target import TargetSpec
    from aisec.core.types import Access, Capability, Modality, OutputKind

    class Box:
        spec = TargetSpec(name="box", modality=Modality.IMAGE, input_shape=(1, 8, 8), num_classes=10,
                          access=Access.BLACK, output=OutputKind.PROBABILITIES,
                          capabilities=frozenset({Capability.PROBABILITIES}))
        queries = 0

    with pytest.raises(ConfigError, match="white-box"):
        BPDATarget(Box(), "bit-depth:4")  # type: ignore[arg-type]


def test_eot_averages_draws_counts_queries_and_predicts_one_draw(digits_model, batch):
    x, _ = batch
    noisy = TorchTarget(_Noisy(digits_model), input_shape=(1, 8, 8), num_classes=10, device="cpu")
    eot = EOTTarget(noisy, draws=5)
    q0 = noisy.queries
    torch.manual_seed(1)
    z = eot.logits(x)
    assert noisy.queries - q0 == 5 * len(x)
    torch.manual_seed(1)
    ref = torch.stack([noisy.logits(x) for _ in range(5)]).mean(0)
    assert torch.allclose(z, ref)
    torch.manual_seed(2)
    p = eot.predict(x)
    torch.manual_seed(2)
    assert torch.equal(p, noisy.predict(x))  # the deployed model's own (random) answer
    probs = EOTTarget(noisy, draws=4, average="probs", predict_draws=3)
    lp = probs.logits(x)
    assert torch.allclose(lp.exp().sum(1), torch.ones(len(x)), atol=1e-5)
    assert torch.allclose(probs.predict(x).sum(1), torch.ones(len(x)), atol=1e-5)
    assert is_randomised(noisy, x) and not is_randomised(TorchTarget(digits_model, input_shape=(1, 8, 8),
                                                                     num_classes=10, device="cpu"), x)
    with pytest.raises(ConfigError, match="draws"):
        EOTTarget(noisy, draws=0)


def test_adaptive_target_composes_bpda_inside_eot_and_pgd_runs_through_it(digits_model, batch):
    x, y = batch
    g = TorchTarget(digits_model, input_shape=(1, 8, 8), num_classes=10, device="cpu")
    assert adaptive_target(g) is g
    t = adaptive_target(g, bpda="bit-depth:4", eot=2)
    assert isinstance(t, EOTTarget) and isinstance(t.target, BPDATarget)
    q0 = g.queries
    out = run_attack("pgd", t, x, y, {"eps": 0.1, "steps": 3})
    # 3 steps x 2 draws + clean and adversarial predictions, each of len(x) samples.
    assert out.queries == g.queries - q0 == (3 * 2 + 2) * len(x)
    assert float((out.x_adv - x).abs().max()) <= 0.1 + 1e-6
    with pytest.raises(ConfigError, match="eot"):
        adaptive_target(g, eot=0)


def test_loss_parameter_is_validated(digits_target, batch):
    x, y = batch
    with pytest.raises(ConfigError, match="loss"):
        run_attack("pgd", digits_target, x, y, {"loss": "hinge"})
    assert math.isfinite(float(run_attack("fgsm", digits_target, x, y, {"loss": "dlr"}).distance.max()))
