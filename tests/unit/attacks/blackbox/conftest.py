"""Black-box attack tests: one torch thread (the suite shares 2 cores; 2 threads thrash under load)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def digits_proba_target(digits_model):
    """The digits CNN behind a probabilities-only interface (no gradients), with no budget."""

    class _Scores:
        def predict_proba(self, a):
            with torch.no_grad():
                return torch.softmax(digits_model(torch.as_tensor(a).view(-1, 1, 8, 8)), 1).numpy()

    return _Scores()
