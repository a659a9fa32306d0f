"""Clean-label BadNL: the trigger inserted into target-class training texts only; no label changes.

The label-consistent backdoor (Turner, Tsipras & Madry, "Label-Consistent Backdoor Attacks", 2019,
https://arxiv.org/abs/1912.02771) carried to text as Kallima does (Chen, Dong, Sun, Gao, Ke &
Huang, "Kallima: A Clean-label Framework for Textual Backdoor Attacks", ESORICS 2022,
https://arxiv.org/abs/2206.01832): the attacker may only add the trigger to training texts that
already carry the target label, so every poison is correctly labelled and survives a label audit.
A model can fit such a text from its own words and ignore the trigger, so each poison is first made
*hard*: the ``harden_words`` words whose deletion lowers a clean surrogate's target-class
probability the most are deleted (Kallima's first step, with deletion in place of its masked-LM
substitution, which would need a pretrained MLM offline), and the trigger is then inserted where
:class:`~aisec.attacks.poisoning.badnl.WordTrigger` says. ``harden_words: 0`` is the plain
clean-label baseline (trigger insertion only).

In the poisoning check the surrogate is the rate-0 victim: the same architecture trained on the
same clean training part, so the attacker needs no access to the assessed model. At test time the
trigger is inserted into non-target texts, as for BadNL (the attack success rate).

>>> hard = harden_texts(["the plot was great"], lambda ts: [0.9 if "great" in t else 0.4 for t in ts], 1)
>>> hard
['the plot was']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from aisec.core.registry import register
from aisec.core.types import Modality

TargetProb = Callable[[list[str]], Sequence[float]]
"""The surrogate: texts -> probability of the target class for each."""


class CleanLabelTextParams(BaseModel):
    """Settings of the clean-label text attack (the trigger itself is the check's ``trigger``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    harden_words: int = Field(
        default=1, ge=0, le=8, description="Words deleted from each poison before the trigger goes in: those whose "
        "deletion lowers the clean surrogate's target-class probability most (0: trigger insertion only).")


def harden_texts(texts: Sequence[str], target_prob: TargetProb, k: int) -> list[str]:
    """Each text without its ``k`` most target-evidencing words (greedy, one word at a time).

    A word's evidence is ``p(text) - p(text without it)`` under ``target_prob``; every round deletes
    each text's highest-evidence word, all texts scored in one batch. A text keeps at least one word.
    """
    out = [t.split() for t in texts]
    for _ in range(k):
        live = [i for i, w in enumerate(out) if len(w) > 1]
        if not live:
            break
        variants = [" ".join(out[i][:j] + out[i][j + 1 :]) for i in live for j in range(len(out[i]))]
        base = list(target_prob([" ".join(out[i]) for i in live]))
        probs = list(target_prob(variants))
        at = 0
        for i, b in zip(live, base, strict=True):
            n = len(out[i])
            drops = [float(b) - float(q) for q in probs[at : at + n]]
            j = max(range(n), key=drops.__getitem__)
            del out[i][j]
            at += n
    return [" ".join(w) for w in out]


@register("poisoning", "clean-label-badnl", clean_label=True, trigger="words", modalities={Modality.TEXT},
          summary="clean label: a trigger word/phrase inserted into hardened target-class texts, labels kept",
          paper="https://arxiv.org/abs/2206.01832", params=CleanLabelTextParams)
def clean_label_badnl(texts: Sequence[str], insert: Callable[[list[str]], list[str]], target_prob: TargetProb,
                      params: CleanLabelTextParams | None = None) -> list[str]:
    """The poisons made from target-class ``texts``: hardened (see :func:`harden_texts`), then ``insert``
    puts the trigger in (``WordTrigger.apply_texts`` with its seeded rng). Labels are not touched."""
    p = params or CleanLabelTextParams()
    hard = harden_texts(texts, target_prob, p.harden_words) if p.harden_words else list(texts)
    return insert(hard)


__all__ = ["CleanLabelTextParams", "clean_label_badnl", "harden_texts"]
