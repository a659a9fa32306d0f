"""A folder of image files with a ``labels.csv``::

    mydata/
      labels.csv        filename,label      (header required)
      images/0001.png   (paths relative to images/ or to mydata/)
      classes.txt       optional: one class name per line, in index order

``labels.csv`` is read when the folder is opened (paths and labels only, and every file is checked
to exist); the images are decoded with Pillow batch by batch. Every image is converted to the same
mode (grayscale or RGB: decided by ``channels`` or else by the first image) and must have the
first image's size unless ``resize=(H, W)`` is given.

Limits, because the folder may come from someone else: every path in ``labels.csv`` must lie inside
the folder once resolved — ``../`` escapes, absolute paths and symlinks pointing out of it are
refused unless ``allow_outside_paths=True`` (CLI: ``--allow-outside-paths``; a plan file cannot set
it), so a shared report never digests or shows a file the folder does not hold. Images may have at
most :data:`~aisec.core.safety.MAX_IMAGE_PIXELS` pixels (a "decompression bomb" PNG of a few KB can
decode to gigabytes).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.core.dataset import Batch, DatasetInfo
from aisec.core.errors import ConfigError, DataError
from aisec.core.safety import MAX_IMAGE_PIXELS, outside_paths_allowed
from aisec.core.types import Modality
from aisec.data._common import (
    check_batch_args,
    check_limit,
    digest_files,
    label_mapping,
    positive_size,
    read_classes_file,
)

LABELS_FILE = "labels.csv"
CLASSES_FILE = "classes.txt"
PATH_COLUMNS = ("filename", "file", "file_name", "path", "filepath", "image", "image_path", "img", "name")
LABEL_COLUMNS = ("label", "class", "target", "y", "category", "class_name")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "La"}


class ImageFolder:
    """Images listed in ``labels.csv``, decoded lazily per batch to ``(N, C, H, W)`` in [0, 1]."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        channels: int | None = None,
        resize: Sequence[int] | None = None,
        classes: Sequence[str] | None = None,
        path_column: str | None = None,
        label_column: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        allow_outside_paths: bool = False,
    ) -> None:
        check_limit(limit)
        self.root = Path(directory)
        self._real_root = self.root.resolve()
        self.allow_outside_paths = bool(allow_outside_paths) or outside_paths_allowed()
        self.labels_file = self.root / LABELS_FILE
        if not self.labels_file.is_file():
            raise DataError(
                f"'{self.root}' has no {LABELS_FILE}; an image folder needs {LABELS_FILE} with a filename "
                "column and a label column next to an images/ folder"
            )
        if channels is not None and channels not in (1, 3):
            raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
        self.resize = positive_size(resize, "resize") if resize is not None else None
        paths, raw, lines = self._read_labels(path_column, label_column, limit)
        self.files = [self._resolve(p, line) for p, line in zip(paths, lines, strict=True)]
        self.classes_file = self.root / CLASSES_FILE
        if classes is None and self.classes_file.is_file():
            classes = read_classes_file(self.classes_file)
        mapping, self.classes = label_mapping(
            raw, classes, source=f"'{self.labels_file}'", locate=lambda v: f"line {lines[raw.index(v)]}")
        self.labels = np.array([mapping[v] for v in raw], dtype=np.int64)
        self._limit = limit

        from PIL import Image, UnidentifiedImageError

        self._image_errors = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)
        first = self.files[0]
        try:
            with self._open(first) as im:
                mode, (w, h) = im.mode, im.size
        except self._image_errors as e:
            raise DataError(f"cannot read image '{first}': {e}; replace or remove the file") from e
        self.channels = channels or (1 if mode in _GRAY_MODES else 3)
        self.first_size = (h, w)
        self.size = self.resize or (h, w)
        self.name = name or self.root.resolve().name

    def _read_labels(
        self, path_column: str | None, label_column: str | None, limit: int | None
    ) -> tuple[list[str], list[str], list[int]]:
        lf = self.labels_file
        try:
            with open(lf, encoding="utf-8", newline="") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                while header is not None and not header:
                    header = next(reader, None)
                if header is None:
                    raise DataError(f"'{lf}' is empty; write a header (e.g. filename,label) and one row per image")
                cols = [c.strip().lower() for c in header]
                pi = self._column(cols, header, path_column, PATH_COLUMNS, "filename")
                li = self._column(cols, header, label_column, LABEL_COLUMNS, "label")
                if pi == li:
                    raise ConfigError(f"'{lf}': the filename and label columns must differ (both are '{header[pi]}')")
                paths: list[str] = []
                labels: list[str] = []
                lines: list[int] = []
                for row in reader:
                    if limit is not None and len(paths) >= limit:
                        break
                    if not row or not any(c.strip() for c in row):
                        continue
                    if len(row) <= max(pi, li):
                        raise DataError(f"'{lf}' line {reader.line_num} has {len(row)} cells, expected {len(header)}")
                    p, lab = row[pi].strip(), row[li].strip()
                    if not p or not lab:
                        what = "filename" if not p else "label"
                        raise DataError(f"'{lf}' line {reader.line_num}: the {what} is empty")
                    paths.append(p)
                    labels.append(lab)
                    lines.append(reader.line_num)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise DataError(f"cannot read '{lf}': {e}") from e
        if not paths:
            raise DataError(f"'{lf}' lists no images; add one row per image below the header")
        return paths, labels, lines

    def _column(
        self, cols: list[str], header: list[str], given: str | None, candidates: tuple[str, ...], role: str
    ) -> int:
        if given is not None:
            if given.strip().lower() not in cols:
                raise ConfigError(f"'{self.labels_file}' has no column '{given}'; its columns are: {', '.join(header)}")
            return cols.index(given.strip().lower())
        for c in candidates:
            if c in cols:
                return cols.index(c)
        if len(cols) == 2:
            return 0 if role == "filename" else 1
        raise DataError(
            f"'{self.labels_file}' has no {role} column: its header is {', '.join(header)}; name it one of "
            f"{', '.join(candidates)} or pass {'path' if role == 'filename' else 'label'}_column="
        )

    def _resolve(self, rel: str, line: int) -> Path:
        for base in (self.root / "images", self.root):
            p = base / rel
            if not self.allow_outside_paths:
                real = p.resolve()
                if not real.is_relative_to(self._real_root):
                    raise DataError(
                        f"image '{rel}' listed in '{self.labels_file}' line {line} lies outside the dataset folder "
                        f"'{self.root}' (it resolves to '{real}'); an image folder may only read files inside it. "
                        "Copy the file into the folder, or, if you trust labels.csv, pass --allow-outside-paths "
                        "(allow_outside_paths=True)"
                    )
            if p.is_file():
                return p
        raise DataError(
            f"image '{rel}' listed in '{self.labels_file}' line {line} does not exist "
            f"(looked in '{self.root / 'images'}' and '{self.root}'); fix the path or remove the row"
        )

    # -- Dataset protocol ------------------------------------------------------------------------

    @cached_property
    def info(self) -> DatasetInfo:
        extra = [self.classes_file] if self.classes_file.is_file() else []
        return DatasetInfo(
            name=self.name,
            modality=Modality.IMAGE,
            sample_shape=(self.channels, *self.size),
            num_samples=len(self.files),
            classes=self.classes,
            digest=digest_files(
                [self.labels_file, *extra, *self.files], "imagefolder", self.channels, self.size,
                self.classes, self._limit,
            ),
            source=str(self.root),
        )

    def __len__(self) -> int:
        return len(self.files)

    def _open(self, path: Path) -> Any:
        """``Image.open`` refusing images of more than :data:`MAX_IMAGE_PIXELS` pixels before decoding them."""
        import warnings

        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                im = Image.open(path)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise DataError(f"image '{path}' is too large to decode safely ({e}); at most {MAX_IMAGE_PIXELS} "
                                "pixels (MAX_IMAGE_PIXELS) are read. Resize the image") from e
        w, h = im.size
        if w * h > MAX_IMAGE_PIXELS:
            im.close()
            raise DataError(
                f"image '{path}' declares {w}x{h} = {w * h} pixels; at most {MAX_IMAGE_PIXELS} (MAX_IMAGE_PIXELS) "
                "are read, since a small compressed file can decode to gigabytes. Resize the image"
            )
        return im

    def _load(self, path: Path) -> np.ndarray:
        from PIL import Image

        try:
            with self._open(path) as im:
                im.load()
                if (im.size[1], im.size[0]) != self.first_size and self.resize is None:
                    raise DataError(
                        f"image '{path}' is {im.size[1]}x{im.size[0]} (HxW) but '{self.files[0]}' is "
                        f"{self.first_size[0]}x{self.first_size[1]}; all images must have one size, "
                        "or pass resize=(H, W)"
                    )
                conv = im.convert("L" if self.channels == 1 else "RGB")
                if self.resize is not None and conv.size != (self.size[1], self.size[0]):
                    conv = conv.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
                arr8 = np.asarray(conv, dtype=np.uint8)
        except DataError:
            raise
        except self._image_errors as e:
            raise DataError(f"cannot read image '{path}': {e}; replace or remove the file") from e
        return arr8[None] if arr8.ndim == 2 else arr8.transpose(2, 0, 1)

    def batches(self, batch_size: int, *, limit: int | None = None) -> Iterator[Batch]:
        n = check_batch_args(batch_size, limit, len(self.files))
        for i in range(0, n, batch_size):
            j = min(i + batch_size, n)
            arr = np.stack([self._load(p) for p in self.files[i:j]])
            x = torch.from_numpy(arr.astype(np.float32)).div_(255.0)
            yield x, torch.from_numpy(self.labels[i:j].copy())
