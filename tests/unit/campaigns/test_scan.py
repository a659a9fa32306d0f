"""Counterfit-style scan summary across all samples."""

from __future__ import annotations

import pytest
import torch

from aisec.campaigns.scan import expand_grid, scan
from aisec.core.errors import ConfigError


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_grid():
    assert expand_grid({"eps": [0.1, 0.2], "max_queries": 50}) == [
        {"eps": 0.1, "max_queries": 50}, {"eps": 0.2, "max_queries": 50}]


def test_scan_summary(digits_target, digits_test_batch):
    x, y = digits_test_batch
    x, y = x[:32], y[:32]
    s = scan(digits_target, x, y, {"square": {"eps": [0.05, 0.3], "max_queries": 60}, "fgsm": {"eps": 0.3}})
    sq, fg = s.rows
    assert sq.runs == 2 and fg.runs == 1
    assert sq.best_params["eps"] == 0.3 and sq.best_score >= sq.success_pct
    assert 2 <= sq.queries_min <= sq.queries_avg <= sq.queries_max <= 62
    assert sq.seconds_min <= sq.seconds_avg <= sq.seconds_max
    assert "square" in s.render() and len(s.as_dicts()) == 2


def test_scan_needs_attacks(digits_target, digits_test_batch):
    with pytest.raises(ConfigError):
        scan(digits_target, *digits_test_batch, {})
    with pytest.raises(ConfigError, match="unknown attack"):
        scan(digits_target, *digits_test_batch, {"nope": {}})
