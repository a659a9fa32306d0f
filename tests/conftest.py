"""Shared fixtures: a seconds-to-train digits CNN and its test split, built once per session."""

from __future__ import annotations

import os
import socket

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
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
