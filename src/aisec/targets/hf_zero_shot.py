"""A local causal language model as a zero-shot text classifier, scored by label-word likelihoods.

Each class has a label word or phrase; a text's score for class ``c`` is the log-likelihood the
model gives that label after a prompt, ``log p(label_c | prefix + text + suffix)`` (summed over
the label's tokens; ``normalise=True`` averages them, so longer labels are not penalised). The
scores are the target's logits, so the softmax over classes is the model's belief restricted to
the label words — the standard zero-shot recipe (Brown et al. 2020, "Language Models are
Few-Shot Learners", https://arxiv.org/abs/2005.14165).

Token ids are the *text's* tokens only (``encode`` pads them on the right); the prompt around them
and the label words are added inside :meth:`CausalLmClassifier.logits_from_embeddings`, so
attacks edit the text and never the prompt. Padding sits between the text and the suffix; it is
masked out and position ids count real tokens only, so a padded text scores as the unpadded
prompt does. White box through the embedding layer: HotFlip, embedding PGD, LIME and the privacy
threshold attacks run on it as on :class:`~aisec.targets.hf.HfTextTarget`.

>>> clf = CausalLmClassifier("models/tiny-lm", labels={"negative": "negative", "positive": "positive"},
...                          prefix="", suffix=" overall it was")
>>> clf.predict(clf.encode(["the plot was dull"])).argmax(1)
tensor([0])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F

from aisec.core.errors import ConfigError, OutputError
from aisec.targets.hf import _HfTokenTarget, load_hf, pad_token_id, position_ids


class CausalLmClassifier(_HfTokenTarget):
    """A local ``AutoModelForCausalLM`` folder as a white-box zero-shot classifier (see the module docstring).

    Args:
        folder: the model's local folder (``save_pretrained`` of model and tokenizer).
        labels: class name -> label word/phrase, in class order.
        prefix / suffix: the prompt around the text (``prefix + text + suffix``, then the label).
        max_length: text tokens kept (the prompt and label come on top).
        normalise: average the label's token log-likelihoods instead of summing them.
    """

    tokenizes_bytes = True

    def __init__(
        self,
        folder: str | Path,
        *,
        labels: Mapping[str, str],
        prefix: str = "",
        suffix: str = "",
        max_length: int = 64,
        normalise: bool = False,
        name: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        path = Path(folder)
        label = name or path.name
        if len(labels) < 2:
            raise ConfigError(f"model '{label}': a zero-shot classifier needs at least 2 labels, got {len(labels)}")
        self.tokenizer, self.model = load_hf(path, "AutoModelForCausalLM")
        dev = torch.device(device)
        self.model.to(dev).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.pad_id = pad_token_id(self.tokenizer, self.model, label)
        tok = self.tokenizer

        def ids_of(text: str) -> list[int]:
            return list(tok(text, add_special_tokens=False)["input_ids"]) if text else []

        # the start token (end-of-text where there is none, as GPT-2 does): the first text token's context
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        bos = [int(start)] if start is not None else []
        self.prefix_ids = torch.tensor(bos + ids_of(prefix), dtype=torch.long, device=dev)
        self.suffix_ids = torch.tensor(ids_of(suffix), dtype=torch.long, device=dev)
        words = [ids_of(w) for w in labels.values()]
        unk = tok.unk_token_id
        for (cls, w), t in zip(labels.items(), words, strict=True):
            if not t or (unk is not None and unk in t):
                raise ConfigError(f"model '{label}': label word {w!r} of class '{cls}' has no tokens in its "
                                  "vocabulary (empty or unknown)")
        width = max(len(t) for t in words)
        self.label_ids = torch.tensor([t + [self.pad_id] * (width - len(t)) for t in words], device=dev)
        self.label_mask = torch.tensor([[1] * len(t) + [0] * (width - len(t)) for t in words], device=dev)
        if self.prefix_ids.numel() == 0:
            raise ConfigError(f"model '{label}': give a prefix (its tokenizer has no start or end-of-text token) — "
                              "the first text token needs context to be scored after")
        self.normalise = normalise
        positions = getattr(self.model.config, "max_position_embeddings", None)
        extra = int(self.prefix_ids.numel() + self.suffix_ids.numel() + width)
        if isinstance(positions, int):
            if positions <= extra:
                raise ConfigError(f"model '{label}' has {positions} positions; the prompt and label take {extra}")
            max_length = min(max_length, positions - extra)
        self.max_length = max_length
        self._spec = self._text_spec(label, max_length, list(labels), dev)
        self._queries = 0

    def encode(self, texts: list[str]) -> torch.Tensor:
        """The texts' own tokens (no prompt, no special tokens), right-padded to ``max_length``."""
        enc = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.max_length,
                             add_special_tokens=False, padding_side="right", return_tensors="pt")
        return cast(torch.Tensor, enc["input_ids"].to(self._spec.device))

    def logits_from_embeddings(self, embeddings: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Label log-likelihoods ``(N, C)`` of the texts' embeddings ``(N, L, D)`` inside the prompt."""
        self._queries += int(embeddings.shape[0])
        n, length, _ = embeddings.shape
        c, width = self.label_ids.shape
        dev = embeddings.device
        text_mask = (ids.to(dev) != self.pad_id).long() if ids is not None \
            else torch.ones((n, length), dtype=torch.long, device=dev)
        emb = self.model.get_input_embeddings()
        pre = emb(self.prefix_ids).to(embeddings.dtype)
        suf = emb(self.suffix_ids).to(embeddings.dtype)
        lab = emb(self.label_ids).to(embeddings.dtype)  # (C, W, D)
        p, s = pre.shape[0], suf.shape[0]
        # one row per (text, class): prefix · text · suffix · label_c
        seq = torch.cat([pre.expand(n, -1, -1), embeddings, suf.expand(n, -1, -1)], 1)
        seq = torch.cat([seq.repeat_interleave(c, 0), lab.repeat(n, 1, 1)], 1)
        mask = torch.cat([torch.ones((n, p), dtype=torch.long, device=dev), text_mask,
                          torch.ones((n, s), dtype=torch.long, device=dev)], 1)
        mask = torch.cat([mask.repeat_interleave(c, 0), self.label_mask.repeat(n, 1)], 1)
        out: Any = self.model(inputs_embeds=seq, attention_mask=mask, position_ids=position_ids(mask))
        start = p + length + s  # the label's first token; predicted by the position before it
        logp = F.log_softmax(out.logits[:, start - 1 : start - 1 + width].float(), dim=-1)
        tgt = self.label_ids.repeat(n, 1)
        tok_lp = logp.gather(2, tgt.unsqueeze(2)).squeeze(2) * self.label_mask.repeat(n, 1)
        score = tok_lp.sum(1)
        if self.normalise:
            score = score / self.label_mask.sum(1).repeat(n)
        z = score.view(n, c)
        if not torch.isfinite(z).all():
            raise OutputError(f"model '{self._spec.name}' produced NaN/inf label log-likelihoods")
        return z


__all__ = ["CausalLmClassifier"]
