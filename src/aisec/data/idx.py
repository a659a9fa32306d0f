"""MNIST-format IDX files (``train-images-idx3-ubyte[.gz]`` + ``train-labels-idx1-ubyte[.gz]``).

The header is parsed and checked when the dataset is opened; samples are read batch by batch:
gzipped files are streamed through :mod:`gzip`, plain files are memory-mapped. Pixels are scaled
from 0..255 to [0, 1] and shaped ``(N, 1, rows, cols)``.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from functools import cached_property
from pathlib import Path
from typing import IO, cast

import numpy as np
import torch

from aisec.core.dataset import Batch, DatasetInfo
from aisec.core.errors import ConfigError, DataError
from aisec.core.types import Modality
from aisec.data._common import check_batch_args, check_limit, digest_files

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MNIST_CLASSES = tuple(str(i) for i in range(10))

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
_GZIP_MAGIC = b"\x1f\x8b"
_SPLIT_PREFIXES = {"train": ("train",), "test": ("t10k", "test"), "t10k": ("t10k", "test")}
_READ_ERRORS = (OSError, EOFError, zlib.error)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _open(path: Path) -> IO[bytes]:
    if _is_gzip(path):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _read_exact(f: IO[bytes], n: int, path: Path, what: str) -> bytes:
    try:
        data = f.read(n)
    except _READ_ERRORS as e:
        raise DataError(f"'{path}' is corrupt or truncated while reading {what}: {e}") from e
    if len(data) != n:
        raise DataError(
            f"'{path}' is truncated: reading {what} needed {n} bytes but only {len(data)} were left; "
            "download the file again"
        )
    return data


class IdxHeader:
    """The parsed header of one IDX file."""

    def __init__(self, path: Path, magic: int, dims: tuple[int, ...], gz: bool) -> None:
        self.path, self.magic, self.dims, self.gz = path, magic, dims, gz

    @property
    def offset(self) -> int:
        return 4 + 4 * len(self.dims)

    @property
    def count(self) -> int:
        return self.dims[0]

    @property
    def item_size(self) -> int:
        return int(np.prod(self.dims[1:], dtype=np.int64)) if len(self.dims) > 1 else 1


def _gz_size(path: Path, expected: int) -> int:
    """The decompressed size of a gzip file: ``expected`` when the gzip trailer agrees, else counted."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() >= 22:  # smallest gzip member with a trailer
            f.seek(-4, os.SEEK_END)
            if struct.unpack("<I", f.read(4))[0] == expected & 0xFFFFFFFF:
                return expected
    size = 0
    try:
        with gzip.open(path, "rb") as g:
            while chunk := g.read(1 << 20):
                size += len(chunk)
    except EOFError as e:
        raise DataError(
            f"'{path}' is truncated: the gzip stream ends early after {size} bytes ({e}); download the file again"
        ) from e
    except (OSError, zlib.error) as e:
        raise DataError(f"'{path}' is a corrupt gzip file: {e}; download the file again") from e
    return size


def read_header(path: str | os.PathLike[str], expected_magic: int) -> IdxHeader:
    """Parse and check an IDX header (``expected_magic`` = :data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`)."""
    p = Path(path)
    kind = "image" if expected_magic == IMAGES_MAGIC else "label"
    if not p.is_file():
        raise DataError(f"IDX {kind} file '{p}' does not exist")
    try:
        gz = _is_gzip(p)
        with _open(p) as f:
            head = f.read(4)
            if len(head) < 4:
                raise DataError(f"'{p}' is too short to be an IDX file ({len(head)} header bytes, expected 4 or more)")
            (magic,) = struct.unpack(">I", head)
            if magic != expected_magic:
                raise DataError(
                    f"'{p}' is not an IDX {kind} file: magic number 0x{magic:08X}, expected 0x{expected_magic:08X} "
                    f"(unsigned bytes, {expected_magic & 0xFF} dimension{'s' if expected_magic & 0xFF > 1 else ''}); "
                    "check that images and labels are not swapped and that the file is MNIST-format IDX"
                )
            ndim = magic & 0xFF
            raw = _read_exact(f, 4 * ndim, p, "the header dimensions")
    except _READ_ERRORS as e:
        raise DataError(f"cannot read IDX {kind} file '{p}': {e}") from e
    dims = struct.unpack(f">{ndim}I", raw)
    header = IdxHeader(p, magic, tuple(int(d) for d in dims), gz)
    expected = header.offset + header.count * header.item_size
    size = _gz_size(p, expected) if gz else p.stat().st_size
    if size != expected:
        state = "truncated" if size < expected else "longer than its header says"
        raise DataError(
            f"'{p}' is {state}: the header declares {header.count} items of shape {header.dims[1:]} "
            f"({expected} bytes in all) but the {'decompressed ' if gz else ''}file has {size} bytes; "
            "download the file again"
        )
    return header


def find_idx_pair(directory: str | os.PathLike[str], split: str = "test") -> tuple[Path, Path]:
    """The ``(images, labels)`` IDX files of ``split`` (``train``, ``test`` or ``t10k``) in ``directory``.

    Accepts the usual names: ``{train,t10k}-images-idx3-ubyte`` (also ``-images.idx3-ubyte``),
    ``{train,t10k}-labels-idx1-ubyte``, each optionally gzipped (``.gz``).
    """
    d = Path(directory)
    if split not in _SPLIT_PREFIXES:
        raise ConfigError(f"IDX split must be 'train', 'test' or 't10k', got '{split}'")
    if not d.is_dir():
        raise DataError(f"IDX folder '{d}' does not exist or is not a folder")
    found: dict[str, Path] = {}
    tried: list[str] = []
    for kind, ndim in (("images", 3), ("labels", 1)):
        for prefix in _SPLIT_PREFIXES[split]:
            for sep in ("-", "."):
                for ext in ("", ".gz"):
                    name = f"{prefix}-{kind}{sep}idx{ndim}-ubyte{ext}"
                    tried.append(name)
                    if kind not in found and (d / name).is_file():
                        found[kind] = d / name
    if len(found) < 2:
        missing = [k for k in ("images", "labels") if k not in found]
        present = sorted(x.name for x in d.iterdir())[:20]
        raise DataError(
            f"no IDX {' and '.join(missing)} file for split '{split}' in '{d}'; looked for "
            f"{', '.join(n for n in tried if any(m in n for m in missing))}; the folder holds: "
            f"{', '.join(present) or 'nothing'}"
        )
    return found["images"], found["labels"]


def has_idx_files(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds at least one IDX images file (any split)."""
    d = Path(directory)
    return d.is_dir() and any("-images" in x.name and "idx3-ubyte" in x.name for x in d.iterdir())


class IdxDataset:
    """Images and labels from a pair of MNIST-format IDX files, read lazily in batches."""

    def __init__(
        self,
        images: str | os.PathLike[str],
        labels: str | os.PathLike[str],
        *,
        name: str | None = None,
        classes: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> None:
        check_limit(limit)
        self.images_header = read_header(images, IMAGES_MAGIC)
        self.labels_header = read_header(labels, LABELS_MAGIC)
        ih, lh = self.images_header, self.labels_header
        if ih.count != lh.count:
            raise DataError(
                f"count mismatch: '{ih.path}' holds {ih.count} images but '{lh.path}' holds {lh.count} labels; "
                "pair the images file with the labels file of the same split"
            )
        self._total = ih.count if limit is None else min(limit, ih.count)
        self._limit = limit
        max_label = self._scan_labels()
        if classes is None:
            classes = MNIST_CLASSES if max_label < 10 else tuple(str(i) for i in range(max_label + 1))
        classes = tuple(str(c) for c in classes)
        if max_label >= len(classes):
            raise DataError(
                f"'{lh.path}' holds label {max_label} but only {len(classes)} classes were given; "
                "pass the full class list"
            )
        self.classes = classes
        self.name = name or Path(ih.path).name.split("-images")[0].split(".")[0]

    def _scan_labels(self) -> int:
        """Read the labels (1 byte each) in chunks: checks the file is complete, returns the largest."""
        lh = self.labels_header
        biggest, left = -1, lh.count
        with _open(lh.path) as f:
            _read_exact(f, lh.offset, lh.path, "the header")
            while left:
                n = min(left, 1 << 16)
                chunk = np.frombuffer(_read_exact(f, n, lh.path, f"{lh.count} labels"), dtype=np.uint8)
                biggest = max(biggest, int(chunk.max()))
                left -= n
        return biggest

    @cached_property
    def info(self) -> DatasetInfo:
        ih = self.images_header
        return DatasetInfo(
            name=self.name,
            modality=Modality.IMAGE,
            sample_shape=(1, *ih.dims[1:]),
            num_samples=self._total,
            classes=self.classes,
            digest=digest_files([ih.path, self.labels_header.path], "idx", self._limit),
            source=str(ih.path.parent),
        )

    def __len__(self) -> int:
        return self._total

    def batches(self, batch_size: int, *, limit: int | None = None) -> Iterator[Batch]:
        n = check_batch_args(batch_size, limit, self._total)
        if n == 0:
            return
        ih, lh = self.images_header, self.labels_header
        shape = (1, *ih.dims[1:])
        with ExitStack() as stack:
            if ih.gz:
                fi = stack.enter_context(_open(ih.path))
                _read_exact(fi, ih.offset, ih.path, "the header")
            else:
                mm = np.memmap(ih.path, dtype=np.uint8, mode="r", offset=ih.offset, shape=(ih.count, ih.item_size))
            fl = stack.enter_context(_open(lh.path))
            _read_exact(fl, lh.offset, lh.path, "the header")
            for i in range(0, n, batch_size):
                m = min(batch_size, n - i)
                if ih.gz:
                    raw = _read_exact(fi, m * ih.item_size, ih.path, f"images {i}..{i + m - 1}")
                    arr = np.frombuffer(raw, dtype=np.uint8).reshape(m, *shape)
                else:
                    arr = np.asarray(mm[i:i + m]).reshape(m, *shape)
                lab = np.frombuffer(_read_exact(fl, m, lh.path, f"labels {i}..{i + m - 1}"), dtype=np.uint8)
                if int(lab.max()) >= len(self.classes):
                    raise DataError(f"'{lh.path}' changed while reading: label {int(lab.max())} is not a known class")
                x = torch.from_numpy(arr.astype(np.float32)).div_(255.0)
                yield x, torch.from_numpy(lab.astype(np.int64))


def load_idx(
    directory: str | os.PathLike[str],
    split: str = "test",
    *,
    classes: Sequence[str] | None = None,
    name: str | None = None,
    limit: int | None = None,
) -> IdxDataset:
    """The IDX dataset of ``split`` in ``directory`` (see :func:`find_idx_pair`)."""
    images, labels = find_idx_pair(directory, split)
    d = Path(directory)
    if classes is None and "fashion" in d.resolve().name.lower():
        classes = FASHION_MNIST_CLASSES
    split_name = "train" if split == "train" else "test"
    return IdxDataset(images, labels, classes=classes, name=name or f"{d.resolve().name}-{split_name}", limit=limit)


def fashion_mnist(split: str = "test", *, limit: int | None = None) -> IdxDataset:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``)."""
    if not FASHION_MNIST_DIR.is_dir():
        raise DataError(
            f"Fashion-MNIST is not installed at '{FASHION_MNIST_DIR}'; install Debian's dataset-fashion-mnist "
            "package (apt install dataset-fashion-mnist) or pass the folder holding the IDX files"
        )
    name = f"fashion-mnist-{'train' if split == 'train' else 'test'}"
    return load_idx(FASHION_MNIST_DIR, split, classes=FASHION_MNIST_CLASSES, name=name, limit=limit)
