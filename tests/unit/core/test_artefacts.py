"""The artefact writer (:mod:`aisec.core.artefacts`): safe paths, loadable files, sha256 listing, resume
and overwrite, and the evidence store keeping (and checking) every file under ``artefacts/``."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from aisec.api import RUN_FOLDERS, kept_artefacts, prepare_out
from aisec.core.artefacts import (
    Artefact,
    amplified_difference,
    eps_name,
    heat_overlay,
    npz_bytes,
    png_bytes,
    side_by_side,
    to_rgb,
    write_artefacts,
)
from aisec.core.errors import ConfigError


@pytest.mark.parametrize("path", ["../x.npz", "/etc/x", ".hidden.png", "a//b.png", "a/../b.png", "", "a b/c.png"])
def test_an_artefact_path_stays_inside_the_folder(path):
    with pytest.raises(ValueError, match="relative path"):
        Artefact(path=path, data=b"", kind="k", description="d")


def test_npz_loads_without_pickle_and_refuses_objects():
    z = np.load(io.BytesIO(npz_bytes({"a": np.arange(3), "s": np.str_("x"), "f": 0.5})), allow_pickle=False)
    assert z["a"].tolist() == [0, 1, 2] and str(z["s"]) == "x" and float(z["f"]) == 0.5
    with pytest.raises(TypeError, match="Python objects"):
        npz_bytes({"o": np.array([{}], dtype=object)})


def test_png_round_trips_pixels_and_is_deterministic():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    data = png_bytes(rgb)
    assert data == png_bytes(rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), rgb)


def test_image_helpers():
    x = np.array([[[0.0, 0.5], [1.0, 2.0]]])  # (1, 2, 2), one value out of range
    assert to_rgb(x)[..., 0].tolist() == [[0, 128], [255, 255]]
    assert to_rgb(np.zeros((1, 2, 2)) + 5, (0.0, 10.0))[0, 0].tolist() == [128, 128, 128]
    d = amplified_difference(np.zeros((1, 1, 3)), np.array([[[0.0, 0.01, -0.02]]]))
    np.testing.assert_allclose(d, [[[0.5, 0.75, 0.0]]])
    grey = np.full((1, 3, 3), 100, dtype=np.uint8)
    over = heat_overlay(grey, np.array([[1.0, 0.0, -1.0]]))
    assert over[0, 1].tolist() == [100, 100, 100] and over[0, 0, 0] > 100 and over[0, 2, 2] > 100
    row = side_by_side([grey, grey], gap=2)
    assert row.shape == (32, 2 * 96 + 2, 3)  # 1x3 panels scaled up 32x: the longer side reaches 96 pixels
    assert eps_name(8 / 255) == "8_255" and eps_name(0.1) == "0.1" and eps_name(0.5) == "0.5"


def test_write_artefacts_lists_sha256_and_resume_keeps_only_intact_files(tmp_path):
    arts = [Artefact("adversarial/a.npz", b"npz", "adversarial-examples", "a"),
            Artefact("explanations/lime-0.png", b"png", "explanation-image", "b")]
    refs = write_artefacts(tmp_path, "robustness", arts)
    assert [r.path for r in refs] == ["artefacts/adversarial/a.npz", "artefacts/explanations/lime-0.png"]
    assert refs[0].sha256 == hashlib.sha256(b"npz").hexdigest() and refs[0].bytes == 3
    assert (tmp_path / "artefacts" / "explanations" / "lime-0.png").read_bytes() == b"png"
    assert not list(tmp_path.rglob("*.tmp"))
    (tmp_path / "result.json").write_text(json.dumps({"artefacts": [r.model_dump() for r in refs]}))
    assert kept_artefacts(tmp_path, {"robustness"}) == refs
    assert kept_artefacts(tmp_path, {"poisoning"}) == []
    (tmp_path / "artefacts" / "adversarial" / "a.npz").write_bytes(b"edited")
    assert kept_artefacts(tmp_path, {"robustness"}) == refs[1:]


def test_the_artefacts_folder_belongs_to_the_run(tmp_path):
    assert "artefacts" in RUN_FOLDERS
    write_artefacts(tmp_path, "robustness", [Artefact("a.npz", b"x", "k", "d")])
    with pytest.raises(ConfigError, match="already holds a run"):
        prepare_out(tmp_path, "refuse")
    prepare_out(tmp_path, "overwrite")
    assert not (tmp_path / "artefacts").exists()
