"""A tiny BERT sentiment classifier trained in seconds (word vocabulary, real tokenizer)."""

from __future__ import annotations

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

