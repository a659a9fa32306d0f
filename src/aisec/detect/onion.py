"""ONION: trigger words found by how much a language model's perplexity falls without them.

Qi, Chen, Zhang, Liu & Sun, "ONION: A Simple and Effective Defense Against Textual Backdoor
Attacks", EMNLP 2021, https://arxiv.org/abs/2011.10369

For each word ``w_i`` of a text, its suspicion is ``f_i = PPL(text) - PPL(text without w_i)``
under a language model trained on clean text: an inserted trigger word (BadNL's rare ``cf``, an
out-of-place phrase) makes the text far less fluent, so deleting it lowers the perplexity the
most. A text's score is its largest ``f_i``; texts (training data under suspicion, or inputs at
test time) whose score exceeds ``threshold`` are flagged, and their suspicious word is reported.
No access to the classifier is needed — only the texts and a local causal LM folder.

>>> scan = onion_scan("models/tiny-lm", ["the plot cf was dull", "a great film"])
>>> scan.words[0], scan.scores[0] > scan.scores[1]
('cf', True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aisec.core.errors import ConfigError


@dataclass
class OnionScan:
    """Per text: its score (largest perplexity drop from deleting one word), that word, and the flag."""

    scores: np.ndarray
    words: list[str | None]
    flagged: np.ndarray
    threshold: float
    perplexity: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"method": "onion", "threshold": self.threshold, "flagged_count": int(self.flagged.sum()),
                "samples": int(self.scores.size), "statistic": "largest perplexity drop from deleting one word"}


def perplexities(model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """``exp(mean token NLL)`` of each text under ``model``, after a start token (its BOS, else EOS)."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if start is None:
        raise ConfigError("ONION's language model needs a start or end-of-text token to score the first word")
    rows = [[int(start), *tokenizer(t, add_special_tokens=False)["input_ids"]] for t in texts]
    dev = next(model.parameters()).device
    out = np.zeros(len(rows))
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            width = max(len(r) for r in chunk)
            ids = torch.tensor([r + [0] * (width - len(r)) for r in chunk], device=dev)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in chunk], device=dev)
            logp = F.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
            tok = logp.gather(2, ids[:, 1:, None]).squeeze(2) * mask[:, 1:]
            n = mask[:, 1:].sum(1).clamp_min(1)
            out[i : i + len(chunk)] = torch.exp(-tok.sum(1) / n).cpu().numpy()
    return out


def load_lm(lm: str | Path | tuple[Any, Any]) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local causal-LM folder (offline, safetensors only) or as given."""
    if isinstance(lm, tuple):
        return lm
    from aisec.targets.hf import load_hf

    tok, model = load_hf(Path(lm), "AutoModelForCausalLM")
    return model.eval(), tok


def word_suspicions(lm: str | Path | tuple[Any, Any], texts: Sequence[str], *,
                    batch_size: int = 64) -> tuple[list[np.ndarray], np.ndarray]:
    """ONION's ``f_i = PPL(text) - PPL(text without w_i)`` for every word of every text (whitespace
    words), and each text's own perplexity. A one-word text gets an empty array (no fluency left to
    compare against). All deletions of all texts are scored in batches of one LM forward."""
    model, tok = load_lm(lm)
    words = [t.split() for t in texts]
    base = perplexities(model, tok, list(texts), batch_size=batch_size)
    variants = [" ".join(w[:i] + w[i + 1 :]) for w in words for i in range(len(w))]
    drops = base.repeat([len(w) for w in words]) - perplexities(model, tok, variants, batch_size=batch_size) \
        if variants else np.zeros(0)
    out: list[np.ndarray] = []
    at = 0
    for w in words:
        out.append(drops[at : at + len(w)] if len(w) > 1 else np.zeros(0))
        at += len(w)
    return out, base


def onion_scan(lm: str | Path | tuple[Any, Any], texts: Sequence[str], *, threshold: float = 0.0,
               batch_size: int = 64) -> OnionScan:
    """ONION suspicion of every text (see the module docstring).

    ``lm``: a local causal-LM folder (loaded offline, safetensors only) or a ``(model, tokenizer)``
    pair. ``threshold``: a text is flagged when deleting one of its words lowers the perplexity by
    more than this (ONION's paper tunes it on clean validation text; 0 flags any word whose removal helps).
    """
    sus, base = word_suspicions(lm, texts, batch_size=batch_size)
    scores = np.full(len(sus), -np.inf)
    worst: list[str | None] = [None] * len(sus)
    for k, (t, d) in enumerate(zip(texts, sus, strict=True)):
        if d.size:
            j = int(np.argmax(d))
            scores[k], worst[k] = float(d[j]), t.split()[j]
    return OnionScan(scores=scores, words=worst, flagged=scores > threshold, threshold=threshold, perplexity=base)


def onion_filter(lm: str | Path | tuple[Any, Any], texts: Sequence[str], *, threshold: float = 0.0,
                 batch_size: int = 64) -> list[str]:
    """ONION's test-time defence: each text without the words whose suspicion ``f_i`` exceeds
    ``threshold`` (Qi et al. 2021, section 3), to be classified instead of the raw input."""
    sus, _ = word_suspicions(lm, texts, batch_size=batch_size)
    return [" ".join(w for w, f in zip(t.split(), d, strict=True) if f <= threshold) if d.size else t
            for t, d in zip(texts, sus, strict=True)]


__all__ = ["OnionScan", "load_lm", "onion_filter", "onion_scan", "perplexities", "word_suspicions"]
