"""Helpers shared by the file loaders: batch arguments, streaming digests, label encoding."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from aisec.core.errors import ConfigError, DataError
from aisec.core.safety import LABEL_DENSITY, MAX_CLASSES, SPARSE_LABELS_OK, short_repr

_CHUNK = 1 << 20


def check_batch_args(batch_size: int, limit: int | None, total: int) -> int:
    """How many samples ``batches(batch_size, limit=limit)`` yields; rejects nonsense arguments."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if limit is None:
        return total
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ConfigError(f"limit must be a non-negative integer or None, got {limit!r}")
    return min(limit, total)


def check_limit(limit: int | None) -> None:
    """Validate a loader's ``limit=`` option (keep only the first ``limit`` samples)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer (how many samples to keep) or None, got {limit!r}")


def digest_files(paths: Iterable[str | os.PathLike[str]], *extra: object) -> str:
    """sha256 over the files' bytes, read in 1 MiB chunks, then over ``extra`` (options that change the tensors)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(b"\x00file\x00")
        try:
            with open(p, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        except OSError as e:
            raise DataError(f"cannot read '{p}' to compute the dataset digest: {e}") from e
    for item in extra:
        h.update(b"\x00opt\x00" + repr(item).encode())
    return h.hexdigest()


def _as_index(s: str) -> int | None:
    """``'3'`` or ``'3.0'`` -> 3; anything else (including negatives) -> None."""
    try:
        v = int(s)
    except ValueError:
        try:
            f = float(s)
        except ValueError:
            return None
        if not f.is_integer():
            return None
        v = int(f)
    return v if v >= 0 else None


def label_mapping(
    values: Iterable[str], classes: Sequence[str] | None, *, source: str,
    rows: int | None = None, locate: Callable[[str], str] | None = None,
) -> tuple[dict[str, int], tuple[str, ...]]:
    """Map the distinct raw label strings to class indices.

    Without ``classes``: if every label is a non-negative integer it is its own index (classes
    ``'0'..'max'``); otherwise the distinct labels, sorted, are the classes. With ``classes``: a
    label that is a class name gets that name's index, an integer label must be a valid index.

    Limits (so that one label cannot make aisec build a billion class names): at most
    :data:`~aisec.core.safety.MAX_CLASSES` classes; and integer labels without a class list must be
    dense — the largest may exceed :data:`~aisec.core.safety.SPARSE_LABELS_OK` only if it is below
    :data:`~aisec.core.safety.LABEL_DENSITY` times ``rows`` (the number of labelled rows). Past
    that, give the class names (``classes=`` or ``classes.txt``). ``locate(label)`` names the row
    of a label in error messages (e.g. ``"line 7"``).
    """
    values = list(values)
    n_rows = rows if rows is not None else len(values)
    distinct = sorted(set(values))

    def _where(v: str) -> str:
        return f" ({locate(v)})" if locate is not None else ""

    if classes is not None:
        names = tuple(str(c) for c in classes)
        if not names:
            raise ConfigError(f"{source}: classes is empty; give the class names in index order")
        if len(names) > MAX_CLASSES:
            raise ConfigError(f"{source}: {len(names)} class names given; aisec handles at most {MAX_CLASSES} classes")
        if len(set(names)) != len(names):
            dup = sorted({c for c in names if names.count(c) > 1})
            raise ConfigError(f"{source}: class names must be distinct, repeated: {dup}")
        pos = {c: i for i, c in enumerate(names)}
        mapping: dict[str, int] = {}
        for v in distinct:
            if v in pos:
                mapping[v] = pos[v]
                continue
            idx = _as_index(v)
            if idx is None or idx >= len(names):
                shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
                raise DataError(
                    f"{source}: label {short_repr(v)} is neither one of the {len(names)} class names "
                    f"({shown}) nor an index in [0, {len(names) - 1}]{_where(v)}; fix the label or the class list"
                )
            mapping[v] = idx
        return mapping, names
    if len(distinct) > MAX_CLASSES:
        raise DataError(
            f"{source}: the labels take {len(distinct)} distinct values; aisec handles at most {MAX_CLASSES} "
            "classes (MAX_CLASSES). Is this the label column?"
        )
    indices = {v: _as_index(v) for v in distinct}
    if distinct and all(i is not None for i in indices.values()):
        top = max(indices, key=lambda v: indices[v] or 0)
        k = (indices[top] or 0) + 1
        dense_limit = max(SPARSE_LABELS_OK, LABEL_DENSITY * n_rows)
        if k > min(MAX_CLASSES, dense_limit):
            why = (f"more than the {MAX_CLASSES} classes aisec handles" if k > MAX_CLASSES else
                   f"far more than {n_rows} labelled rows suggest (at most {dense_limit} without a class list)")
            raise DataError(
                f"{source}: label {short_repr(top)}{_where(top)} would make {k} classes '0'..'{k - 1}', {why}; "
                "fix the label, or give the class names in index order (classes=, or classes.txt)"
            )
        return {v: int(i) for v, i in indices.items() if i is not None}, tuple(str(i) for i in range(k))
    return {v: i for i, v in enumerate(distinct)}, tuple(distinct)


def read_classes_file(path: Path) -> tuple[str, ...]:
    """One class name per line (blank lines ignored), in index order."""
    try:
        names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read class names from '{path}': {e}") from e
    names = [n for n in names if n]
    if not names:
        raise DataError(f"'{path}' lists no class names; write one name per line, in index order")
    return tuple(names)


def positive_size(value: object, what: str) -> tuple[int, int]:
    """``(H, W)`` from a pair of positive integers (a YAML list is fine)."""
    try:
        pair = list(value)  # type: ignore[call-overload]
        if len(pair) != 2:
            raise ValueError(value)
        h, w = int(pair[0]), int(pair[1])
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what} must be a pair (height, width), got {value!r}") from e
    if h < 1 or w < 1:
        raise ConfigError(f"{what} must be positive, got {value!r}")
    return h, w
