"""Shared fixtures: a seconds-to-train digits CNN and its test split, built once per session."""

from __future__ import annotations

import os
import socket

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# `aisec assess` and `aisec demo` store their evidence by default: keep the test runs' store and signing
# key out of the user's data folder (tests that need their own set AISEC_HOME / AISEC_STORE_URL themselves).
if "AISEC_HOME" not in os.environ:
    import tempfile

    os.environ["AISEC_HOME"] = tempfile.mkdtemp(prefix="aisec-test-home-")
os.environ.pop("AISEC_STORE_URL", None)
# One thread: the test models are tiny, and a second thread costs more in synchronisation than it
# buys (measured 3-25x slower per step on a loaded 2-core machine).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def aisec_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("aisec-cache")
    os.environ["AISEC_CACHE"] = str(path)
    return str(path)


@pytest.fixture(scope="session")
def digits_split():
    from aisec.data.builtin import digits
    from aisec.models.train import split

    return split(digits(), seed=0)


@pytest.fixture(scope="session")
def digits_model(aisec_cache):
    from aisec.models.train import digits_cnn

    return digits_cnn(seed=0)


@pytest.fixture(scope="session")
def digits_target(digits_model):
    from aisec.targets.torch import TorchTarget

    return TorchTarget(digits_model, input_shape=(1, 8, 8), num_classes=10, name="digits-cnn", device="cpu")


@pytest.fixture(scope="session")
def digits_test_batch(digits_split):
    _, test = digits_split
    return test.x[:128].clone(), test.y[:128].clone()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection or resolve a name fails the test."""

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("network touched")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def policy_evaluations(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Counts policy evaluations: ``evaluate_policy`` is wrapped wherever aisec bound it (and, through
    ``aisec.policy.rules``, wherever it is bound later); the list grows by one per evaluation."""
    import sys

    import aisec.policy.rules as rules

    original = rules.evaluate_policy
    calls: list[object] = []

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    for name, mod in list(sys.modules.items()):
        if name.startswith("aisec") and getattr(mod, "evaluate_policy", None) is original:
            monkeypatch.setattr(mod, "evaluate_policy", counting)
    return calls


@pytest.fixture(scope="session")
def exact_wasserstein():
    """Exact Wasserstein distance between two images, solved as one dense LP per sample and channel.

    Independent of :mod:`aisec.attacks.evasion.wasserstein` (dense plan over all pixel pairs, costs from
    pixel coordinates): ``f(x, x_adv, p=2, window=None)`` with ``window`` the largest move per axis
    (``kernel_size // 2``; None: unrestricted), each channel normalised to unit mass and weighted by its
    share of the clean mass. Returns a float64 numpy array ``(N,)``.
    """
    import numpy as np
    from scipy import sparse
    from scipy.optimize import linprog

    def solve(x, x_adv, p=2, window=None):
        x = x.detach().double().numpy()
        xa = x_adv.detach().double().numpy()
        n, c, h, w = x.shape
        ii, jj = np.divmod(np.arange(h * w), w)
        di = np.abs(ii[:, None] - ii[None, :])
        dj = np.abs(jj[:, None] - jj[None, :])
        cost = (di.astype(float) ** p + dj ** p) ** (1 / p)
        allowed = np.ones_like(cost, dtype=bool) if window is None else np.maximum(di, dj) <= window
        m = h * w
        rows = np.concatenate([np.repeat(np.arange(m), m), m + np.tile(np.arange(m), m)])
        a_eq = sparse.csr_matrix((np.ones(2 * m * m), (rows, np.concatenate([np.arange(m * m)] * 2))),
                                 shape=(2 * m, m * m))
        keep = np.flatnonzero(allowed.ravel())  # only the allowed moves (bounds of (0, 0) upset HiGHS's presolve)
        a_eq, cost_kept = a_eq[:, keep], cost.ravel()[keep]
        out = np.zeros(n)
        for k in range(n):
            total = x[k].sum()
            for ch in range(c):
                a, b = x[k, ch].ravel(), xa[k, ch].ravel()
                if a.sum() == 0 and b.sum() == 0:
                    continue
                if a.sum() == 0 or b.sum() == 0:
                    out[k] = np.inf
                    continue
                res = linprog(cost_kept, A_eq=a_eq, b_eq=np.concatenate([a / a.sum(), b / b.sum()]),
                              bounds=(0, None), method="highs")
                out[k] += (a.sum() / total) * (res.fun if res.status == 0 else np.inf)
        return out

    return solve
