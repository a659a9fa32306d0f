"""CIFAR-10 "python version" batches (``cifar-10-batches-py``: ``data_batch_1..5``, ``test_batch``).

The batch files are pickles. A pickle can run any code while it loads, so they are read with
:class:`CifarUnpickler`, which resolves only the few numpy callables needed to rebuild an array
and refuses everything else. One batch file is held in memory at a time.

A pickle can also be small yet expand when read: one list referenced from many places is stored
once but walked each time. An unpickled batch may hold at most
:data:`~aisec.core.safety.MAX_UNPICKLED_ITEMS` elements with shared references counted every time
they occur, ``labels`` must be a flat list of integers and ``label_names`` a flat list of strings.
"""

from __future__ import annotations

import codecs
import os
import pickle
import re
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.core.dataset import Batch, DatasetInfo
from aisec.core.errors import ConfigError, DataError
from aisec.core.safety import MAX_CLASSES, MAX_UNPICKLED_ITEMS, expanded_size
from aisec.core.types import Modality
from aisec.data._common import check_batch_args, check_limit, digest_files

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
FOLDER_NAME = "cifar-10-batches-py"
_SAMPLE = 3 * 32 * 32


def _allowed() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray as ma
        from numpy._core import numeric as nm
    except ImportError:  # numpy < 2
        from numpy.core import multiarray as ma  # type: ignore[no-redef]
        from numpy.core import numeric as nm  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = ma._reconstruct
        if hasattr(nm, "_frombuffer"):  # protocol-5 pickles of arrays
            allowed[(f"{mod}.numeric", "_frombuffer")] = nm._frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = codecs.encode  # bytes in Python 3 protocol-2 pickles
    return allowed


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays, dicts, lists, strings and numbers, and nothing else."""

    _ALLOWED = _allowed()

    def __init__(self, file: Any, *, source: str | os.PathLike[str]) -> None:
        super().__init__(file, encoding="bytes")
        self.source = str(source)

    def find_class(self, module: str, name: str) -> Any:
        obj = self._ALLOWED.get((module, name))
        if obj is None:
            raise DataError(
                f"refusing to unpickle {module}.{name} from {self.source}: CIFAR batches hold only numpy arrays"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"refusing to unpickle a persistent reference from {self.source}: not a CIFAR batch")


def safe_load(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with :class:`CifarUnpickler`; a damaged or foreign file raises :class:`DataError`."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            obj = CifarUnpickler(f, source=p).load()
    except DataError:
        raise
    except FileNotFoundError as e:
        raise DataError(f"CIFAR batch file '{p}' does not exist") from e
    except Exception as e:  # truncated or garbled pickles raise many different types
        raise DataError(f"'{p}' is not a readable CIFAR batch ({type(e).__name__}: {str(e)[:200]}); "
                        "download it again") from e
    if expanded_size(obj, MAX_UNPICKLED_ITEMS) > MAX_UNPICKLED_ITEMS:
        raise DataError(
            f"'{p}' unpickles to more than {MAX_UNPICKLED_ITEMS} elements once its shared references are counted "
            "(MAX_UNPICKLED_ITEMS); a CIFAR batch holds one array and a few flat lists. Download it again"
        )
    return obj


def _key(d: dict[Any, Any], name: str) -> Any:
    for k in (name.encode(), name):
        if k in d:
            return d[k]
    return None


def read_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(data (N, 3072) uint8, labels (N,) int64)`` of one CIFAR batch file, checked."""
    p = Path(path)
    d = safe_load(p)
    if not isinstance(d, dict):
        raise DataError(f"'{p}' holds a {type(d).__name__}, expected a CIFAR batch dict with 'data' and 'labels'")
    data, labels = _key(d, "data"), _key(d, "labels")
    if labels is None and _key(d, "fine_labels") is not None:
        raise DataError(f"'{p}' is a CIFAR-100 batch (it has 'fine_labels'); only CIFAR-10 batches are supported")
    if data is None or labels is None:
        keys = sorted((k.decode(errors="replace") if isinstance(k, bytes) else str(k))[:40]
                      for k in d if isinstance(k, (bytes, str)))[:20]
        raise DataError(f"'{p}' lacks 'data' or 'labels' (keys: {', '.join(keys)}); is it a CIFAR-10 batch?")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _SAMPLE:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"'{p}': 'data' must be a uint8 array of shape (N, {_SAMPLE}), got {got}")
    flat = isinstance(labels, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in labels)
    if not (flat or (isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu")):
        raise DataError(f"'{p}': 'labels' must be a flat list of integers, got {type(labels).__name__}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as e:
        raise DataError(f"'{p}': 'labels' must be a list of integers: {e}") from e
    if y.shape != (data.shape[0],):
        raise DataError(f"'{p}' holds {data.shape[0]} images but {y.size} labels")
    if y.size and int(y.min()) < 0:
        raise DataError(f"'{p}' holds a negative label ({int(y.min())})")
    return data, y


def read_meta(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The class names from ``batches.meta``."""
    p = Path(path)
    d = safe_load(p)
    names = _key(d, "label_names") if isinstance(d, dict) else None
    if not isinstance(names, list) or not names:
        raise DataError(f"'{p}' has no 'label_names' list; delete it or pass classes=")
    if len(names) > MAX_CLASSES or not all(isinstance(n, (bytes, str)) and len(n) <= 1000 for n in names):
        raise DataError(f"'{p}': 'label_names' must be at most {MAX_CLASSES} strings of at most 1000 characters; "
                        "delete the file or pass classes=")
    return tuple(n.decode(errors="replace") if isinstance(n, bytes) else n for n in names)


def find_cifar_folder(directory: str | os.PathLike[str]) -> Path | None:
    """``directory`` or its ``cifar-10-batches-py`` subfolder, whichever holds batch files."""
    d = Path(directory)
    for cand in (d, d / FOLDER_NAME):
        if cand.is_dir() and any(x.name == "test_batch" or x.name.startswith("data_batch_") for x in cand.iterdir()):
            return cand
    return None


def batch_files(folder: str | os.PathLike[str], split: str) -> list[Path]:
    """The batch files of ``split``: ``data_batch_<i>`` in numeric order for ``train``, ``test_batch`` for ``test``."""
    d = Path(folder)
    if split == "test":
        files = [d / "test_batch"] if (d / "test_batch").is_file() else []
    elif split == "train":
        found = [(int(m.group(1)), x) for x in d.iterdir() if (m := re.fullmatch(r"data_batch_(\d+)", x.name))]
        files = [x for _, x in sorted(found)]
    else:
        raise ConfigError(f"CIFAR split must be 'train' or 'test', got '{split}'")
    if not files:
        want = "test_batch" if split == "test" else "data_batch_1 .. data_batch_5"
        raise DataError(f"no CIFAR {split} batches in '{d}': expected {want} (the python version, {FOLDER_NAME})")
    return files


class CifarDataset:
    """CIFAR-10 python batches as ``(N, 3, 32, 32)`` images in [0, 1], one batch file in memory at a time."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        split: str = "test",
        *,
        classes: Sequence[str] | None = None,
        name: str | None = None,
        limit: int | None = None,
    ) -> None:
        check_limit(limit)
        folder = find_cifar_folder(directory)
        if folder is None:
            raise DataError(
                f"'{directory}' holds no CIFAR-10 python batches (data_batch_1..5, test_batch); pass the "
                f"extracted {FOLDER_NAME} folder of cifar-10-python.tar.gz"
            )
        self.folder = folder
        self.split = split
        self.files = batch_files(folder, split)
        # Each file is read once (one at a time) to check it and count its samples.
        self._counts: list[int] = []
        biggest = -1
        for f in self.files:
            data, y = read_batch(f)
            self._counts.append(int(data.shape[0]))
            if y.size:
                biggest = max(biggest, int(y.max()))
            del data, y
        if classes is None:
            meta = folder / "batches.meta"
            classes = read_meta(meta) if meta.is_file() else CIFAR10_CLASSES
        self.classes = tuple(str(c) for c in classes)
        if biggest >= len(self.classes):
            raise DataError(
                f"CIFAR batches in '{folder}' hold label {biggest} but there are {len(self.classes)} classes; "
                "pass the full class list as classes="
            )
        total = sum(self._counts)
        self._total = total if limit is None else min(limit, total)
        self._limit = limit
        self.name = name or f"cifar10-{split}"

    @cached_property
    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name,
            modality=Modality.IMAGE,
            sample_shape=(3, 32, 32),
            num_samples=self._total,
            classes=self.classes,
            digest=digest_files(self.files, "cifar", self.classes, self._limit),
            source=str(self.folder),
        )

    def __len__(self) -> int:
        return self._total

    def batches(self, batch_size: int, *, limit: int | None = None) -> Iterator[Batch]:
        n = check_batch_args(batch_size, limit, self._total)
        done = 0
        carry_x: list[np.ndarray] = []
        carry_y: list[np.ndarray] = []
        pending = 0
        for f in self.files:
            if done + pending >= n:
                break
            data, y = read_batch(f)
            take = min(len(y), n - done - pending)
            data, y = data[:take], y[:take]
            i = 0
            while i < take:
                m = min(batch_size - pending, take - i)
                carry_x.append(data[i:i + m])
                carry_y.append(y[i:i + m])
                pending += m
                i += m
                if pending == batch_size:
                    yield self._tensors(carry_x, carry_y)
                    done += pending
                    carry_x, carry_y, pending = [], [], 0
            del data, y
        if pending:
            yield self._tensors(carry_x, carry_y)

    def _tensors(self, xs: list[np.ndarray], ys: list[np.ndarray]) -> Batch:
        x = np.concatenate(xs) if len(xs) > 1 else xs[0]
        y = np.concatenate(ys) if len(ys) > 1 else ys[0]
        xt = torch.from_numpy(x.reshape(-1, 3, 32, 32).astype(np.float32)).div_(255.0)
        if int(y.max()) >= len(self.classes):
            raise DataError(f"CIFAR batches in '{self.folder}' changed while reading: label {int(y.max())}")
        return xt, torch.from_numpy(np.ascontiguousarray(y))
