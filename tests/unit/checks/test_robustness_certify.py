"""Certificates in the robustness check: smoothing on the digits CNN, and the property every certificate about
the model itself must satisfy — certified accuracy ≤ the attacks' worst case at every radius — checked with an
exact certifier of a linear model (and with ibp / crown where they are registered)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from aisec.certify import CERTIFIERS, Certificate, get_certifier, register_certifier
from aisec.checks.robustness import RobustnessCheck, RobustnessParams
from aisec.core.errors import ConfigError
from aisec.core.target import Target
from aisec.targets.torch import TorchTarget


def _exact_linear(scale: float) -> Any:
    """The exact robust radius of a linear classifier z = Wx + b (no box constraint: a lower bound on the true
    one within [0, 1]): min over j ≠ c of (z_c − z_j) / ‖w_c − w_j‖_dual. ``scale`` > 1 makes it unsound."""

    def certifier(target: Target, x: torch.Tensor, y: torch.Tensor, norm: str, radii: Sequence[float],
                  params: dict[str, Any]) -> list[Certificate]:
        lin = target.module[1]  # type: ignore[attr-defined]
        w, b = lin.weight.detach(), lin.bias.detach()
        z = x.flatten(1) @ w.T + b
        c = z.argmax(1)
        diff = w[c][:, None, :] - w[None, :, :].expand(len(c), -1, -1)
        dual = diff.norm(p=2 if norm == "l2" else 1, dim=2)
        gap = (z.gather(1, c[:, None]) - z) / dual.clamp_min(1e-12)
        gap[torch.arange(len(c)), c] = float("inf")
        rad = (gap.min(1).values * scale).numpy()
        right = (c == y).numpy()
        return [Certificate(method="exact-linear", norm=norm, radius=float(r),
                            status=np.where(right & (rad >= r), "proved",
                                            np.where(right, "inconclusive", "counterexample")).astype(object),
                            certified_radius=np.where(right, rad, np.nan)) for r in radii]

    return certifier


for _name, _scale in (("test-exact-linear", 1.0), ("test-unsound-linear", 10.0)):
    if _name not in CERTIFIERS:
        register_certifier(_name)(_exact_linear(_scale))


@pytest.fixture(scope="module")
def linear_target(digits_split) -> TorchTarget:
    """A multinomial logistic regression on the digits, trained in a second."""
    train, _ = digits_split
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    torch.manual_seed(0)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(train.x), train.y).backward()
        opt.step()
    return TorchTarget(model, input_shape=(1, 8, 8), num_classes=10, name="digits-linear", device="cpu")


@pytest.fixture(scope="module")
def small_data(digits_split):
    _, test = digits_split
    return test.subset(range(64), name="digits-test-64")


def _certified_vs_empirical(result: Any) -> list[tuple[str, float, float, float | None]]:
    return [(c["label"], p["radius"], p["certified_accuracy"], p["empirical"])
            for c in result.summary["certified"] for p in c["points"]]


def test_certified_never_exceeds_empirical_for_a_sound_certifier(linear_target, small_data):
    params = RobustnessParams(attacks=["pgd", {"name": "pgd", "norm": "l2"}, {"name": "deepfool", "norm": "l2"}],
                              eps=[0.02, 0.05, 0.1], eps_l2=[0.25, 0.5, 1.0], samples=64, clever={"enabled": False},
                              certify={"methods": [{"name": "test-exact-linear"},
                                                   {"name": "test-exact-linear", "norm": "l2"}], "samples": 64})
    res = RobustnessCheck().run(linear_target, small_data, params)
    rows = _certified_vs_empirical(res)
    assert {norm for c in res.summary["certified"] for norm in [c["norm"]]} == {"linf", "l2"}
    assert len(rows) == 7  # 3 + the reference 8/255 on linf; 3 on l2 (its reference 0.5 is given)
    for label, radius, cert, emp in rows:
        assert emp is not None and cert <= emp + 1e-12, (label, radius, cert, emp)
    assert not [w for w in res.warnings if "unsound" in w]
    # the attacks' successes became counterexamples where the certificate was inconclusive
    big = next(p for c in res.summary["certified"] if c["norm"] == "l2" for p in c["points"] if p["radius"] == 1.0)
    clean_wrong = int(64 - res.summary["clean_accuracy"] * 64)
    assert big["counterexample"] > clean_wrong
    for m in (m for m in res.measurements if m.metric == "robustness.certified_accuracy"):
        assert m.interval is not None and m.interval.method == "clopper-pearson" and m.interval.contains(m.value)
        assert {"method", "norm", "radius", "about"} <= set(m.parameters) and m.sample_count == 64
        mp = m.parameters
        status = res.tables["samples"][f"certify:{mp['label']}-{mp['norm']}@{mp['radius']:g}:status"]
        assert (status == "proved").mean() == pytest.approx(m.value)


def test_an_unsound_certifier_is_caught(linear_target, small_data):
    """The property above can fail: radii inflated 10x prove samples PGD breaks, and the check says so."""
    params = RobustnessParams(attacks=["pgd"], eps=[0.05, 0.1], samples=64, clever={"enabled": False},
                              reference_eps={}, certify={"methods": ["test-unsound-linear"]})
    res = RobustnessCheck().run(linear_target, small_data, params)
    assert any(cert > emp for _, _, cert, emp in _certified_vs_empirical(res) if emp is not None)
    assert [w for w in res.warnings if "unsound" in w]


@pytest.mark.parametrize("name", ["ibp", "crown"])
def test_bound_certifiers_never_exceed_the_attacks(name, digits_target, small_data):
    """The bounds helper's certifiers, when this build has them, on the digits CNN."""
    try:
        get_certifier(name)
    except ConfigError:
        pytest.skip(f"certifier {name} is not registered in this build")
    params = RobustnessParams(attacks=["pgd"], eps=[0.01, 0.03], samples=32, clever={"enabled": False},
                              reference_eps={}, certify={"methods": [name], "samples": 32})
    res = RobustnessCheck().run(digits_target, small_data, params)
    for label, radius, cert, emp in _certified_vs_empirical(res):
        assert emp is not None and cert <= emp + 1e-12, (label, radius, cert, emp)


def test_smoothing_in_the_check_console_and_report(digits_target, small_data):
    from aisec.core.check import ConsoleTable

    params = RobustnessParams(attacks=[{"name": "pgd", "norm": "l2"}], eps_l2=[0.25, 1.0], samples=32,
                              clever={"enabled": False}, reliability={"enabled": False},
                              certify={"methods": [{"name": "smoothing", "sigma": [0.25, 0.5], "n0": 32, "n": 200}],
                                       "samples": 24})
    res = RobustnessCheck().run(digits_target, small_data, params)
    cert = res.summary["certified"]
    assert [c["label"] for c in cert] == ["smoothing(sigma=0.25)", "smoothing(sigma=0.5)"]
    assert all(c["about"] == "smoothed" and c["norm"] == "l2" and c["samples"] == 24 for c in cert)
    assert [p["radius"] for p in cert[0]["points"]] == [0.25, 0.5, 1.0]
    for c in cert:
        accs = [p["certified_accuracy"] for p in c["points"]]
        assert accs == sorted(accs, reverse=True) and all(p["empirical"] is not None for p in c["points"])
    ms = [m for m in res.measurements if m.metric == "robustness.certified_accuracy"]
    assert len(ms) == 6 and {m.parameters["sigma"] for m in ms} == {0.25, 0.5}
    assert "certify:smoothing(sigma=0.25)-l2:certified_radius" in res.tables["samples"]
    lines = res.summary.console_lines(res, model="m", dataset="d")
    table = next(t for t in lines if isinstance(t, ConsoleTable) and t.title.startswith("certified"))
    assert len(table.rows) == 6 and table.rows[0][0] == "smoothing(sigma=0.25) [smoothed g]"


def test_certify_is_off_by_default_and_names_are_checked_early(digits_target, small_data):
    assert RobustnessParams().certify.methods == []
    with pytest.raises(ValueError, match="unknown certifier 'nosuch'"):
        RobustnessParams(certify={"methods": ["nosuch"]})
    flags = {f.name: f for f in RobustnessCheck.flags}
    assert "--certify" in flags and "--certify-samples" in flags
