"""Hugging Face encoder classifiers from a LOCAL folder, white box through the embedding layer.

``AutoModelForSequenceClassification`` + ``AutoTokenizer`` are loaded with
``local_files_only=True`` and ``HF_HUB_OFFLINE=1`` set for the duration of the load, so nothing is
fetched from a hub; weights must be ``model.safetensors`` (``use_safetensors=True``: no pickle).
Inputs are token-id tensors ``(N, max_length)`` (``encode`` turns strings into them; padding id
is masked out) or the UTF-8 byte tensors of aisec's text datasets, tokenised on the way in.
``embed`` / ``logits_from_embeddings`` expose the embedding layer for embedding-space and
gradient-guided token attacks.

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


class HfTextTarget:
    """A local Hugging Face sequence classifier as a white-box text target."""

    #: UTF-8 byte tensors are tokenised in :meth:`logits`; ``input_shape`` counts tokens, not bytes.
    tokenizes_bytes = True

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
        if not path.is_dir() or not (path / "config.json").is_file():
            raise TargetError(
                f"{path} is not a local Hugging Face model folder (no config.json); aisec never downloads "
                "models — save one with model.save_pretrained(folder) and tokenizer.save_pretrained(folder)"
            )
        try:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - environment
            raise TargetError("Hugging Face models need transformers: pip install 'aisec[hf]'") from exc
        with _offline():
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
                self.model = AutoModelForSequenceClassification.from_pretrained(
                    str(path), local_files_only=True, use_safetensors=True
                )
            except OSError as exc:
                raise TargetError(f"cannot load the model in {path}: {exc}") from exc
        dev = torch.device(device)
        self.model.to(dev).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        k = int(self.model.config.num_labels)
        names = class_names or [self.model.config.id2label.get(i, str(i)) for i in range(k)]
        if len(names) != k:
            raise ConfigError(f"{len(names)} class names for a model with {k} labels")
        positions = getattr(self.model.config, "max_position_embeddings", None)
        # a model with fewer positions than max_length (e.g. a small local BERT) fails on longer inputs
        self.max_length = min(max_length, int(positions)) if isinstance(positions, int) else max_length
        max_length = self.max_length
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        vocab = int(self.model.get_input_embeddings().weight.shape[0])
        self._spec = TargetSpec(
            name=name or path.name, modality=Modality.TEXT, input_shape=(max_length,), num_classes=k,
            class_names=tuple(names), value_range=(0.0, float(vocab - 1)), access=Access.WHITE,
            output=OutputKind.LOGITS, capabilities=_CAPS, device=str(dev), digest=state_dict_digest(self.model),
        )
        self._queries = 0

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
        enc = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return cast(torch.Tensor, enc["input_ids"].to(self._spec.device))

    def decode(self, ids: torch.Tensor) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def _mask(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids != self.pad_id).long()

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.model.get_input_embeddings()(ids.long().to(self._spec.device)))

    def logits_from_embeddings(self, embeddings: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        self._queries += int(embeddings.shape[0])
        mask = self._mask(ids) if ids is not None else None
        out: Any = self.model(inputs_embeds=embeddings, attention_mask=mask)
        z: torch.Tensor = out.logits
        if not torch.isfinite(z).all():
            raise OutputError(f"model '{self._spec.name}' produced NaN/inf logits")
        return z

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
