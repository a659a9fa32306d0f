"""CIFAR-10 python batches: real format on tiny files, and the allow-list unpickler."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from aisec.core.dataset import take
from aisec.core.errors import ConfigError, DataError
from aisec.data.cifar import CIFAR10_CLASSES, CifarDataset, safe_load


def _expected(parts, names):
    data = np.concatenate([parts[n][0] for n in names])
    labels = [v for n in names for v in parts[n][1]]
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
    return x, torch.tensor(labels, dtype=torch.long)


def test_train_and_test_splits(files, tmp_path):
    folder, parts = files.cifar_folder(tmp_path, sizes=(3, 2), test=4)
    train = CifarDataset(tmp_path, "train")  # the parent of cifar-10-batches-py also works
    assert train.folder == folder and len(train) == 5
    assert train.info.sample_shape == (3, 32, 32) and train.info.classes == CIFAR10_CLASSES
    x, y = take(train)
    ex, ey = _expected(parts, ["data_batch_1", "data_batch_2"])
    assert torch.equal(x, ex) and torch.equal(y, ey)
    # channel-major layout: the first 1024 bytes are the red plane
    assert x[0, 1, 0, 0] == parts["data_batch_1"][0][0, 1024] / 255.0
    test = CifarDataset(folder)  # default split: test
    assert len(test) == 4 and test.info.name == "cifar10-test"
    assert torch.equal(take(test)[1], torch.tensor(parts["test_batch"][1]))


def test_batches_span_files_and_limit(files, tmp_path):
    _, parts = files.cifar_folder(tmp_path, sizes=(3, 2, 4))
    d = CifarDataset(tmp_path, "train")
    sizes = [len(y) for _, y in d.batches(4)]
    assert sizes == [4, 4, 1]
    xs, ys = zip(*d.batches(2, limit=4), strict=True)
    ex, ey = _expected(parts, ["data_batch_1", "data_batch_2"])
    assert torch.equal(torch.cat(xs), ex[:4]) and torch.equal(torch.cat(ys), ey[:4])
    assert len(CifarDataset(tmp_path, "train", limit=6)) == 6


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickle_protocols(files, tmp_path, protocol):
    data = np.arange(2 * 3072, dtype=np.uint64).astype(np.uint8).reshape(2, 3072)
    files.cifar_batch(tmp_path / "test_batch", data, [3, 4], protocol=protocol)
    x, y = take(CifarDataset(tmp_path))
    assert torch.equal(x.reshape(2, -1), torch.from_numpy(data.astype(np.float32) / 255.0))
    assert y.tolist() == [3, 4]
    assert CifarDataset(tmp_path).info.classes == CIFAR10_CLASSES  # no batches.meta: the CIFAR-10 names


def test_python2_style_numpy_names(files, tmp_path):
    """The original files name numpy.core.multiarray._reconstruct (numpy 2 calls it numpy._core)."""
    data = np.full((1, 3072), 7, np.uint8)
    raw = pickle.dumps({b"data": data, b"labels": [1]}, protocol=2).replace(b"numpy._core", b"numpy.core")
    assert b"numpy.core.multiarray" in raw
    (tmp_path / "test_batch").write_bytes(raw)
    x, _ = take(CifarDataset(tmp_path))
    assert float(x.max()) == pytest.approx(7 / 255)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "test_batch").write_bytes(pickle.dumps(
        {b"data": _Exploit(marker), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match=rf"refusing to unpickle {os.system.__module__}\.system from .*test_batch: "
                                        "CIFAR batches hold only numpy arrays"):
        CifarDataset(tmp_path)
    assert not marker.exists()


def test_other_callables_are_refused(tmp_path):
    class Eval:
        def __reduce__(self):
            return (eval, ("1+1",))

    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps(Eval(), protocol=4))
    with pytest.raises(DataError, match=r"refusing to unpickle builtins\.eval from .*data_batch_1"):
        safe_load(p)


def test_meta_class_names(files, tmp_path):
    folder, _ = files.cifar_folder(tmp_path, sizes=(2,))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b", b"c"] + [b"x"] * 7}))
    assert CifarDataset(folder, "train").info.classes[:3] == ("a", "b", "c")


def test_label_beyond_classes(files, tmp_path):
    files.cifar_batch(tmp_path / "test_batch", np.zeros((2, 3072), np.uint8), [0, 5])
    with pytest.raises(DataError, match="hold label 5 but there are 3 classes"):
        CifarDataset(tmp_path, classes=["a", "b", "c"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 1]}, "is a CIFAR-100 batch"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, r"lacks 'data' or 'labels' \(keys: data\)"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]},
         r"'data' must be a uint8 array of shape \(N, 3072\), got uint8 \(2, 100\)"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "got float32"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "holds 2 images but 1 labels"),
        ([1, 2, 3], "holds a list, expected a CIFAR batch dict"),
    ],
)
def test_malformed_batches(tmp_path, content, message):
    (tmp_path / "test_batch").write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(DataError, match=message):
        CifarDataset(tmp_path)


def test_truncated_batch(files, tmp_path):
    p = files.cifar_batch(tmp_path / "test_batch", np.zeros((3, 3072), np.uint8), [0, 1, 2])
    p.write_bytes(p.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"test_batch' is not a readable CIFAR batch \(.*\); download it again"):
        CifarDataset(tmp_path)


def test_missing_batches_and_bad_split(files, tmp_path):
    with pytest.raises(DataError, match="holds no CIFAR-10 python batches"):
        CifarDataset(tmp_path)
    files.cifar_batch(tmp_path / "test_batch", np.zeros((1, 3072), np.uint8), [0])
    with pytest.raises(DataError, match=r"no CIFAR train batches in .*: expected data_batch_1 \.\. data_batch_5"):
        CifarDataset(tmp_path, "train")
    with pytest.raises(ConfigError, match="CIFAR split must be 'train' or 'test', got 'val'"):
        CifarDataset(tmp_path, "val")


def test_digest_stable_and_sensitive(files, tmp_path):
    folder, _ = files.cifar_folder(tmp_path)
    a = CifarDataset(folder).info.digest
    assert a == CifarDataset(folder).info.digest
    data = np.zeros((4, 3072), np.uint8)
    files.cifar_batch(folder / "test_batch", data, [0, 0, 0, 0])
    assert CifarDataset(folder).info.digest != a
