"""CSV tables (``.csv`` or ``.csv.gz``): numeric features plus one label column, read in chunks.

Opening the table makes one streaming pass that counts the rows, collects the labels and, unless
``ranges`` are given, checks every cell and takes each feature's minimum, maximum, mean and standard
deviation. ``batches`` reads the file again, chunk by chunk, and scales the features as ``scale``
says, which must be what the model was trained on:

==============  ===================================================  ==========================
``scale``       the model sees                                       value range (for attacks)
==============  ===================================================  ==========================
``minmax``      ``(raw - min) / (max - min)`` per feature, in [0, 1]  ``(0, 1)``
``standard``    ``(raw - mean) / std`` per feature (z-scores)         the scaled data's extremes
``none``        the raw values, in the table's own units             the raw data's extremes
==============  ===================================================  ==========================

The statistics (``min``/``max`` or ``ranges``; ``mean``/``std``) are taken from this table, so a model
trained with another table's statistics needs ``none`` and its own scaler inside the model (a
scikit-learn ``Pipeline``, a normalising layer). :meth:`CsvTable.scaling_record` is what the evidence
records; :meth:`CsvTable.to_domain` maps model inputs (adversarial rows too) back to table units.
``aisec assess`` chooses ``none`` for pickled scikit-learn, ONNX and HTTP models and ``minmax`` for
torch models unless ``--scale`` says otherwise (see ``docs/tabular.md``).

A cell that is not a finite number (or lies outside given ``ranges``) raises :class:`DataError`
naming its line and column, when the table is opened or, with ``ranges`` given, when that row is read.

Parquet is not read; convert it first (``pandas.read_parquet(p).to_csv(out, index=False)``).
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import IO, Any, Literal, get_args

import numpy as np
import torch

from aisec.core.constraints import TabularConstraints
from aisec.core.dataset import Batch, DatasetInfo
from aisec.core.errors import ConfigError, DataError
from aisec.core.types import Modality
from aisec.data._common import check_batch_args, check_limit, digest_files, label_mapping

_CHUNK_ROWS = 4096
_MAX_CLASSES = 10_000
_EMPTY = np.zeros((0, 0))
Ranges = tuple[float, float] | Sequence[tuple[float, float]] | Sequence[Sequence[float]]
#: How :meth:`CsvTable.batches` scales the features (see the module docstring).
Scale = Literal["minmax", "standard", "none"]
SCALES: tuple[str, ...] = get_args(Scale)
#: The unit each scaling puts features (and so eps, distances and the value range) in.
SCALE_UNITS = {
    "minmax": "fraction of each feature's range (min-max scaled to [0, 1])",
    "standard": "standard deviations of each feature (z-scores)",
    "none": "the table's raw feature units",
}


def _open_text(path: Path) -> IO[str]:
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz:
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


class CsvTable:
    """A labelled CSV table, streamed in chunks; features scaled as ``scale`` says (default min-max to [0, 1]).

    ``label_column``: a header name or a 0-based position (negative counts from the end; default:
    the last column). ``header``: whether the first row names the columns (default: yes when one of
    its feature cells is not a number). ``ranges``: ``(lo, hi)`` for every feature or one pair per
    feature; values outside raise :class:`DataError`. Without ``ranges`` the observed per-feature
    minimum and maximum are used (a constant feature becomes 0). ``classes``: class names in index
    order; without them integer labels are their own indices and other labels are sorted.
    ``sample_shape`` reshapes each row, e.g. ``(1, 28, 28)`` for images stored one per row.
    ``scale``: ``minmax`` (default), ``standard`` or ``none`` (the raw values), see the module docstring.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        label_column: str | int = -1,
        header: bool | None = None,
        ranges: Ranges | None = None,
        classes: Sequence[str] | None = None,
        delimiter: str = ",",
        sample_shape: Sequence[int] | None = None,
        modality: Modality | str | None = None,
        name: str | None = None,
        limit: int | None = None,
        scale: Scale = "minmax",
    ) -> None:
        check_limit(limit)
        if scale not in SCALES:
            raise ConfigError(f"scale must be one of {', '.join(SCALES)} (what the model was trained on), "
                              f"got {scale!r}")
        self.scale: Scale = scale
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"table '{self.path}' does not exist")
        self.delimiter = delimiter
        first = self._first_row()
        if isinstance(label_column, str) and header is False:
            raise ConfigError(f"label_column '{label_column}' is a name but header=False; give its position instead")
        ncol = len(first)
        if ncol < 2:
            raise DataError(f"'{self.path}' has {ncol} column; a table needs at least one feature and a label column")
        if header is None:
            if isinstance(label_column, str):
                header = True
            else:
                li = label_column % ncol if -ncol <= label_column < ncol else ncol - 1
                header = not all(_is_number(c) for i, c in enumerate(first) if i != li)
        self.header = bool(header)
        self.columns = tuple(c.strip() for c in first) if self.header else tuple(f"col{i}" for i in range(ncol))
        self.label_index = self._label_index(label_column)
        self.feature_index = [i for i in range(ncol) if i != self.label_index]
        self.feature_names = tuple(self.columns[i] for i in self.feature_index)
        d = len(self.feature_index)
        self._given = self._given_ranges(ranges, d)
        self._lo, self._span = np.zeros(d), np.ones(d)

        # First streaming pass: count, validate, collect labels and (if needed) ranges.
        count, seen = 0, set()
        lo = np.full(d, np.inf)
        hi = np.full(d, -np.inf)
        total, total_sq = np.zeros(d), np.zeros(d)
        # with ranges given, cells are checked as they are read in batches (unless z-scores need the moments)
        parse = self._given is None or scale == "standard"
        for _, feats, labels in self._chunks(_CHUNK_ROWS, limit, parse=parse):
            count += len(labels)
            seen.update(labels)
            if len(seen) > _MAX_CLASSES:
                raise DataError(
                    f"'{self.path}': the label column '{self.columns[self.label_index]}' has more than {_MAX_CLASSES} "
                    "distinct values; it does not look like class labels (choose the column with label_column=)"
                )
            if parse:
                lo = np.minimum(lo, feats.min(0))
                hi = np.maximum(hi, feats.max(0))
                total += feats.sum(0)
                total_sq += np.square(feats).sum(0)
        if count == 0:
            raise DataError(f"'{self.path}' holds no data rows")
        self._total = count
        self._limit = limit
        if self._given is not None:
            lo, hi = self._given
        self._lo, self._span = lo, np.where(hi > lo, hi - lo, 1.0)  # min-max (or given ranges)
        self._min, self._max = lo, hi
        if scale == "standard":
            mean = total / count
            std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
            self._offset, self._scale = mean, np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        elif scale == "none":
            self._offset, self._scale = np.zeros(d), np.ones(d)
        else:
            self._offset, self._scale = self._lo, self._span
        self._label_map, self.classes = label_mapping(seen, classes, source=f"'{self.path}'", rows=count,
                                                      locate=lambda v: self._locate(v, limit))

        if sample_shape is not None:
            shape = tuple(int(s) for s in sample_shape)
            if int(np.prod(shape)) != d:
                raise ConfigError(f"sample_shape {shape} holds {int(np.prod(shape))} values but '{self.path}' "
                                  f"has {d} feature columns")
        else:
            shape = (d,)
        self.sample_shape = shape
        if modality is None:
            modality = Modality.IMAGE if len(shape) == 3 else Modality.TABULAR
        self.modality = Modality(modality)
        self.name = name or self.path.name.split(".")[0]

    # -- reading ---------------------------------------------------------------------------------

    def _first_row(self) -> list[str]:
        try:
            with _open_text(self.path) as f:
                for row in csv.reader(f, delimiter=self.delimiter):
                    if row:
                        return row
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as e:
            raise DataError(f"cannot read table '{self.path}': {e}") from e
        raise DataError(f"'{self.path}' is empty; expected a CSV table with a label column")

    def _label_index(self, label_column: str | int) -> int:
        ncol = len(self.columns)
        if isinstance(label_column, str):
            names = [c.lower() for c in self.columns]
            if label_column.lower() not in names:
                raise ConfigError(
                    f"label column '{label_column}' is not in '{self.path}'; its columns are: {', '.join(self.columns)}"
                )
            return names.index(label_column.lower())
        if not -ncol <= label_column < ncol:
            raise ConfigError(f"label_column {label_column} is out of range for '{self.path}' ({ncol} columns)")
        return label_column % ncol

    def _given_ranges(self, ranges: Ranges | None, d: int) -> tuple[np.ndarray, np.ndarray] | None:
        if ranges is None:
            return None
        try:
            r = np.asarray(ranges, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"ranges must be (lo, hi) or one (lo, hi) per feature, got {ranges!r}") from e
        if r.shape == (2,):
            r = np.tile(r, (d, 1))
        if r.shape != (d, 2):
            raise ConfigError(f"ranges must be (lo, hi) or {d} pairs (one per feature), got shape {r.shape}")
        if not np.isfinite(r).all() or (r[:, 1] < r[:, 0]).any():
            raise ConfigError("ranges must be finite with lo <= hi for every feature")
        return r[:, 0], r[:, 1]

    def _locate(self, label: str, limit: int | None) -> str:
        """``"line N"`` of the first row holding ``label`` (for error messages; re-reads the file)."""
        for first, _, labels in self._chunks(_CHUNK_ROWS, limit, parse=False):
            if label in labels:
                return f"first on line {first + labels.index(label)}"
        return "line unknown"

    def _chunks(
        self, rows_per_chunk: int, limit: int | None, *, parse: bool = True
    ) -> Iterator[tuple[int, np.ndarray, list[str]]]:
        """``(first line number, features (m, D) float64, raw labels)`` per chunk, every cell checked.

        With ``parse=False`` only the row lengths and labels are checked and the features are empty.
        """
        ncol = len(self.columns)
        li, fi = self.label_index, self.feature_index
        left = limit
        try:
            with _open_text(self.path) as f:
                reader = csv.reader(f, delimiter=self.delimiter)
                if self.header:
                    next(reader, None)
                feats: list[list[str]] = []
                labels: list[str] = []
                lines: list[int] = []
                for row in reader:
                    if left is not None and left <= 0:
                        break
                    if not row:
                        continue
                    if len(row) != ncol:
                        raise DataError(
                            f"'{self.path}' line {reader.line_num} has {len(row)} cells, expected {ncol}"
                            f" ({', '.join(self.columns)})"
                        )
                    label = row[li].strip()
                    if not label:
                        raise DataError(
                            f"'{self.path}' line {reader.line_num}, column '{self.columns[li]}': the label is empty"
                        )
                    if parse:
                        feats.append([row[i] for i in fi])
                    labels.append(label)
                    lines.append(reader.line_num)
                    if left is not None:
                        left -= 1
                    if len(labels) == rows_per_chunk:
                        yield lines[0], self._parse(feats, lines) if parse else _EMPTY, labels
                        feats, labels, lines = [], [], []
                if labels:
                    yield lines[0], self._parse(feats, lines) if parse else _EMPTY, labels
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as e:
            raise DataError(f"cannot read table '{self.path}': {e}") from e

    def _parse(self, feats: list[list[str]], lines: list[int]) -> np.ndarray:
        try:
            arr = np.array(feats, dtype=np.float64)
        except ValueError:
            arr = None
        if arr is None or not np.isfinite(arr).all():
            for r, row in enumerate(feats):
                for c, cell in enumerate(row):
                    try:
                        ok = np.isfinite(float(cell))
                    except ValueError:
                        ok = False
                    if not ok:
                        what = "is empty" if not cell.strip() else f"holds '{cell}', which is not a finite number"
                        raise DataError(
                            f"'{self.path}' line {lines[r]}, column '{self.feature_names[c]}' {what}; feature columns "
                            "must be numeric (encode categories as numbers and fill or drop missing values)"
                        )
        assert arr is not None
        if self._given is not None:
            g_lo, g_hi = self._given
            bad = np.argwhere((arr < g_lo) | (arr > g_hi))
            if len(bad):
                r, c = bad[0]
                raise DataError(
                    f"'{self.path}' line {lines[r]}, column '{self.feature_names[c]}': value {arr[r, c]:g} is outside "
                    f"the given range [{g_lo[c]:g}, {g_hi[c]:g}]; widen ranges= or leave it out to compute them"
                )
        return arr

    # -- Dataset protocol ------------------------------------------------------------------------

    @cached_property
    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name,
            modality=self.modality,
            sample_shape=self.sample_shape,
            num_samples=self._total,
            classes=self.classes,
            value_range=self.value_range,
            digest=digest_files(
                [self.path], "csv", self.columns[self.label_index], self.header, self.delimiter,
                *((self._lo.tolist(), self._span.tolist()) if self.scale == "minmax" else
                  (self.scale, self._offset.tolist(), self._scale.tolist())),
                self.classes, self.sample_shape, self._limit,
            ),
            source=str(self.path),
        )

    @property
    def value_range(self) -> tuple[float, float]:
        """The range model inputs lie in: (0, 1) min-max scaled, else the scaled data's extremes
        (one box for every feature; per-feature bounds need tabular constraints)."""
        if self.scale == "minmax":
            return (0.0, 1.0)
        lo = float(((self._min - self._offset) / self._scale).min())
        hi = float(((self._max - self._offset) / self._scale).max())
        return (lo, hi) if hi > lo else (lo, lo + 1.0)

    def scaling_record(self) -> dict[str, Any]:
        """What the evidence records about the inputs: the method, its unit and per-feature statistics
        (``model_input = (raw - offset) / scale``)."""
        return {
            "method": self.scale, "units": SCALE_UNITS[self.scale],
            "features": list(self.feature_names),
            "offset": [float(f"{v:.6g}") for v in self._offset],
            "scale": [float(f"{v:.6g}") for v in self._scale],
            "value_range": list(self.value_range),
        }

    def to_domain(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Model inputs ``(N, D)`` (or ``(N, *sample_shape)``) back in the table's own units."""
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return np.asarray(arr, dtype=np.float64).reshape(len(arr), -1) * self._scale + self._offset

    def __len__(self) -> int:
        return self._total

    # -- raw rows, for constraints -----------------------------------------------------------------

    @property
    def source_name(self) -> str:
        return self.path.name

    @property
    def scaling(self) -> tuple[np.ndarray, np.ndarray]:
        """``(offset, scale)``: :meth:`batches` yields ``(raw - offset) / scale`` (min-max: clipped to [0, 1])."""
        return self._offset, self._scale

    def raw_features(self) -> np.ndarray:
        """Every row's features in domain units, (N, D) float64 (the values :meth:`batches` scales)."""
        chunks = [feats for _, feats, _ in self._chunks(4096, self._limit)]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.feature_names)))

    def batches(self, batch_size: int, *, limit: int | None = None) -> Iterator[Batch]:
        n = check_batch_args(batch_size, limit, self._total)
        if n == 0:
            return
        for _, feats, labels in self._chunks(batch_size, n):
            x = (feats - self._offset) / self._scale
            if self.scale == "minmax":
                x = np.clip(x, 0.0, 1.0)
            try:
                y = np.array([self._label_map[v] for v in labels], dtype=np.int64)
            except KeyError as e:
                raise DataError(f"'{self.path}' changed while reading: unknown label {e}") from e
            xt = torch.from_numpy(x.astype(np.float32).reshape(len(labels), *self.sample_shape))
            yield xt, torch.from_numpy(y)


def load_table(path: str | os.PathLike[str], **options: Any) -> CsvTable:
    """Open a CSV table (see :class:`CsvTable` for the options)."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        raise ConfigError(
            f"'{p}': Parquet is not supported; convert it to CSV, e.g. "
            "pandas.read_parquet(path).to_csv('table.csv', index=False)"
        )
    return CsvTable(p, **options)


def constraints_from_csv(path: str | os.PathLike[str], **options: Any) -> TabularConstraints:
    """Open ``path`` as a CSV table (``options`` as for :class:`CsvTable`) and infer its row constraints
    (see :meth:`aisec.core.constraints.TabularConstraints.infer`)."""
    return TabularConstraints.from_table(load_table(path, **options))
