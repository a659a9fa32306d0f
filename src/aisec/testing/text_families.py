"""Tiny, seconds-to-train classifiers of every transformer family aisec's text code must handle.

Encoders — BERT, DistilBERT, RoBERTa, DeBERTa (v1, v2), ALBERT, XLNet, ELECTRA (the AI-SEC seed's six
families plus DeBERTa-v2 and ELECTRA) — and decoder-only classifiers — GPT-2, Llama, Qwen2, OPT —
each built offline from its config class (hidden size 32, 2 layers) with a word-level tokenizer
(``tokenizers``) that carries the family's own special tokens, template and padding side:
XLNet pads on the left and ends with ``<sep> <cls>``; RoBERTa's positions start after its padding
id; ALBERT and ELECTRA factorise their embeddings (``embedding_size`` 16 < hidden 32); DeBERTa uses
relative positions only; GPT-2, Llama and Qwen2 have no padding token (they pad with end-of-text).
:func:`tiny_family_classifier` trains one on :func:`aisec.testing.text.toy_sentiment` and saves
it to a folder :class:`~aisec.targets.hf.HfTextTarget` loads; :func:`tiny_causal_lm` trains a
tiny Llama (or GPT-2) language model on "review overall it was positive/negative" for
:class:`~aisec.targets.hf_zero_shot.CausalLmClassifier`. No hub, no download.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from aisec.testing.text import toy_sentiment, train_and_save, vocabulary

#: words of the zero-shot prompt and its label words, on top of the review vocabulary
PROMPT_WORDS = ("overall", "positive", "negative")
ZERO_SHOT_SUFFIX = " overall it was"
ZERO_SHOT_LABELS = {"negative": "negative", "positive": "positive"}


@dataclass(frozen=True)
class Family:
    """How one architecture's tokenizer looks: special tokens by role, template, padding side."""

    model_type: str
    specials: dict[str, str]  # role (pad/unk/cls/sep/mask/bos/eos) -> token, in id order
    template: str  # "$A" is the text
    padding_side: str = "right"
    decoder: bool = False
    config: dict[str, Any] = field(default_factory=dict)


_BERT = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
_ROBERTA = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}
FAMILIES: dict[str, Family] = {
    "bert": Family("bert", _BERT, "[CLS] $A [SEP]"),
    "distilbert": Family("distilbert", _BERT, "[CLS] $A [SEP]"),
    "roberta": Family("roberta", _ROBERTA, "<s> $A </s>"),
    "deberta": Family("deberta", {"cls": "[CLS]", "pad": "[PAD]", "sep": "[SEP]", "unk": "[UNK]", "mask": "[MASK]"},
                      "[CLS] $A [SEP]", config={"relative_attention": True, "pos_att_type": ["c2p", "p2c"],
                                                "position_biased_input": False, "max_relative_positions": 16}),
    "deberta-v2": Family("deberta-v2", {"pad": "[PAD]", "cls": "[CLS]", "sep": "[SEP]", "unk": "[UNK]",
                                        "mask": "[MASK]"}, "[CLS] $A [SEP]",
                         config={"relative_attention": True, "pos_att_type": ["p2c", "c2p"],
                                 "position_biased_input": False, "max_relative_positions": 16,
                                 "position_buckets": 8, "norm_rel_ebd": "layer_norm", "share_att_key": True}),
    "albert": Family("albert", {"pad": "<pad>", "unk": "<unk>", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"},
                     "[CLS] $A [SEP]", config={"embedding_size": 16}),
    "xlnet": Family("xlnet", {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "cls": "<cls>", "sep": "<sep>",
                              "pad": "<pad>", "mask": "<mask>"}, "$A <sep> <cls>", padding_side="left"),
    "electra": Family("electra", _BERT, "[CLS] $A [SEP]", config={"embedding_size": 16}),
    "gpt2": Family("gpt2", {"eos": "<|endoftext|>"}, "$A", decoder=True),
    "llama": Family("llama", {"unk": "<unk>", "bos": "<s>", "eos": "</s>"}, "<s> $A", decoder=True),
    "qwen2": Family("qwen2", {"eos": "<|endoftext|>"}, "$A", decoder=True),
    "opt": Family("opt", {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>"}, "</s> $A", decoder=True),
}
ENCODERS = tuple(k for k, f in FAMILIES.items() if not f.decoder)
DECODERS = tuple(k for k, f in FAMILIES.items() if f.decoder)


def family_tokenizer(family: str, *, padding_side: str | None = None) -> Any:
    """A word-level fast tokenizer over the review vocabulary with ``family``'s special tokens and template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    fam = FAMILIES[family]
    words = [w for w in vocabulary() if not w.startswith("[")] + list(PROMPT_WORDS)
    tokens = list(fam.specials.values()) + words
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    unk = fam.specials.get("unk", fam.specials.get("eos"))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    pieces = fam.template.split()
    if pieces != ["$A"]:
        tk.post_processor = processors.TemplateProcessing(
            single=fam.template, special_tokens=[(p, vocab[p]) for p in pieces if p != "$A"])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, padding_side=padding_side or fam.padding_side,
        **{f"{role}_token": tok for role, tok in fam.specials.items()},
    )


def byte_level_bpe_tokenizer(vocab_size: int = 500) -> Any:
    """A GPT-2-style byte-level BPE tokenizer ("Ġword" word starts, words split into pieces) trained on
    toy reviews, with ``<|endoftext|>`` as its only special token — the sub-word case a word-level
    vocabulary cannot show."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(toy_sentiment(512, seed=7)[0], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", padding_side="right")


def family_config(family: str, tokenizer: Any, *, hidden: int = 32, layers: int = 2, positions: int = 32) -> Any:
    """A tiny random config of ``family`` (hidden 32, 2 layers, 2 heads) for ``tokenizer``'s vocabulary."""
    import transformers as tr

    fam = FAMILIES[family]
    v = len(tokenizer)
    ids = {f"{r}_token_id": tokenizer.convert_tokens_to_ids(t) for r, t in fam.specials.items()
           if r in ("pad", "bos", "eos")}
    if "eos" in fam.specials and "bos" not in fam.specials:  # GPT-2, Qwen2: one end-of-text token for both
        ids["bos_token_id"] = ids["eos_token_id"]
    labels = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}
    common: dict[str, Any] = {"vocab_size": v, **ids, **labels, **fam.config}
    bertish: dict[str, Any] = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": 2,
               "intermediate_size": 2 * hidden, "max_position_embeddings": positions}
    llamaish: dict[str, Any] = {"hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": layers,
                "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": positions}
    build: dict[str, Callable[[], Any]] = {
        "bert": lambda: tr.BertConfig(**bertish, **common),
        "distilbert": lambda: tr.DistilBertConfig(dim=hidden, n_layers=layers, n_heads=2, hidden_dim=2 * hidden,
                                                  max_position_embeddings=positions, **common),
        # RoBERTa numbers positions from pad_token_id + 1: two more than the longest input
        "roberta": lambda: tr.RobertaConfig(**{**bertish, "max_position_embeddings": positions + 2}, **common),
        "deberta": lambda: tr.DebertaConfig(**bertish, **common),
        "deberta-v2": lambda: tr.DebertaV2Config(**bertish, **common),
        "albert": lambda: tr.AlbertConfig(**bertish, **common),
        "xlnet": lambda: tr.XLNetConfig(d_model=hidden, n_layer=layers, n_head=2, d_inner=2 * hidden, **common),
        "electra": lambda: tr.ElectraConfig(**bertish, **common),
        "gpt2": lambda: tr.GPT2Config(n_embd=hidden, n_layer=layers, n_head=2, n_positions=positions, **common),
        "llama": lambda: tr.LlamaConfig(**llamaish, **common),
        "qwen2": lambda: tr.Qwen2Config(**llamaish, **common),
        "opt": lambda: tr.OPTConfig(hidden_size=hidden, ffn_dim=2 * hidden, num_hidden_layers=layers,
                                    num_attention_heads=2, max_position_embeddings=positions,
                                    word_embed_proj_dim=hidden, **common),
    }
    return build[family]()


def padded(tok: Any, texts: list[str], max_length: int, **kw: Any) -> Any:
    """``tok(texts)`` padded to ``max_length``; a tokenizer without a padding token (GPT-2) pads with
    end-of-text for the call only, so the saved tokenizer keeps the family's quirk."""
    had = tok.pad_token
    if had is None:
        tok.pad_token = tok.eos_token
    try:
        return tok(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt", **kw)
    finally:
        if had is None:
            tok.pad_token = None


def tiny_family_classifier(
    family: str, folder: str | Path, *, seed: int = 0, steps: int = 80, max_length: int = 14, train_size: int = 256,
    lr: float = 5e-3, tokenizer: Any | None = None,
) -> Path:
    """Train a tiny ``family`` sequence classifier on toy reviews for ``steps`` Adam steps; save it to ``folder``.

    Trained through Hugging Face's own forward (``input_ids`` + attention mask, HF's pooling), so a
    target that pools differently from HF would lose the accuracy learnt here.
    """
    from transformers import AutoModelForSequenceClassification

    tok = tokenizer if tokenizer is not None else family_tokenizer(family)
    cfg = family_config(family, tok)
    if cfg.pad_token_id is None:  # HF's last-token pooling finds text by the padding id (end-of-text here)
        cfg.pad_token_id = tok.eos_token_id
    texts, labels = toy_sentiment(train_size, seed=seed + 1)
    enc = padded(tok, texts, max_length)
    return train_and_save(lambda: AutoModelForSequenceClassification.from_config(cfg), tok, enc, labels, folder,
                          seed=seed, steps=steps, lr=lr, batch=32)


@functools.cache
def cached_family_classifier(family: str, seed: int = 0) -> Path:
    """:func:`tiny_family_classifier` trained once per process into a temporary folder (removed at exit)."""
    d = Path(tempfile.mkdtemp(prefix=f"aisec-tiny-{family}-"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return tiny_family_classifier(family, d, seed=seed)


@functools.cache
def cached_causal_lm(family: str = "llama", seed: int = 0) -> Path:
    """:func:`tiny_causal_lm` trained once per process into a temporary folder (removed at exit)."""
    d = Path(tempfile.mkdtemp(prefix=f"aisec-tiny-lm-{family}-"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return tiny_causal_lm(d, family=family, seed=seed)


def zero_shot_prompts(texts: list[str], labels: torch.Tensor) -> list[str]:
    """The language-model training strings: ``review overall it was positive|negative``."""
    words = list(ZERO_SHOT_LABELS.values())
    return [f"{t}{ZERO_SHOT_SUFFIX} {words[int(y)]}" for t, y in zip(texts, labels, strict=True)]


def tiny_causal_lm(
    folder: str | Path, *, family: str = "llama", seed: int = 0, steps: int = 120, max_length: int = 20,
    train_size: int = 256,
) -> Path:
    """Train a tiny causal LM (``llama``; ``gpt2`` learns only the label prior in 120 steps) on
    :func:`zero_shot_prompts` of toy reviews; save it.

    Its zero-shot accuracy through :class:`~aisec.targets.hf_zero_shot.CausalLmClassifier` with
    ``suffix=ZERO_SHOT_SUFFIX`` and ``labels=ZERO_SHOT_LABELS`` is then well above chance.
    """
    from transformers import AutoModelForCausalLM

    tok = family_tokenizer(family)
    cfg = family_config(family, tok)
    pad = tok.convert_tokens_to_ids(FAMILIES[family].specials.get("pad", FAMILIES[family].specials["eos"]))
    cfg.pad_token_id = pad
    bos = tok.bos_token or tok.eos_token
    texts, labels = toy_sentiment(train_size, seed=seed + 1)
    strings = [f"{bos} {s}" for s in zero_shot_prompts(texts, labels)]
    enc = padded(tok, strings, max_length, add_special_tokens=False, padding_side="right")
    target = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    return train_and_save(lambda: AutoModelForCausalLM.from_config(cfg), tok, enc, target, folder, seed=seed,
                          steps=steps, lr=5e-3, batch=32)


__all__ = ["DECODERS", "ENCODERS", "FAMILIES", "PROMPT_WORDS", "ZERO_SHOT_LABELS", "ZERO_SHOT_SUFFIX", "Family",
           "byte_level_bpe_tokenizer", "cached_causal_lm",
           "cached_family_classifier", "family_config", "family_tokenizer", "padded",
           "tiny_causal_lm", "tiny_family_classifier", "zero_shot_prompts"]
