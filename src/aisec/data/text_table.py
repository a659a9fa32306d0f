"""Labelled texts from a file: CSV/TSV tables with a text column, or JSON Lines (one object per line).

:func:`load_text_table` returns a :class:`~aisec.core.dataset.TensorDataset` of modality TEXT whose
samples are the texts' UTF-8 bytes (:func:`~aisec.data.text.encode_texts`), so a text target
(:class:`~aisec.targets.hf.HfTextTarget`) and every check read it like any aisec text dataset.

Columns. ``label_column`` defaults to the column (JSONL: key) named ``label``, and for CSV without
one, the last column — as for numeric tables. ``text_column`` defaults to the column named
``text``, or, in a CSV with exactly two columns, the one that is not the label. Labels are class
names (sorted into class indices) or non-negative integers (their own indices); ``classes`` fixes
the order, as for :class:`~aisec.data.table.CsvTable`.

Width. Without ``max_bytes`` the byte tensor is as wide as the longest text (at most
:data:`MAX_AUTO_BYTES`; a longer text is a :class:`DataError` asking for ``max_bytes``). With
``max_bytes`` the tensor is exactly that wide — give members and non-members the same value for
the privacy check, whose sets must share a sample shape — and longer texts are cut at a character
boundary with a warning that says how many.

Automatic detection (:func:`looks_like_text_csv`, used by :func:`~aisec.data.loading.load_dataset`):
a CSV/TSV with a header and exactly two columns, the non-label one holding a cell that is not a
number, is read as text without ``text_column``; a table with more columns needs it, since "which
column is the text" is then a guess.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aisec.core.dataset import TensorDataset
from aisec.core.errors import ConfigError, DataError
from aisec.core.types import Modality
from aisec.data._common import check_limit, label_mapping
from aisec.data.table import _is_number, _open_text
from aisec.data.text import encode_texts

#: Widest byte tensor chosen automatically; longer texts need an explicit ``max_bytes``.
MAX_AUTO_BYTES = 65_536
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
_MAX_CLASSES = 10_000
_MISSING = frozenset({"nan", "none", "null", "na", "n/a", "<na>"})
_SNIFF_ROWS = 50


def _not_utf8(path: Path) -> DataError:
    """A DataError naming the line and byte where ``path`` stops being UTF-8 (read again as bytes)."""
    import gzip

    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        return DataError(f"'{path}' is not UTF-8 text: line {line} holds byte 0x{raw[e.start]:02x}, which UTF-8 cannot "
                         "decode; re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 in.csv > out.csv)")
    except (OSError, EOFError) as e:
        return DataError(f"cannot read '{path}': {e}")
    return DataError(f"'{path}' is not UTF-8 text; re-save it as UTF-8")


def _label_text(value: Any, where: str) -> str:
    """A raw label as the string :func:`label_mapping` maps; missing or NaN labels are a DataError."""
    if isinstance(value, bool) or (isinstance(value, float) and value.is_integer()):
        value = int(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise DataError(f"{where}: the label is missing (null/NaN); drop the row or give it a class")
    if isinstance(value, float):
        raise DataError(f"{where}: the label {value!r} is not a class name or integer index")
    if not isinstance(value, str | int):
        raise DataError(f"{where}: the label must be a string or an integer, got {type(value).__name__}")
    s = str(value).strip()
    if not s or s.lower() in _MISSING:
        raise DataError(f"{where}: the label is {'empty' if not s else repr(s)} (a missing value); drop the row or "
                        "give it a class")
    return s


def _check_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: the text must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: the text is empty; drop the row")
    if "\x00" in value:
        raise DataError(f"{where}: the text contains a NUL character, which aisec uses as padding")
    return value


def _pick(columns: Sequence[str], wanted: str | int | None, default: str, what: str, path: Path) -> int:
    """Index of column ``wanted`` (name, case-insensitive, or position); ``None`` -> ``default`` by name."""
    names = [c.lower() for c in columns]
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        if not -len(columns) <= wanted < len(columns):
            raise DataError(f"{what} {wanted} is out of range for '{path}' ({len(columns)} columns)")
        return wanted % len(columns)
    name = default if wanted is None else str(wanted)
    if name.lower() not in names:
        raise DataError(f"{what} '{name}' is not in '{path}'; its columns are: {', '.join(columns)}")
    return names.index(name.lower())


def _csv_rows(path: Path, delimiter: str, text_column: str | int | None,
              label_column: str | int | None) -> Iterator[tuple[Any, Any, str, str, str]]:
    """``(text, raw label, where, text column, label column)`` per data row of a headed CSV/TSV."""
    try:
        with _open_text(path) as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next((r for r in reader if r), None)
            if header is None:
                raise DataError(f"'{path}' is empty; expected a header row naming a text and a label column")
            columns = [c.strip().lstrip("\ufeff") for c in header]
            if label_column is None and "label" not in [c.lower() for c in columns]:
                label_column = -1
            li = _pick(columns, label_column, "label", "label column", path)
            if text_column is None and len(columns) == 2:
                text_column = 1 - li
            ti = _pick(columns, text_column, "text", "text column", path)
            if ti == li:
                raise ConfigError(f"'{path}': the text and label columns are both '{columns[li]}'")
            for row in reader:
                if not row:
                    continue
                where = f"'{path}' line {reader.line_num}"
                if len(row) != len(columns):
                    raise DataError(f"{where} has {len(row)} cells, expected {len(columns)} ({', '.join(columns)}); "
                                    "quote texts that contain the delimiter")
                yield row[ti], row[li], where, columns[ti], columns[li]
    except UnicodeDecodeError as e:
        raise _not_utf8(path) from e
    except (OSError, EOFError, csv.Error) as e:
        raise DataError(f"cannot read text table '{path}': {e}") from e


def _json_key(key: str | int | None, what: str, default: str) -> str:
    if key is not None and not isinstance(key, str):
        raise ConfigError(f"{what} of a JSON Lines file is a key name, got {key!r}")
    return key or default


def _jsonl_rows(path: Path, text_column: str | int | None,
                label_column: str | int | None) -> Iterator[tuple[Any, Any, str, str, str]]:
    """``(text, raw label, where, text key, label key)`` per object of a JSON Lines file."""
    tk, lk = _json_key(text_column, "text_column", "text"), _json_key(label_column, "label_column", "label")
    try:
        with _open_text(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"'{path}' line {n}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{where} is not valid JSON ({e.msg}); expected one object per line") from e
                except RecursionError as e:
                    raise DataError(f"{where} is nested too deeply; expected one flat object per line") from e
                if not isinstance(obj, dict):
                    raise DataError(f"{where} holds a JSON {type(obj).__name__}; expected an object per line")
                for k in (tk, lk):
                    if k not in obj:
                        raise DataError(f"{where} has no key '{k}'; its keys are: {', '.join(map(str, obj)) or '-'}")
                yield obj[tk], obj[lk], where, tk, lk
    except UnicodeDecodeError as e:
        raise _not_utf8(path) from e
    except OSError as e:
        raise DataError(f"cannot read text file '{path}': {e}") from e


def load_text_table(
    path: str | os.PathLike[str],
    *,
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    classes: Sequence[str] | None = None,
    max_bytes: int | None = None,
    delimiter: str | None = None,
    name: str | None = None,
    limit: int | None = None,
) -> TensorDataset:
    """Labelled texts from a CSV/TSV (``.csv``, ``.tsv``, optionally gzipped) or JSON Lines file.

    See the module docstring for the column defaults and the byte width. ``delimiter`` defaults to a
    tab for ``.tsv`` and a comma otherwise; ``limit`` keeps the first rows.

    Raises:
        DataError: missing column or key, empty text, missing/NaN label, a file that is not UTF-8,
            malformed rows, no rows, or a text longer than :data:`MAX_AUTO_BYTES` without ``max_bytes``.
    """
    check_limit(limit)
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise ConfigError(f"max_bytes must be a positive integer (bytes per text), got {max_bytes!r}")
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"text file '{p}' does not exist")
    lower = p.name.lower()
    if lower.endswith(JSONL_SUFFIXES):
        rows = _jsonl_rows(p, text_column, label_column)
    else:
        sep = delimiter or ("\t" if lower.endswith((".tsv", ".tsv.gz")) else ",")
        rows = _csv_rows(p, sep, text_column, label_column)
    texts: list[str] = []
    labels: list[str] = []
    for text, label, where, tcol, lcol in rows:
        if limit is not None and len(texts) >= limit:
            break
        texts.append(_check_text(text, f"{where}, column '{tcol}'"))
        labels.append(_label_text(label, f"{where}, column '{lcol}'"))
        if len(labels) % 1000 == 0 and len(set(labels)) > _MAX_CLASSES:
            raise DataError(f"'{p}': the labels have more than {_MAX_CLASSES} distinct values; they do not look like "
                            "class labels (choose the column with label_column=)")
    if not texts:
        raise DataError(f"'{p}' holds no data rows")
    mapping, names = label_mapping(labels, classes, source=f"'{p}'",
                                   locate=lambda v: f"data row {labels.index(v) + 1}")
    if len(names) > _MAX_CLASSES:
        raise DataError(f"'{p}': the labels have {len(names)} distinct values; they do not look like class labels")
    sizes = [len(t.encode("utf-8")) for t in texts]
    longest = max(sizes)
    if max_bytes is None and longest > MAX_AUTO_BYTES:
        raise DataError(f"'{p}': the longest text has {longest} UTF-8 bytes (row {sizes.index(longest) + 1}); "
                        f"texts above {MAX_AUTO_BYTES} need an explicit max_bytes= (they are cut to it)")
    cut = sum(s > max_bytes for s in sizes) if max_bytes is not None else 0
    if cut:
        warnings.warn(f"'{p}': {cut} of {len(texts)} texts are longer than max_bytes={max_bytes} (longest {longest} "
                      "bytes) and were cut; the model sees only their first bytes", UserWarning, stacklevel=2)
    y = np.array([mapping[v] for v in labels], dtype=np.int64)
    return TensorDataset(encode_texts(texts, max_bytes if max_bytes is not None else longest), y,
                         name=name or p.name.split(".")[0], modality=Modality.TEXT, classes=list(names),
                         value_range=(0.0, 255.0), source=str(p))


def looks_like_text_csv(path: str | os.PathLike[str], *, delimiter: str = ",",
                        label_column: str | int | None = None) -> bool:
    """Whether a CSV/TSV is a text table without being told: a header, exactly two columns, and a
    non-label cell among the first rows that is not a number. Unreadable files answer ``False``
    (the numeric table loader then reports the problem); a file that is not UTF-8 is a DataError."""
    try:
        with _open_text(Path(path)) as f:
            reader = csv.reader(f, delimiter=delimiter)
            rows = [r for _, r in zip(range(_SNIFF_ROWS + 1), (r for r in reader if r), strict=False)]
    except UnicodeDecodeError as e:  # no loader can read it: say why here
        raise _not_utf8(Path(path)) from e
    except (OSError, EOFError, csv.Error):
        return False
    if len(rows) < 2 or any(len(r) != 2 for r in rows):
        return False
    header = [c.strip().lower() for c in rows[0]]
    if isinstance(label_column, str):
        if label_column.lower() not in header:
            return False
        li = header.index(label_column.lower())
    elif isinstance(label_column, int) and -2 <= label_column < 2:
        li = label_column % 2
    else:
        li = header.index("label") if "label" in header else 1
    if _is_number(rows[0][1 - li]):  # no header: a numeric feature column
        return False
    return any(not _is_number(r[1 - li]) for r in rows[1:])


__all__ = ["JSONL_SUFFIXES", "MAX_AUTO_BYTES", "load_text_table", "looks_like_text_csv"]
