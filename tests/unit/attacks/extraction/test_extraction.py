"""Surrogate extraction from a query budget, fidelity with CI, transfer attacks, the check."""

from __future__ import annotations

import pytest
import torch

from aisec.attacks.extraction import extract, fidelity, surrogate_transfer
from aisec.core.dataset import TensorDataset
from aisec.core.registry import get_check
from aisec.targets.sklearn import ProbaTarget


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def black_box(digits_model):
    class _Scores:
        def predict_proba(self, a):
            with torch.no_grad():
                return torch.softmax(digits_model(torch.as_tensor(a).view(-1, 1, 8, 8)), 1).numpy()

    return ProbaTarget(_Scores(), input_shape=(1, 8, 8), num_classes=10, modality="image", query_budget=2000)


def test_extract_fidelity_transfer(black_box, digits_split):
    train, test = digits_split
    pool = train.x[:300].float()
    ex = extract(black_box, pool, query_budget=600, epochs=15)
    assert ex.queries == 600 and ex.train_samples == 600
    x, y = test.x[:150].float(), test.y[:150]
    fid = fidelity(ex.surrogate, black_box, x)
    assert fid.agreement > 0.8 and fid.interval.contains(fid.agreement) and fid.n == 150
    tr = surrogate_transfer(ex.surrogate, black_box, x, y, params={"eps": 0.2, "steps": 10})
    assert tr.success_rate > 0.3 and tr.queries == 300
    assert black_box.queries <= 2000


def test_check(black_box, digits_split):
    _, test = digits_split
    data = TensorDataset(test.x[:200], test.y[:200], name="digits-test", modality="image")
    res = get_check("extraction").cls().run(black_box, data, {"query_budget": 300, "epochs": 10, "eps": 0.2})
    fid = res.measurement("extraction.fidelity")
    tr = res.measurement("extraction.transfer_success_rate")
    assert 0 <= fid.value <= 1 and fid.interval is not None and fid.sample_count == 100
    assert 0 <= tr.value <= 1
    # the attacker's cost is the surrogate's training queries, within budget; aisec's own fidelity (100 held-out)
    # and transfer (100 clean + 100 adversarial) queries are recorded apart
    assert res.summary["queries"] == 300 == res.measurement("extraction.queries").value
    assert res.summary["evaluation_queries"] == 100 + 200
    assert res.measurement("extraction.queries").parameters["evaluation_queries"] == 300
