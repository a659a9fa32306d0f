"""Fixtures for the data-loader tests: writers for tiny files in the real on-disk formats."""

from __future__ import annotations

import csv
import gzip
import pickle
import struct
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False, magic: int | None = None) -> Path:
    """An IDX file of unsigned bytes (magic 0x0803 for 3-D, 0x0801 for 1-D unless given)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    m = magic if magic is not None else 0x0800 | a.ndim
    raw = struct.pack(">I", m) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
    if gz:
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def idx_pair(directory: Path, n: int = 7, *, split: str = "t10k", gz: bool = False, seed: int = 0):
    """``(images (n, 28, 28) uint8, labels (n,))`` written as ``{split}-{images,labels}-idx*-ubyte[.gz]``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    ext = ".gz" if gz else ""
    directory.mkdir(parents=True, exist_ok=True)
    write_idx(directory / f"{split}-images-idx3-ubyte{ext}", images, gz=gz)
    write_idx(directory / f"{split}-labels-idx1-ubyte{ext}", labels, gz=gz)
    return images, labels


def cifar_batch(path: Path, data: np.ndarray, labels: Sequence[int], *, protocol: int = 2, **extra) -> Path:
    """A CIFAR-10 python batch: a pickled dict with b'data' (N, 3072) uint8 and b'labels'."""
    d = {b"batch_label": b"testing batch", b"labels": list(labels), b"data": data,
         b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))], **extra}
    path.write_bytes(pickle.dumps(d, protocol=protocol))
    return path


def cifar_folder(root: Path, sizes: Sequence[int] = (3, 2), test: int = 4, *, seed: int = 0):
    """``root/cifar-10-batches-py`` with data_batch_1.. of ``sizes``, test_batch and batches.meta."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    parts = {}
    for i, n in enumerate(sizes, 1):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        cifar_batch(folder / f"data_batch_{i}", data, labels)
        parts[f"data_batch_{i}"] = (data, labels)
    data = rng.integers(0, 256, size=(test, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=test).tolist()
    cifar_batch(folder / "test_batch", data, labels)
    parts["test_batch"] = (data, labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps(
        {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072}, protocol=2))
    return folder, parts


def image_folder(
    root: Path, labels: Sequence[str], *, mode: str = "L", size: tuple[int, int] = (5, 4), seed: int = 0,
    prefix: str = "", header: Sequence[str] = ("filename", "label"),
) -> tuple[Path, list[np.ndarray]]:
    """``root/labels.csv`` + ``root/images/i.png`` (size is (H, W)); returns the pixel arrays."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    pixels = []
    rows = [list(header)]
    for i, lab in enumerate(labels):
        shape = (size[0], size[1]) if mode == "L" else (size[0], size[1], 3)
        arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
        Image.fromarray(arr, mode=mode).save(root / "images" / f"{i}.png")
        pixels.append(arr)
        rows.append([f"{prefix}{i}.png", lab])
    with open(root / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root, pixels


def write_csv(path: Path, rows: Sequence[Sequence[object]], *, gz: bool = False) -> Path:
    if gz:
        with gzip.open(path, "wt", newline="") as f:
            csv.writer(f).writerows(rows)
    else:
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return path


@pytest.fixture(scope="session")
def files() -> SimpleNamespace:
    """The writers above, for tests (``files.idx_pair(tmp_path)``)."""
    return SimpleNamespace(
        write_idx=write_idx, idx_pair=idx_pair, cifar_batch=cifar_batch, cifar_folder=cifar_folder,
        image_folder=image_folder, write_csv=write_csv,
    )


@pytest.fixture
def fashion_dir() -> Path:
    if not FASHION_DIR.is_dir():
        pytest.skip(f"Fashion-MNIST not installed at {FASHION_DIR} (apt install dataset-fashion-mnist)")
    return FASHION_DIR
