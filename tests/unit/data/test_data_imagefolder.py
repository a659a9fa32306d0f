"""Image folder (labels.csv + images/): lazy decoding, label encodings, and each error path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aisec.core.dataset import take
from aisec.core.errors import ConfigError, DataError
from aisec.data.imagefolder import ImageFolder


def test_grayscale_names_sorted(files, tmp_path):
    root, pixels = files.image_folder(tmp_path, ["dog", "cat", "dog", "bird"], size=(5, 4))
    d = ImageFolder(root)
    assert d.info.classes == ("bird", "cat", "dog")
    assert d.info.sample_shape == (1, 5, 4) and len(d) == 4 and d.info.name == tmp_path.name
    x, y = take(d)
    assert y.tolist() == [2, 1, 2, 0]
    expected = torch.from_numpy(np.stack(pixels)[:, None].astype(np.float32) / 255.0)
    assert torch.equal(x, expected)


def test_rgb_and_forced_channels(files, tmp_path):
    root, pixels = files.image_folder(tmp_path, ["0", "1", "1"], mode="RGB", size=(3, 6))
    d = ImageFolder(root)
    assert d.info.sample_shape == (3, 3, 6) and d.info.classes == ("0", "1")
    x, _ = take(d)
    assert torch.equal(x[1], torch.from_numpy(pixels[1].transpose(2, 0, 1).astype(np.float32) / 255.0))
    gray = ImageFolder(root, channels=1)
    assert next(gray.batches(8))[0].shape == (3, 1, 3, 6)
    with pytest.raises(ConfigError, match=r"channels must be 1 .* or 3 .*, got 2"):
        ImageFolder(root, channels=2)


def test_mixed_modes_follow_first_image(files, tmp_path):
    root, _ = files.image_folder(tmp_path, ["0", "1"], size=(4, 4))
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), mode="RGBA").save(root / "images" / "1.png")
    x, _ = take(ImageFolder(root))
    assert x.shape == (2, 1, 4, 4)


def test_paths_relative_to_folder_and_int_labels(files, tmp_path):
    root, _ = files.image_folder(tmp_path, ["2", "0", "5"], prefix="images/", header=("path", "class"))
    d = ImageFolder(root)
    assert d.info.classes == tuple(str(i) for i in range(6))
    assert take(d)[1].tolist() == [2, 0, 5]


def test_classes_txt(files, tmp_path):
    root, _ = files.image_folder(tmp_path, ["cat", "1", "dog"])
    (root / "classes.txt").write_text("dog\ncat\n\nbird\n")
    d = ImageFolder(root)
    assert d.info.classes == ("dog", "cat", "bird")
    assert take(d)[1].tolist() == [1, 1, 0]
    (root / "classes.txt").write_text("dog\ncat\n")
    with pytest.raises(DataError, match=r"label 'cat'") as e:
        ImageFolder(root, classes=["a", "b"])
    assert "neither one of the 2 class names (a, b) nor an index in [0, 1]" in str(e.value)


def test_size_mismatch_names_file_and_sizes(files, tmp_path):
    root, _ = files.image_folder(tmp_path, ["0", "1", "0"], size=(5, 4))
    Image.fromarray(np.zeros((7, 6), np.uint8)).save(root / "images" / "2.png")
    d = ImageFolder(root)
    with pytest.raises(DataError, match=r"image '.*2\.png' is 7x6 \(HxW\) but '.*0\.png' is 5x4; all images must "
                                        r"have one size, or pass resize=\(H, W\)"):
        take(d)
    r = ImageFolder(root, resize=(8, 8))
    assert r.info.sample_shape == (1, 8, 8) and take(r)[0].shape == (3, 1, 8, 8)
    with pytest.raises(ConfigError, match=r"resize must be a pair \(height, width\), got 8"):
        ImageFolder(root, resize=8)


def test_missing_file_named(files, tmp_path):
    root, _ = files.image_folder(tmp_path, ["0", "1"])
    (root / "images" / "1.png").unlink()
    with pytest.raises(DataError, match=r"image '1\.png' listed in '.*labels\.csv' line 3 does not exist"):
        ImageFolder(root)


def test_corrupt_image_named(files, tmp_path):
    root, _ = files.image_folder(tmp_path, ["0", "1", "0"])
    (root / "images" / "2.png").write_bytes(b"not a png at all")
    d = ImageFolder(root)
    first = next(d.batches(2))
    assert first[0].shape[0] == 2
    with pytest.raises(DataError, match=r"cannot read image '.*2\.png': .*; replace or remove the file"):
        take(d)
    (root / "images" / "0.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"cannot read image '.*0\.png'"):
        ImageFolder(root)


def test_labels_csv_errors(files, tmp_path):
    with pytest.raises(DataError, match=r"has no labels\.csv; an image folder needs labels\.csv"):
        ImageFolder(tmp_path)
    root, _ = files.image_folder(tmp_path, ["0"], header=("a", "b", "c"))
    with pytest.raises(DataError, match=r"has no filename column: its header is a, b, c; name it one of filename"):
        ImageFolder(root)
    with pytest.raises(ConfigError, match="has no column 'nope'; its columns are: a, b, c"):
        ImageFolder(root, path_column="nope", label_column="b")
    (root / "labels.csv").write_text("filename,label\n0.png,\n")
    with pytest.raises(DataError, match="line 2: the label is empty"):
        ImageFolder(root)
    (root / "labels.csv").write_text("filename,label\n")
    with pytest.raises(DataError, match="lists no images"):
        ImageFolder(root)
    (root / "labels.csv").write_text("")
    with pytest.raises(DataError, match="is empty; write a header"):
        ImageFolder(root)


def test_limit_and_digest(files, tmp_path):
    root, _ = files.image_folder(tmp_path, ["0", "1", "0", "1"])
    d = ImageFolder(root)
    assert d.info.digest == ImageFolder(root).info.digest
    part = ImageFolder(root, limit=2)
    assert len(part) == 2 and part.info.digest != d.info.digest
    assert ImageFolder(root, channels=3).info.digest != d.info.digest
    Image.fromarray(np.full((5, 4), 9, np.uint8)).save(root / "images" / "3.png")
    assert ImageFolder(root).info.digest != d.info.digest
