"""A tiny BERT sentiment classifier trained in seconds (word vocabulary, real tokenizer) and a socket guard."""

from __future__ import annotations

import socket

import pytest
import torch

pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def tiny_text_target():
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import cached_tiny_sentiment_bert

    return HfTextTarget(cached_tiny_sentiment_bert(), max_length=16)


@pytest.fixture(scope="session")
def toy_batch() -> tuple[list[str], torch.Tensor]:
    from aisec.testing.text import toy_sentiment

    return toy_sentiment(32, seed=123)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection or resolve a name fails the test."""

    def refuse(*a, **k):
        raise AssertionError("network touched")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
