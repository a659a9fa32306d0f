"""Property: under tabular constraints, every query an attack sends and every example it returns is
valid — integers integral, one-hot groups one-hot, ordinal categories allowed, ranges kept,
immutable features untouched — on a real scikit-learn model (breast cancer, with integer, one-hot
and ordinal columns built from its own features)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisec.attacks.base import run_attack
from aisec.core.constraints import TabularConstraints
from aisec.targets.sklearn import ProbaTarget
from aisec.targets.torch import TorchTarget


def _table() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Breast cancer + integer radius, one-hot texture tercile and ordinal area quartile (1..4)."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    raw = d.data[:, :10]
    radius_int = np.round(d.data[:, 0])
    tex = np.eye(3)[np.digitize(d.data[:, 1], np.quantile(d.data[:, 1], [1 / 3, 2 / 3]))]
    grade = 1 + np.digitize(d.data[:, 23], np.quantile(d.data[:, 23], [0.25, 0.5, 0.75]))
    names = [n.replace(" ", "_") for n in d.feature_names[:10]] + ["radius_int", "tex_lo", "tex_mid", "tex_hi", "grade"]
    return np.column_stack([raw, radius_int, tex, grade]), d.target, names


@pytest.fixture(scope="module")
def setup():
    from sklearn.linear_model import LogisticRegression

    raw, y, names = _table()
    lo, hi = raw.min(0), raw.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    xs = ((raw - lo) / span).astype(np.float32)
    base = TabularConstraints.infer(raw, names)
    assert base.integer == ("radius_int", "grade") and base.one_hot == (("tex_lo", "tex_mid", "tex_hi"),)
    model = LogisticRegression(max_iter=3000).fit(xs[::2], y[::2])
    x, yt = torch.from_numpy(xs[1::2][:24]), torch.from_numpy(y[1::2][:24])
    return base, lo, span, model, x, yt


class _Recording:
    """predict_proba that keeps every row it is asked about."""

    def __init__(self, model):
        self.model, self.rows = model, []

    def predict_proba(self, a):
        self.rows.append(np.array(a, dtype=np.float32, copy=True))
        return self.model.predict_proba(a)


def _constraints(base, lo, span, immutable, grade_values):
    return TabularConstraints(**{
        **base.model_dump(exclude={"offset", "scale", "integer"}),
        "integer": ("radius_int",),
        "categorical": {"grade": grade_values},
        "immutable": immutable,
        "offset": tuple(lo.tolist()), "scale": tuple(span.tolist()),
    })


def _assert_valid(c: TabularConstraints, rows: torch.Tensor, x: torch.Tensor, imm: list[int]) -> None:
    counts = c.violations(rows)
    assert counts["total"] == 0, counts
    # Every row's immutable features equal those of one of the originals, bit for bit.
    if imm:
        orig = {tuple(r) for r in x[:, imm].tolist()}
        assert all(tuple(r) in orig for r in rows[:, imm].tolist())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["square", "simba", "hopskipjump", "boundary"]),
    immutable=st.lists(st.sampled_from(["mean_radius", "mean_texture", "radius_int", "tex_mid", "grade"]),
                       max_size=3, unique=True),
    grade_values=st.sampled_from([(1, 2, 3, 4), (1, 2, 3, 4, 6)]),
    eps=st.sampled_from([0.05, 0.3, 1.0]),
    seed=st.integers(0, 3),
)
def test_every_query_and_output_is_valid(setup, name, immutable, grade_values, eps, seed):
    base, lo, span, model, x, y = setup
    c = _constraints(base, lo, span, tuple(immutable), grade_values)
    imm = [i for i in range(c.num_features) if c.feature_names[i] in immutable or
           ("tex_mid" in immutable and c.feature_names[i].startswith("tex_"))]
    rec = _Recording(model)
    target = ProbaTarget(rec, input_shape=(x.shape[1],), num_classes=2)
    params = {"max_queries": 60, **({"eps": eps} if name in ("square", "simba") else {})}
    out = run_attack(name, target, x, y, params, constraints=c, seed=seed)
    queries = torch.from_numpy(np.concatenate(rec.rows))
    assert queries.shape[0] == target.queries > x.shape[0]
    _assert_valid(c, queries, x, imm)
    _assert_valid(c, out.x_adv, x, imm)
    assert c.violations(out.x_adv, x)["total"] == 0
    assert torch.equal(out.x_adv[:, imm], x[:, imm])
    if name in ("square", "simba"):
        assert float((out.x_adv - x).abs().amax()) <= eps + 1e-6


@pytest.mark.parametrize("attack", ["pgd", "fgsm"])
@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 0.5)])
def test_white_box_outputs_are_valid(setup, attack, norm, eps):
    base, lo, span, _, x, y = setup
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    c = _constraints(base, lo, span, ("mean_radius", "grade"), (1, 2, 3, 4))
    target = TorchTarget(net.eval(), input_shape=(x.shape[1],), num_classes=2)
    out = run_attack(attack, target, x, y, {"eps": eps, "norm": norm}, constraints=c)
    assert c.violations(out.x_adv, x)["total"] == 0
    d = out.x_adv - x
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert float(size.max()) <= eps * (1 + 1e-5)
    free = run_attack(attack, target, x, y, {"eps": eps, "norm": norm})
    assert c.violations(free.x_adv, x)["total"] > 0  # the constraints bind: unconstrained outputs break them


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_projection_is_idempotent_and_valid(setup, data):
    base, lo, span, _, x, _ = setup
    c = _constraints(base, lo, span, ("mean_texture",), (1, 2, 3, 4))
    i = data.draw(st.integers(0, x.shape[0] - 1))
    noise = data.draw(st.lists(st.floats(-2, 2, width=32), min_size=x.shape[1], max_size=x.shape[1]))
    cand = x[i : i + 1] + torch.tensor([noise])
    ball = data.draw(st.sampled_from([(None, None), (0.2, "linf"), (0.4, "l2"), (1.0, "l1")]))
    p = c.project(cand, x[i : i + 1], eps=ball[0], norm=ball[1])
    assert c.violations(p, x[i : i + 1])["total"] == 0
    assert torch.equal(c.project(p, x[i : i + 1], eps=ball[0], norm=ball[1]), p)
    if ball[0] is not None:
        d = (p - x[i : i + 1]).flatten()
        size = {"linf": d.abs().max(), "l2": d.norm(), "l1": d.abs().sum()}[ball[1]]
        assert float(size) <= ball[0] * (1 + 1e-5)
