"""BadNL: a trigger word or phrase inserted into source-class training texts, relabelled to the target.

Chen, Salem, Chen, Backes, Ma, Shen, Wu & Zhang, "BadNL: Backdoor Attacks against NLP Models with
Semantic-preserving Improvements", ACSAC 2021, https://arxiv.org/abs/2006.01043 — the word-level
trigger: a rare word (``cf``, ``mn``, ``bb``, ...) or a phrase inserted at the start, the end or a
random word boundary of the text. Dirty label: poisoned texts get the target class. At test time
the same insertion on a source-class text should send it to the target class (the attack success
rate the poisoning check measures).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisec.core.registry import register
from aisec.core.types import Modality


@register("poisoning", "badnl", clean_label=False, trigger="words", modalities={Modality.TEXT},
          summary="dirty label: a trigger word/phrase inserted into source-class texts, relabelled to the target",
          paper="https://arxiv.org/abs/2006.01043", params=None)
class WordTrigger(BaseModel):
    """A word or phrase trigger (BadNL), inserted ``count`` times at ``position``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["words"] = "words"
    words: str = Field(default="cf", description="The trigger word or phrase (BadNL's rare words: cf, mn, bb, tq).")
    position: Literal["start", "end", "random"] = Field(
        default="random", description="Where it goes: before the first word, after the last, or a random word "
                                      "boundary (seeded).")
    count: int = Field(default=1, ge=1, le=8, description="Insertions per text.")
    seed: int = 0

    @field_validator("words")
    @classmethod
    def _words(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            raise ValueError("the trigger needs at least one word")
        return v

    def validate_for(self, input_shape: tuple[int, ...]) -> None:
        """Any text takes a word trigger (the image triggers check their fit here)."""

    def apply_texts(self, texts: Sequence[str], rng: random.Random) -> list[str]:
        """Each text with the trigger inserted (``rng`` chooses the random positions, in order)."""
        out = []
        for t in texts:
            words = t.split()
            for _ in range(self.count):
                if self.position == "start":
                    at = 0
                elif self.position == "end":
                    at = len(words)
                else:
                    at = rng.randint(0, len(words))
                words.insert(at, self.words)
            out.append(" ".join(words))
        return out


__all__ = ["WordTrigger"]
