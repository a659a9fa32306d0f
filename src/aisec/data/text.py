"""Text as tensors, and a small real text dataset that ships with Python.

aisec passes one array type between its parts (``torch.Tensor``), so a batch of texts travels as
their UTF-8 bytes: a ``uint8`` tensor ``(N, L)``, zero-padded on the right (text never contains
NUL). :func:`encode_texts` and :func:`decode_texts` convert at the edges; a text target decodes
inside ``predict``. This keeps :class:`~aisec.core.dataset.TensorDataset`, digests and per-sample
tables working for text unchanged.

:func:`python_docs` is real English prose with no download: the paragraphs of the Python language
reference that CPython ships for ``help()`` (``pydoc_data.topics``), labelled by the family of the
topic they come from — statements, expressions or built-in types. It is small (≈ 600 paragraphs)
and exists to exercise the text path (LIME on words, highlighted words in reports), not to
benchmark NLP models.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

from aisec.core.dataset import TensorDataset
from aisec.core.errors import DataError
from aisec.core.types import Modality


def encode_texts(texts: Sequence[str], max_bytes: int | None = None) -> torch.Tensor:
    """UTF-8 bytes of each text as a zero-padded ``uint8`` tensor ``(N, L)``.

    ``L`` is ``max_bytes`` if given (longer texts are cut at a character boundary), else the
    longest text's length.
    """
    raw = []
    for t in texts:
        if "\x00" in t:
            raise DataError("text contains a NUL character, which aisec uses as padding")
        b = t.encode("utf-8")
        if max_bytes is not None and len(b) > max_bytes:
            b = b[:max_bytes].decode("utf-8", errors="ignore").encode("utf-8")
        raw.append(b)
    width = max_bytes if max_bytes is not None else max((len(b) for b in raw), default=0)
    out = np.zeros((len(raw), max(width, 1)), dtype=np.uint8)
    for i, b in enumerate(raw):
        out[i, : len(b)] = np.frombuffer(b, dtype=np.uint8)
    return torch.from_numpy(out)


def decode_texts(x: torch.Tensor) -> list[str]:
    """The strings behind :func:`encode_texts` output (padding dropped)."""
    arr = x.detach().cpu().numpy().astype(np.uint8)
    if arr.ndim == 1:
        arr = arr[None]
    return [bytes(row).rstrip(b"\x00").decode("utf-8", errors="replace") for row in arr]


TOPIC_FAMILIES: dict[str, tuple[str, ...]] = {
    "statement": (
        "assert", "assignment", "async", "augassign", "break", "class", "compound", "continue", "del",
        "else", "for", "function", "global", "if", "import", "nonlocal", "pass", "raise", "return",
        "try", "while", "with", "yield",
    ),
    "expression": (
        "atom-identifiers", "atom-literals", "attribute-references", "await", "binary", "bitwise",
        "calls", "comparisons", "conversions", "exprlists", "in", "lambda", "operator-summary", "power",
        "shifting", "slicings", "subscriptions", "unary",
    ),
    "type": (
        "bltin-code-objects", "bltin-ellipsis-object", "bltin-null-object", "bltin-type-objects", "dict",
        "floating", "imaginary", "integers", "lists", "numbers", "numeric-types", "sequence-types",
        "string-methods", "strings", "typesfunctions", "typesmapping", "typesmethods", "typesmodules",
        "typesseq", "typesseq-mutable",
    ),
}


def byte_width(target: object) -> int | None:
    """How wide the byte tensors fed to a text target must be: its input width when it reads bytes
    (``input_shape = (max_bytes,)``), or ``None`` (the longest text) when it tokenises them itself —
    then ``input_shape`` counts tokens, and cutting the bytes to that many would drop words."""
    if getattr(target, "tokenizes_bytes", False):
        return None
    shape = target.spec.input_shape  # type: ignore[attr-defined]
    return int(shape[0]) if shape else None


def python_docs(split: str | None = None, *, min_words: int = 15, max_bytes: int = 1024) -> TensorDataset:
    """Paragraphs of the Python language reference, labelled statement / expression / type.

    Prose paragraphs only (indented grammar and code blocks are dropped), at least ``min_words``
    words, encoded as UTF-8 bytes (:func:`encode_texts`). ``split`` as for the other built-in sets.
    """
    from pydoc_data.topics import topics

    from aisec.data.builtin import _pick

    texts: list[str] = []
    labels: list[int] = []
    for k, (_, names) in enumerate(TOPIC_FAMILIES.items()):
        for name in names:
            for para in re.split(r"\n\s*\n", topics.get(name, "")):
                if para.startswith((" ", "*", "=")) or len(re.findall(r"[A-Za-z]+", para)) < min_words:
                    continue
                texts.append(" ".join(para.split()))
                labels.append(k)
    if not texts:
        raise DataError("pydoc_data.topics holds no paragraphs; this Python build ships no help topics")
    data = TensorDataset(
        encode_texts(texts, max_bytes), np.asarray(labels), name="python-docs", modality=Modality.TEXT,
        classes=list(TOPIC_FAMILIES), value_range=(0.0, 255.0), source="pydoc_data.topics",
    )
    return _pick(data, split)
