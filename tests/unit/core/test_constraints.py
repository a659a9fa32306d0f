"""Tabular constraints: projection cases worked by hand, violation counts, files, inference."""

from __future__ import annotations

import json

import pytest
import torch

from aisec.core.constraints import TabularConstraints, bind_constraints, constrain_step
from aisec.core.errors import ConfigError, DataError
from aisec.data.table import constraints_from_csv

NAMES = ["age", "sex", "income", "edu_low", "edu_mid", "edu_high", "grade"]


def _credit(**extra) -> TabularConstraints:
    return TabularConstraints(
        num_features=7, feature_names=NAMES, integer=["age"], one_hot=[["edu_low", "edu_mid", "edu_high"]],
        categorical={"grade": [1, 2, 5]}, immutable=["sex"], ranges={"age": (18, 99), "income": (0, 1e5)}, **extra,
    )


X0 = torch.tensor([[30.0, 1.0, 5000.0, 0.0, 1.0, 0.0, 2.0]])
XA = torch.tensor([[17.2, 0.3, 2e5, 0.6, 0.5, 0.7, 3.6]])


def test_project_by_hand():
    c = _credit()
    p = c.project(XA, X0)
    # age clipped to 18 (integer), sex restored, income clipped, edu arg-max = high, grade 3.6 -> 5 (nearest of 1,2,5).
    assert p.tolist() == [[18.0, 1.0, 1e5, 0.0, 0.0, 1.0, 5.0]]
    assert c.violations(XA, X0) == {"range": 2, "integer": 1, "one_hot": 1, "categorical": 1, "immutable": 1,
                                     "total": 6}
    assert c.violations(p, X0)["total"] == 0 and bool(c.valid(p, X0).all()) and not bool(c.valid(XA, X0).any())


def test_linf_ball_limits_every_kind():
    c = _credit()
    p = c.project(XA, X0, eps=0.5, norm="linf")
    # age may move to [29.5, 30.5] -> 30; income by 0.5; a one-hot switch (a change of 1) does not fit; grade stays 2.
    assert p.tolist() == [[30.0, 1.0, 5000.5, 0.0, 1.0, 0.0, 2.0]]
    q = c.project(XA, X0, eps=3.0, norm="linf")
    assert q[0, 0] == 27 and q[0, 6] == 5 and q[0, 3:6].tolist() == [0, 0, 1]


def test_l2_ball_by_bisection_stays_inside_and_valid():
    c = _credit()
    p = c.project(XA, X0, eps=3.0, norm="l2")
    assert float((p - X0).norm()) <= 3.0 and c.violations(p, X0)["total"] == 0
    assert float((p - X0).norm()) > 2.0  # bisection keeps most of the step, not just the original


def test_scaling_projects_in_domain_units():
    off = [18.0, 0, 0, 0, 0, 0, 1]
    sc = [81.0, 1, 1e5, 1, 1, 1, 4]
    c = _credit().with_scaling(off, sc)
    to_model = lambda v: (v - torch.tensor(off)) / torch.tensor(sc)  # noqa: E731
    p = c.project(to_model(XA), to_model(X0))
    dom = p.double() * torch.tensor(sc, dtype=torch.float64) + torch.tensor(off, dtype=torch.float64)
    assert torch.allclose(dom, torch.tensor([[18.0, 1.0, 1e5, 0.0, 0.0, 1.0, 5.0]], dtype=torch.float64), atol=1e-3)
    assert c.violations(p, to_model(X0))["total"] == 0
    assert c.violations(to_model(XA), to_model(X0))["total"] == 6


def test_files_round_trip(tmp_path):
    c = _credit()
    for name in ("c.yaml", "c.json"):
        back = TabularConstraints.load(c.dump(tmp_path / name))
        assert back.digest() == c.digest()
        assert torch.equal(back.project(XA, X0), c.project(XA, X0))
    (tmp_path / "idx.json").write_text(json.dumps({"num_features": 3, "integer": [0], "ranges": {"2": [0, 1]}}))
    c2 = TabularConstraints.load(tmp_path / "idx.json")
    assert c2.project(torch.tensor([[1.6, 5.0, 3.0]]), torch.zeros(1, 3)).tolist() == [[2.0, 5.0, 1.0]]


@pytest.mark.parametrize("raw,match", [
    ({"num_features": 2, "integer": ["age"]}, "unknown feature 'age'"),
    ({"num_features": 2, "integer": [5]}, "outside 0..1"),
    ({"num_features": 2, "ranges": {0: [3, 1]}}, "lo <= hi"),
    ({"num_features": 3, "one_hot": [[0, 1], [1, 2]]}, "more than one group"),
    ({"num_features": 2, "scale": [1, 0]}, "scale"),
    ({"num_features": 2, "typo": 1}, "typo"),
])
def test_bad_constraints_are_config_errors(raw, match):
    with pytest.raises(ConfigError, match=match):
        TabularConstraints.from_dict(raw, source="test.yaml")


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        TabularConstraints.load(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("num_features: [1\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        TabularConstraints.load(tmp_path / "bad.yaml")


def test_data_checks_and_width():
    c = _credit()
    with pytest.raises(DataError, match=r"integer constraint.*'age'"):
        c.check_data(torch.tensor([[30.5, 1.0, 5000.0, 0.0, 1.0, 0.0, 2.0]]))
    with pytest.raises(ConfigError, match="7 features but the inputs have 3"):
        c.project(torch.zeros(1, 3), torch.zeros(1, 3))


def test_infer_from_csv(tmp_path):
    rows = ["age,income,color_red,color_blue,flag,label", "30,1000.5,1,0,1,0", "45,2000,0,1,0,1", "21,1500.25,1,0,0,0"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    c = constraints_from_csv(tmp_path / "t.csv")
    assert c.integer == ("age", "flag") and c.one_hot == (("color_red", "color_blue"),)
    assert c.ranges["age"] == (21.0, 45.0) and "data ranges" in c.source
    # The table's inputs are min-max scaled; the constraints work in that space.
    from aisec.core.dataset import take
    from aisec.data.table import load_table

    x, _ = take(load_table(tmp_path / "t.csv"))
    assert c.violations(x)["total"] == 0
    p = c.project(x + 0.13, x)
    assert c.violations(p, x)["total"] == 0 and not torch.equal(p, x)


def test_bound_step_checks_the_batch():
    c = TabularConstraints(num_features=2, integer=[0])
    x = torch.zeros(3, 2)
    assert torch.equal(constrain_step(x + 0.3, x), x + 0.3)  # nothing bound: unchanged
    with bind_constraints(c, x):
        assert constrain_step(x + 0.3, x)[:, 0].tolist() == [0, 0, 0]
        with pytest.raises(ConfigError, match="bound to inputs of shape"):
            constrain_step(torch.zeros(2, 2), torch.zeros(2, 2))
