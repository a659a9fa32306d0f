"""Hugging Face encoder classifiers from a LOCAL folder, white box through the embedding layer.

``AutoModelForSequenceClassification`` + ``AutoTokenizer`` are loaded with
``local_files_only=True`` and ``HF_HUB_OFFLINE=1`` set for the duration of the load, so nothing is
fetched from a hub; weights must be ``model.safetensors`` (``use_safetensors=True``: no pickle).
Inputs are token-id tensors ``(N, max_length)`` (``encode`` turns strings into them; padding id
is masked out) or the UTF-8 byte tensors of aisec's text datasets, tokenised on the way in.
``embed`` / ``logits_from_embeddings`` expose the embedding layer for embedding-space and
gradient-guided token attacks.

Encoders (BERT, RoBERTa, DeBERTa, ALBERT, XLNet, ELECTRA, ...) run as they are, with the attention
mask of the padding. Decoder-only classifiers (``GPT2/Llama/Qwen2/OPT...ForSequenceClassification``,
a ``score`` head over the last token) are pooled here rather than by Hugging Face: given
``inputs_embeds`` HF cannot tell padding from text and pools the last *position* ("will not detect
padding tokens in inputs_embeds"), a padding token under right padding. aisec runs the base model
with the padding mask and position ids counted over real tokens only, and reads the head at each
row's last real token — so left and right padding give the same logits as the unpadded text. A
tokenizer without a padding token (GPT-2) pads with its end-of-text token.

>>> target = HfTextTarget("models/distilbert-imdb", max_length=128)
>>> target.predict(target.encode(["a fine film"])).shape
torch.Size([1, 2])
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import torch

from aisec.core.errors import ConfigError, OutputError, TargetError
from aisec.core.target import TargetSpec
from aisec.core.types import Access, Capability, Modality, OutputKind
from aisec.targets.torch import state_dict_digest

#: model types whose learnt positions start after the padding id (RoBERTa: 514 positions, 512 tokens)
_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "camembert", "roberta-prelayernorm", "xmod", "data2vec-text"})
_CAPS = frozenset({Capability.GRADIENTS, Capability.LOGITS, Capability.PROBABILITIES, Capability.EMBEDDINGS})


@contextmanager
def _offline() -> Iterator[None]:
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ[k] = "1"
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _tokenizer_class(path: Path, transformers: Any) -> Any:
    """The class that reads the folder's tokenizer as it was saved.

    A folder saved from a generic ``tokenizers`` tokenizer (``tokenizer_class`` TokenizersBackend /
    PreTrainedTokenizerFast, with a ``tokenizer.json``) is read by that generic class: AutoTokenizer
    would pick the class registered for the model type instead (transformers 5 does for Qwen2, and
    rebuilds a byte-level BPE from the vocabulary — different token ids from those the model learnt).
    """
    import json

    cfg = path / "tokenizer_config.json"
    if cfg.is_file() and (path / "tokenizer.json").is_file():
        try:
            declared = json.loads(cfg.read_text(encoding="utf-8")).get("tokenizer_class")
        except (ValueError, UnicodeDecodeError):
            declared = None
        if declared in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            return transformers.PreTrainedTokenizerFast
    return transformers.AutoTokenizer


def load_hf(path: Path, auto_class: str) -> tuple[Any, Any]:
    """Tokenizer and model (``transformers.<auto_class>``) from a local folder, offline, safetensors only."""
    if not path.is_dir() or not (path / "config.json").is_file():
        raise TargetError(
            f"{path} is not a local Hugging Face model folder (no config.json); aisec never downloads "
            "models — save one with model.save_pretrained(folder) and tokenizer.save_pretrained(folder)"
        )
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - environment
        raise TargetError("Hugging Face models need transformers: pip install 'aisec[hf]'") from exc
    with _offline():
        try:
            tokenizer = _tokenizer_class(path, transformers).from_pretrained(str(path), local_files_only=True)
            model = getattr(transformers, auto_class).from_pretrained(
                str(path), local_files_only=True, use_safetensors=True
            )
        except (OSError, ValueError) as exc:
            raise TargetError(f"cannot load the model in {path}: {str(exc).splitlines()[0]}") from exc
    return tokenizer, model


def pad_token_id(tokenizer: Any, model: Any, name: str) -> int:
    """The padding id, set on tokenizer and model config alike; end-of-text when the tokenizer has no
    padding token (GPT-2, Llama), a ConfigError when it has neither."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ConfigError(f"model '{name}': its tokenizer has neither a padding nor an end-of-text token; "
                              "set tokenizer.pad_token before saving it")
        tokenizer.pad_token = tokenizer.eos_token
    pad = int(tokenizer.pad_token_id)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = pad
    return pad


def is_decoder_classifier(model: Any) -> bool:
    """A decoder-only sequence classifier: a ``score`` head read at the last token (GPT-2, Llama, Qwen2, OPT, ...)."""
    return (isinstance(getattr(model, "score", None), torch.nn.Module)
            and not getattr(model.config, "is_encoder_decoder", False))


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only (padding gets 0), as if each text were unpadded."""
    return (mask.long().cumsum(1) - 1).clamp_min(0)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Each row's last real token (right or left padding alike); 0 for an all-padding row."""
    ar = torch.arange(mask.shape[1], device=mask.device)
    return (ar * mask.long()).argmax(-1)


class _HfTokenTarget:
    """What a white-box text target over a Hugging Face model and tokenizer shares: the spec, the query count,
    the embedding matrix, decoding, embedding, and logits of token ids or of a text dataset's UTF-8 bytes.
    A subclass sets ``model``, ``tokenizer`` and ``_spec`` (:meth:`_text_spec`) and gives ``encode`` and
    ``logits_from_embeddings``."""

    model: Any
    tokenizer: Any
    _spec: TargetSpec
    _queries: int = 0

    def _text_spec(self, name: str, max_length: int, class_names: Sequence[str], dev: torch.device) -> TargetSpec:
        vocab = int(self.model.get_input_embeddings().weight.shape[0])
        return TargetSpec(
            name=name, modality=Modality.TEXT, input_shape=(max_length,), num_classes=len(class_names),
            class_names=tuple(class_names), value_range=(0.0, float(vocab - 1)), access=Access.WHITE,
            output=OutputKind.LOGITS, capabilities=_CAPS, device=str(dev), digest=state_dict_digest(self.model),
        )

    @property
    def spec(self) -> TargetSpec:
        return self._spec

    @property
    def queries(self) -> int:
        return self._queries

    @property
    def embedding_matrix(self) -> torch.Tensor:
        return cast(torch.Tensor, self.model.get_input_embeddings().weight)

    def encode(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def logits_from_embeddings(self, embeddings: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, ids: torch.Tensor) -> list[str]:
        # byte-level BPE (GPT-2, RoBERTa) decodes a leading space from its word-start marker
        return [str(s).strip() for s in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.model.get_input_embeddings()(ids.long().to(self._spec.device)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for token ids ``(N, max_length)`` or, as every aisec text dataset holds them, the
        texts' UTF-8 bytes (a ``uint8`` tensor, :mod:`aisec.data.text`), which are tokenised here so
        checks that only query the model (LIME, membership thresholds) need no text-specific path."""
        if x.dtype == torch.uint8:
            from aisec.data.text import decode_texts

            ids = self.encode(decode_texts(x))
        else:
            ids = x.long().to(self._spec.device)
        return self.logits_from_embeddings(self.embed(ids), ids)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(self.logits(x).float(), dim=1)


class HfTextTarget(_HfTokenTarget):
    """A local Hugging Face sequence classifier (encoder or decoder-only) as a white-box text target."""

    #: UTF-8 byte tensors are tokenised in :meth:`logits`; ``input_shape`` counts tokens, not bytes.
    tokenizes_bytes = True
    #: token-id batches may be cut after their longest real text (trailing columns of ``pad_id`` only dropped):
    #: padding is masked and the real tokens keep their positions, so the logits are the full-width batch's.
    #: Query-heavy attacks use it to skip the padding's compute.
    trims_padding = True

    def __init__(
        self,
        folder: str | Path,
        *,
        max_length: int = 128,
        name: str | None = None,
        device: str | torch.device = "cpu",
        class_names: Sequence[str] | None = None,
    ) -> None:
        path = Path(folder)
        self.tokenizer, self.model = load_hf(path, "AutoModelForSequenceClassification")
        dev = torch.device(device)
        self.model.to(dev).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        k = int(self.model.config.num_labels)
        names = class_names or [self.model.config.id2label.get(i, str(i)) for i in range(k)]
        if len(names) != k:
            raise ConfigError(f"{len(names)} class names for a model with {k} labels")
        positions = getattr(self.model.config, "max_position_embeddings", None)
        self.pad_id = pad_token_id(self.tokenizer, self.model, name or path.name)
        # a model with fewer positions than max_length (e.g. a small local BERT) fails on longer inputs
        if isinstance(positions, int) and positions > 0:  # XLNet (relative positions) reports -1
            # RoBERTa-style embeddings number positions from pad_token_id + 1: that many fewer tokens fit
            offset = int(self.model.config.pad_token_id or 0) + 1 \
                if getattr(self.model.config, "model_type", "") in _OFFSET_POSITIONS else 0
            max_length = min(max_length, positions - offset)
        self.max_length = max_length
        max_length = self.max_length
        #: last-token pooling done here (see the module docstring) rather than by the HF head
        self.decoder_only = is_decoder_classifier(self.model)
        self._spec = self._text_spec(name or path.name, max_length, names, dev)
        self._queries = 0

    def encode(self, texts: list[str]) -> torch.Tensor:
        enc = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return cast(torch.Tensor, enc["input_ids"].to(self._spec.device))

    def _mask(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids != self.pad_id).long()

    def logits_from_embeddings(self, embeddings: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of token embeddings ``(N, L, D)``; ``ids`` (the tokens they came from) give the padding
        mask — without them every position counts as text."""
        self._queries += int(embeddings.shape[0])
        mask = self._mask(ids) if ids is not None else None
        z: torch.Tensor
        if self.decoder_only:
            if mask is None:
                mask = torch.ones(embeddings.shape[:2], dtype=torch.long, device=embeddings.device)
            hidden = self.model.base_model(inputs_embeds=embeddings, attention_mask=mask,
                                           position_ids=position_ids(mask)).last_hidden_state
            last = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_index(mask)]
            z = self.model.score(last)
        else:
            out: Any = self.model(inputs_embeds=embeddings, attention_mask=mask)
            z = out.logits
        if not torch.isfinite(z).all():
            raise OutputError(f"model '{self._spec.name}' produced NaN/inf logits")
        return z
