"""What the text attacks share: the tokens they may touch, the outcome they report, their driver.

A text target (:class:`~aisec.core.target.TextTarget`) takes token ids ``(N, max_length)`` and is
white box through its embedding layer. Two kinds of attack run on it:

- **token attacks** (``hotflip``) substitute whole words; the adversarial input is real text with
  a number of words changed, never more than the budget;
- **embedding attacks** (``embedding_pgd``) move the token embeddings inside a norm ball. The
  perturbed embeddings correspond to no real text, so what they measure is a *lower bound* of
  the accuracy under real text edits — a pessimistic estimate, reported as such.

:func:`run_text_attack` is the one driver: it takes strings, UTF-8 byte tensors (aisec's text
datasets) or token ids, batches on the target's device, seeds every random choice and scores
success from the target's own predictions. Which tokens may be edited is decided once here
(:class:`Vocabulary`): never padding, special tokens ([CLS], [SEP], ...), English stop words
(scikit-learn's list), punctuation or word pieces.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams, attack_params
from aisec.core.errors import CapabilityError, ConfigError, DataError
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import AttackInfo, get_attack, names
from aisec.core.target import Target, TextTarget, require
from aisec.core.types import Capability, Modality

#: word-start markers of byte-level BPE (Ġ) and SentencePiece (▁) vocabularies
WORD_START = ("\u0120", "\u2581")
TEXT_CAPS = frozenset({Capability.GRADIENTS, Capability.EMBEDDINGS})
LOWER_BOUND_NOTE = (
    "embedding-space attack: the perturbed embeddings are not real text, so this robust accuracy is a "
    "lower bound (pessimistic estimate) of the accuracy under real word edits"
)


class TextAttackParams(EvasionParams):
    """Parameters every text attack shares (``norm``/``eps`` keep the evasion-attack contract)."""

    batch_size: int = Field(default=64, ge=1, description="Sequences per forward pass.")


class TextAttack(Protocol):
    Params: ClassVar[type[TextAttackParams]]

    def attack(
        self, target: TextTarget, ids: torch.Tensor, y: torch.Tensor, params: Any, *,
        target_labels: torch.Tensor | None = None,
    ) -> TextBatch: ...


@dataclass
class TextBatch:
    """One batch's raw attack result (on the target's device)."""

    pred_adv: torch.Tensor
    changed: torch.Tensor  # tokens substituted (token attacks) / tokens perturbed (embedding attacks)
    distance: torch.Tensor  # words changed, or the largest per-token embedding perturbation
    queries: torch.Tensor  # forward passes spent on each sample
    ids_adv: torch.Tensor | None = None
    embeddings_adv: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class TextOutcome:
    """What a text attack produced per sample (tensors on the CPU, length N).

    ``real_text`` is False for embedding-space attacks: ``adv_texts`` is then ``None`` and the
    robust accuracy is a lower bound of the robustness to real text edits (see ``note``).
    """

    attack: str
    y: torch.Tensor
    pred_clean: torch.Tensor
    pred_adv: torch.Tensor
    success: torch.Tensor
    words_changed: torch.Tensor
    distance: torch.Tensor
    queries: torch.Tensor
    texts: list[str]
    adv_texts: list[str] | None
    real_text: bool
    note: str
    ids_adv: torch.Tensor | None = None
    embeddings_adv: torch.Tensor | None = None
    target_labels: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def clean_correct(self) -> torch.Tensor:
        return self.pred_clean == self.y

    @property
    def robust(self) -> torch.Tensor:
        """Correct on the clean input and still correct on the adversarial one."""
        return self.clean_correct & (self.pred_adv == self.y)

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready row per sample: success, words changed, queries, original and adversarial text."""
        rows = []
        for i in range(int(self.y.shape[0])):
            rows.append({
                "index": i, "label": int(self.y[i]), "pred_clean": int(self.pred_clean[i]),
                "pred_adv": int(self.pred_adv[i]), "success": bool(self.success[i]),
                "words_changed": int(self.words_changed[i]), "queries": int(self.queries[i]),
                "text": self.texts[i], "adv_text": self.adv_texts[i] if self.adv_texts is not None else None,
            })
        return rows


# -- the target side -------------------------------------------------------------------------------


def as_text_target(target: Target, *, what: str) -> TextTarget:
    """``target`` as a white-box :class:`TextTarget`, or a :class:`CapabilityError` saying why not."""
    if target.spec.modality is not Modality.TEXT:
        raise CapabilityError(
            f"{what} attacks text; target '{target.spec.name}' takes {target.spec.modality.value} inputs. "
            "Use an image attack such as 'pgd' for it."
        )
    require(target, TEXT_CAPS, what=what,
            alternatives="loading the classifier from its local Hugging Face folder (HfTextTarget), which is "
                         "white box through its embedding layer")
    if not isinstance(target, TextTarget):
        raise CapabilityError(
            f"{what} needs a text target with encode/embed/logits_from_embeddings; '{target.spec.name}' "
            f"({type(target).__name__}) lacks them"
        )
    return target


def to_token_ids(target: TextTarget, x: torch.Tensor | list[str] | tuple[str, ...]) -> torch.Tensor:
    """Token ids ``(N, max_length)`` on the target's device from strings, UTF-8 bytes or ids.

    aisec's text datasets hold UTF-8 bytes (``uint8``, :mod:`aisec.data.text`); they are decoded and
    tokenised by the target. Integer tensors of the target's input shape are taken as token ids.
    """
    if isinstance(x, list | tuple):
        if not all(isinstance(t, str) for t in x):
            raise DataError("text inputs must be strings")
        return target.encode(list(x)).long()
    if not isinstance(x, torch.Tensor):
        raise DataError(f"text inputs must be strings or a tensor, got {type(x).__name__}")
    if x.dtype == torch.uint8:
        from aisec.data.text import decode_texts

        return target.encode(decode_texts(x)).long()
    shape = target.spec.input_shape
    if x.is_floating_point() and not torch.equal(x, x.round()):
        raise DataError("token ids must be integers; give strings or the UTF-8 byte tensor of a text dataset")
    if x.ndim != 2 or tuple(x.shape[1:]) != tuple(shape):
        raise DataError(
            f"token ids have shape {tuple(x.shape)}; model '{target.spec.name}' takes (N, {shape[0]}). Give "
            "strings or a text dataset's UTF-8 byte tensor instead, and the target tokenises them"
        )
    vocab = int(target.spec.value_range[1]) + 1
    if int(x.min()) < 0 or int(x.max()) >= vocab:
        raise DataError(f"token ids span [{int(x.min())}, {int(x.max())}] outside the vocabulary [0, {vocab})")
    return x.long().to(target.spec.device)


def decode(target: TextTarget, ids: torch.Tensor) -> list[str]:
    dec = getattr(target, "decode", None)
    if callable(dec):
        return list(dec(ids))
    tok = getattr(target, "tokenizer", None)
    if tok is None:
        return [" ".join(map(str, row.tolist())) for row in ids.cpu()]
    return list(tok.batch_decode(ids.cpu(), skip_special_tokens=True))


def logits_from_embeddings(target: TextTarget, emb: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Logits of embeddings; the ids go along when the target takes them (for its attention mask)."""
    fn = target.logits_from_embeddings
    if _takes_ids(fn):
        return fn(emb, ids)  # type: ignore[call-arg]
    return fn(emb)


def _takes_ids(fn: Any) -> bool:
    try:
        return len(inspect.signature(fn).parameters) >= 2
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


def stop_words() -> frozenset[str]:
    """The English stop words no attack edits (scikit-learn's list, 318 words, plus negation forms)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | {"don", "doesn", "didn", "isn", "wasn", "aren", "won", "t", "s"}


class Vocabulary:
    """Which token ids an attack may touch, from the target's tokenizer.

    ``special``: padding and special tokens (never perturbed by any attack). ``word``: whole-word,
    alphabetic, non-stop-word tokens — the only ones a token attack may replace or insert.
    """

    def __init__(self, target: TextTarget, *, need_tokenizer: bool, what: str) -> None:
        vocab = int(target.embedding_matrix.shape[0]) if hasattr(target, "embedding_matrix") \
            else int(target.spec.value_range[1]) + 1
        dev = torch.device(target.spec.device)
        tok = getattr(target, "tokenizer", None)
        special = torch.zeros(vocab, dtype=torch.bool, device=dev)
        pad = getattr(target, "pad_id", None)
        if pad is not None:
            special[int(pad)] = True
        word = torch.zeros(vocab, dtype=torch.bool, device=dev)
        if tok is None:
            if need_tokenizer:
                raise CapabilityError(
                    f"{what} needs the target's tokenizer (attribute 'tokenizer') to keep stop words, special "
                    f"tokens and word pieces untouched; '{target.spec.name}' has none"
                )
        else:
            for i in getattr(tok, "all_special_ids", []):
                if 0 <= int(i) < vocab:
                    special[int(i)] = True
            tokens = tok.convert_ids_to_tokens(list(range(vocab)))
            stops = stop_words()
            # Byte-level BPE (GPT-2, RoBERTa: "Ġword") and SentencePiece (ALBERT, XLNet, Llama: "▁word")
            # mark the *start* of a word; a marked token is a whole word when no unmarked piece follows.
            marked = [isinstance(t, str) and t[:1] in WORD_START for t in tokens]
            starts = sum(marked) > vocab // 10
            cores = [t[1:] if starts and m else (None if starts else t) for t, m in zip(tokens, marked, strict=True)]
            ok = [isinstance(c, str) and c.isascii() and c.isalpha() and len(c) > 1 and c.lower() not in stops
                  for c in cores]
            word = torch.tensor(ok, dtype=torch.bool, device=dev) & ~special
            if starts:
                cont = [isinstance(t, str) and not m and t.isalnum() for t, m in zip(tokens, marked, strict=True)]
            else:
                cont = [isinstance(t, str) and t.startswith("##") for t in tokens]
            self.continuation = torch.tensor(cont, dtype=torch.bool, device=dev) & ~special
        if tok is None:
            self.continuation = torch.zeros(vocab, dtype=torch.bool, device=dev)
        self.size = vocab
        self.special = special
        self.word = word

    def perturbable(self, ids: torch.Tensor) -> torch.Tensor:
        """Positions an embedding attack may move: everything but padding and special tokens."""
        return ~self.special[ids]

    def editable(self, ids: torch.Tensor) -> torch.Tensor:
        """Positions a token attack may replace: single-token content words (not stop words, not
        punctuation, not part of a word split into pieces)."""
        ok = self.word[ids]
        nxt = torch.zeros_like(ok)
        nxt[:, :-1] = self.continuation[ids[:, 1:]]
        return ok & ~nxt


# -- the driver ------------------------------------------------------------------------------------


def text_attack_info(name: str | AttackInfo) -> AttackInfo:
    """Registry entry of a text attack (family ``text``); a ConfigError for attacks that do not attack text."""
    info = get_attack(name) if isinstance(name, str) else name
    if info.family != "text":
        raise ConfigError(
            f"attack '{info.name}' perturbs tensor inputs (images, tables), not text; for text targets use "
            f"{', '.join(repr(k) for k in names('text'))}"
        )
    return info


def run_text_attack(
    attack: str | AttackInfo,
    target: Target,
    x: torch.Tensor | list[str],
    y: torch.Tensor,
    params: TextAttackParams | dict[str, Any] | None = None,
    *,
    target_labels: torch.Tensor | None = None,
    seed: int | None = 0,
    progress: Progress = no_progress,
    pred_clean: torch.Tensor | None = None,
    keep_embeddings: bool = False,
) -> TextOutcome:
    """Run a text attack on ``(x, y)`` against a white-box text target and score it.

    ``x``: strings, a text dataset's UTF-8 byte tensor or token ids ``(N, max_length)``; ``y``: true
    labels ``(N,)``. Untargeted success means a correct prediction was flipped; with
    ``target_labels`` success means reaching them. Samples the model already gets wrong are not
    attacked (0 words changed, 0 queries).

    >>> out = run_text_attack("hotflip", target, ["a gripping, moving film"], torch.tensor([1]), {"eps": 2})
    >>> out.adv_texts, out.words_changed
    """
    info = text_attack_info(attack)
    p: TextAttackParams = attack_params(info, params)
    tt = as_text_target(target, what=f"attack '{info.name}'")
    if p.norm not in info.norms:
        raise ConfigError(
            f"attack '{info.name}' supports norms {sorted(n.value for n in info.norms)}, not '{p.norm.value}'"
        )
    if target_labels is not None and not info.targeted:
        raise ConfigError(f"attack '{info.name}' cannot be targeted")
    ids = to_token_ids(tt, x)
    spec = tt.spec
    n = int(ids.shape[0])
    y = torch.as_tensor(y).long()
    if y.shape != (n,):
        raise ConfigError(f"labels have shape {tuple(y.shape)}; expected ({n},)")
    if n and (int(y.max()) >= spec.num_classes or int(y.min()) < 0):
        raise ConfigError(f"labels span [{int(y.min())}, {int(y.max())}] but model '{spec.name}' has "
                          f"{spec.num_classes} classes")
    if target_labels is not None and target_labels.shape != y.shape:
        raise ConfigError("target_labels must have one label per sample")
    impl = info.cls()
    dev = torch.device(spec.device)
    bs = p.batch_size
    if pred_clean is None:
        with torch.no_grad():
            pred_clean = torch.cat([tt.predict(ids[i : i + bs]).argmax(1).cpu() for i in range(0, n, bs)]) \
                if n else torch.zeros(0, dtype=torch.long)
    pred_clean = pred_clean.cpu().long()
    yc = y.cpu()
    # Only clean-correct samples (untargeted) or those not already at their target are attacked.
    attack_mask = (pred_clean == yc) if target_labels is None else (pred_clean != target_labels.cpu())
    todo = torch.nonzero(attack_mask).squeeze(1)
    pred_adv = pred_clean.clone()
    changed = torch.zeros(n, dtype=torch.long)
    distance = torch.zeros(n)
    queries = torch.zeros(n, dtype=torch.long)
    ids_adv = ids.cpu().clone()
    emb_adv: torch.Tensor | None = None
    info_acc: dict[str, Any] = {}
    total = max(1, math.ceil(todo.numel() / bs))
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(seed)
        for b, start in enumerate(range(0, int(todo.numel()), bs)):
            sel = todo[start : start + bs]
            tb = target_labels[sel].to(dev).long() if target_labels is not None else None
            res = impl.attack(tt, ids[sel.to(ids.device)], y[sel].to(dev), p, target_labels=tb)
            pred_adv[sel] = res.pred_adv.cpu().long()
            changed[sel] = res.changed.cpu().long()
            distance[sel] = res.distance.cpu().float()
            queries[sel] = res.queries.cpu().long()
            if res.ids_adv is not None:
                ids_adv[sel] = res.ids_adv.cpu()
            if keep_embeddings and res.embeddings_adv is not None:
                if emb_adv is None:
                    emb_adv = tt.embed(ids).detach().cpu()  # unattacked samples keep their clean embeddings
                emb_adv[sel] = res.embeddings_adv.detach().cpu()
            info_acc.update(res.info)
            progress(info.name, b + 1, total)
    if keep_embeddings and emb_adv is None and n:
        emb_adv = tt.embed(ids).detach().cpu()
    success = (pred_adv == target_labels.cpu()) if target_labels is not None else (pred_adv != yc) & (pred_clean == yc)
    success &= attack_mask
    texts = decode(tt, ids)
    real = info.real_text
    adv_texts = decode(tt, ids_adv) if real else None
    return TextOutcome(
        attack=info.name, y=yc, pred_clean=pred_clean, pred_adv=pred_adv, success=success,
        words_changed=changed if real else torch.zeros(n, dtype=torch.long), distance=distance, queries=queries,
        texts=texts, adv_texts=adv_texts, real_text=real,
        note="token substitutions: the adversarial inputs are real text" if real else LOWER_BOUND_NOTE,
        ids_adv=ids_adv if real else None, embeddings_adv=emb_adv,
        target_labels=target_labels.cpu() if target_labels is not None else None,
        info={**info_acc, **({} if real else {"tokens_perturbed_mean": float(changed.float().mean()) if n else 0.0})},
    )


__all__ = [
    "LOWER_BOUND_NOTE",
    "TextAttackParams",
    "TextBatch",
    "TextOutcome",
    "Vocabulary",
    "as_text_target",
    "decode",
    "logits_from_embeddings",
    "run_text_attack",
    "stop_words",
    "text_attack_info",
    "to_token_ids",
]
