from __future__ import annotations

import pytest

from aisec.core.errors import ConfigError
from aisec.core.plan import Plan


def test_plan_from_yaml(tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text("model: digits-cnn\ndata: digits\nchecks:\n  robustness:\n    attacks: [pgd, fgsm]\n    eps: [0.1]\n")
    plan = Plan.from_yaml(p)
    assert plan.model.path == "digits-cnn"
    assert plan.data.source == "digits"
    assert plan.checks["robustness"]["attacks"] == ["pgd", "fgsm"]
    assert Plan.parse(plan.model_dump(mode="json")) == plan


def test_plan_typo_is_an_error(tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text("model: digits-cnn\ndata: digits\ncheks: robustness\n")
    with pytest.raises(ConfigError, match="cheks"):
        Plan.from_yaml(p)


def test_plan_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Plan.from_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Plan.from_yaml(bad)
