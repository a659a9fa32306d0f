"""Attacks on text classifiers that are white box through their embedding layer.

``hotflip`` (real word substitutions within a word budget) and ``embedding_pgd`` (PGD in embedding
space, a lower bound of robustness to text edits) register with the shared attack registry;
:func:`run_text_attack` runs either on strings, a text dataset's byte tensor or token ids.

>>> from aisec.attacks.text import run_text_attack
>>> out = run_text_attack("hotflip", target, ["a sharp, funny film"], torch.tensor([1]), {"eps": 1})
"""

from __future__ import annotations

from aisec.attacks.text.base import (
    LOWER_BOUND_NOTE,
    TextAttackParams,
    TextOutcome,
    Vocabulary,
    run_text_attack,
    stop_words,
    to_token_ids,
)

__all__ = [
    "LOWER_BOUND_NOTE",
    "TextAttackParams",
    "TextOutcome",
    "Vocabulary",
    "run_text_attack",
    "stop_words",
    "to_token_ids",
]
