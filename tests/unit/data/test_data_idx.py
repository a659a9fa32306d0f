"""IDX (MNIST-format) loader: tiny generated files and the real Fashion-MNIST."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from aisec.core.dataset import digest_arrays, take
from aisec.core.errors import ConfigError, DataError
from aisec.data.idx import FASHION_MNIST_CLASSES, IdxDataset, fashion_mnist, find_idx_pair, load_idx


@pytest.mark.parametrize("gz", [False, True])
def test_tiny_idx_roundtrip(files, tmp_path, gz):
    images, labels = files.idx_pair(tmp_path, 7, gz=gz)
    d = load_idx(tmp_path, "test")
    assert len(d) == 7
    assert d.info.sample_shape == (1, 28, 28)
    assert d.info.classes == tuple(str(i) for i in range(10))
    x, y = take(d)
    assert x.dtype == torch.float32 and y.dtype == torch.long
    assert torch.equal(x, torch.from_numpy(images[:, None].astype(np.float32) / 255.0))
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))


def test_plain_and_gz_give_same_tensors(files, tmp_path):
    files.idx_pair(tmp_path / "a", 5, gz=False)
    files.idx_pair(tmp_path / "b", 5, gz=True)
    xa, ya = take(load_idx(tmp_path / "a"))
    xb, yb = take(load_idx(tmp_path / "b"))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_find_pair_by_split_and_missing(files, tmp_path):
    files.idx_pair(tmp_path, 3, split="train", gz=True)
    images, labels = find_idx_pair(tmp_path, "train")
    assert images.name == "train-images-idx3-ubyte.gz" and labels.name == "train-labels-idx1-ubyte.gz"
    with pytest.raises(DataError, match=r"no IDX images and labels file for split 'test'.*t10k-images-idx3-ubyte"):
        find_idx_pair(tmp_path, "test")
    with pytest.raises(ConfigError, match="split must be 'train', 'test' or 't10k'"):
        find_idx_pair(tmp_path, "validation")


def test_wrong_magic_says_swapped(files, tmp_path):
    _images, _labels = files.idx_pair(tmp_path, 4)
    with pytest.raises(DataError, match=r"not an IDX image file: magic number 0x00000801, expected 0x00000803"):
        IdxDataset(tmp_path / "t10k-labels-idx1-ubyte", tmp_path / "t10k-images-idx3-ubyte")


def test_foreign_file_magic(files, tmp_path):
    (tmp_path / "x").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    files.idx_pair(tmp_path, 2)
    with pytest.raises(DataError, match=r"'.*x' is not an IDX image file: magic number 0x89504E47"):
        IdxDataset(tmp_path / "x", tmp_path / "t10k-labels-idx1-ubyte")


def test_count_mismatch(files, tmp_path):
    files.idx_pair(tmp_path, 5)
    files.write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match=r"count mismatch: .* holds 5 images but .* holds 4 labels"):
        load_idx(tmp_path)


def test_truncated_plain_file(files, tmp_path):
    files.idx_pair(tmp_path, 5)
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"is truncated: the header declares 5 items of shape \(28, 28\) "
                                        r"\(3936 bytes in all\) but the file has 3836 bytes"):
        load_idx(tmp_path)


def test_truncated_gz_file(files, tmp_path):
    files.idx_pair(tmp_path, 50, gz=True)
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-400])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz' is truncated"):
        load_idx(tmp_path)


def test_gz_with_short_content_is_truncated(files, tmp_path):
    _images, _labels = files.idx_pair(tmp_path, 5, gz=True)
    p = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(raw[:-2]))  # a valid gzip stream whose content is short
    with pytest.raises(DataError, match=r"labels-idx1-ubyte.gz' is truncated: .* the decompressed file has 11 bytes"):
        load_idx(tmp_path)


def test_multi_member_gz_is_read(files, tmp_path):
    images, _labels = files.idx_pair(tmp_path, 6, gz=True)
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    x, _ = take(load_idx(tmp_path))
    assert torch.equal(x, torch.from_numpy(images[:, None].astype(np.float32) / 255.0))


def test_label_beyond_classes(files, tmp_path):
    files.idx_pair(tmp_path, 3)
    files.write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 12], np.uint8))
    with pytest.raises(DataError, match="holds label 12 but only 10 classes were given"):
        load_idx(tmp_path, classes=[str(i) for i in range(10)])
    assert load_idx(tmp_path).info.classes[-1] == "12"


def test_limit_and_digest(files, tmp_path):
    files.idx_pair(tmp_path, 9)
    full, part = load_idx(tmp_path), load_idx(tmp_path, limit=4)
    assert len(part) == 4 and part.info.num_samples == 4
    assert full.info.digest == load_idx(tmp_path).info.digest
    assert part.info.digest != full.info.digest
    with pytest.raises(ConfigError, match="limit must be a positive integer"):
        load_idx(tmp_path, limit=0)


def test_real_fashion_mnist_first_1000(fashion_dir):
    d = fashion_mnist("test", limit=1000)
    assert d.info.name == "fashion-mnist-test" and d.info.classes == FASHION_MNIST_CLASSES
    assert d.info.sample_shape == (1, 28, 28) and len(d) == 1000
    x, y = take(d)
    assert x.shape == (1000, 1, 28, 28) and float(x.min()) == 0.0 and float(x.max()) == 1.0
    counts = torch.bincount(y, minlength=10).tolist()
    assert counts == [107, 105, 111, 93, 115, 87, 97, 95, 95, 95]
    assert y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    # Content digest of the decoded samples is fixed; the source digest is stable across opens.
    assert digest_arrays(x, y) == "04d4d89a94ad1069bb1ccbc337fcb81efaec6c3388576679d5a950cef75e144a"
    assert d.info.digest == fashion_mnist("test", limit=1000).info.digest
    assert d.info.digest != fashion_mnist("test").info.digest


def test_real_fashion_mnist_splits(fashion_dir):
    assert len(fashion_mnist("train")) == 60000
    test = load_idx(fashion_dir, "t10k")
    assert len(test) == 10000 and test.info.classes == FASHION_MNIST_CLASSES
    xb, yb = next(test.batches(64))
    assert xb.shape == (64, 1, 28, 28) and yb.shape == (64,)
