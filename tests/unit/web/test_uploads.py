"""Zipped model folders sent to ``aisec serve``: unsafe zips refused with nothing left behind, and a zipped
Hugging Face text classifier with a JSON Lines upload run end to end in the worker (the text task of the UI)."""

from __future__ import annotations

import io
import json
import shutil
import stat
import time
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from aisec.core.errors import DataError
from aisec.web.app import create_app
from aisec.web.settings import ServeSettings
from aisec.web.unpack import unpack_model_zip

TOKEN = "u" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _zip(members: dict[str, bytes], *, link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return buf.getvalue()


@pytest.mark.parametrize(("members", "link", "message"), [
    ({"../evil.txt": b"x"}, None, "outside the folder"),
    ({"/abs/evil.txt": b"x"}, None, "outside the folder"),
    ({"m/config.json": b"{}"}, "m/weights", "link or device"),
    ({"m/big.bin": b"0" * 5000}, None, "inflates to more than"),
])
def test_unsafe_zips_are_refused_and_leave_nothing(tmp_path: Path, members: dict[str, bytes], link: str | None,
                                                   message: str) -> None:
    archive = tmp_path / "m.zip"
    archive.write_bytes(_zip(members, link=link))
    with pytest.raises(DataError, match=message):
        unpack_model_zip(archive, tmp_path / "out", max_bytes=1000)
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_a_zip_with_one_top_folder_is_that_folder(tmp_path: Path) -> None:
    archive = tmp_path / "m.zip"
    archive.write_bytes(_zip({"tiny/config.json": b"{}", "tiny/sub/vocab.txt": b"a\n"}))
    got = unpack_model_zip(archive, tmp_path / "out", max_bytes=1000)
    assert got == tmp_path / "out" / "tiny" and (got / "sub" / "vocab.txt").read_bytes() == b"a\n"
    archive.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="not a readable zip"):
        unpack_model_zip(archive, tmp_path / "out2", max_bytes=1000)


def _settings(tmp: Path, **kw: object) -> ServeSettings:
    return ServeSettings(token=TOKEN, store_url=f"sqlite:///{tmp / 'ev.db'}", work_dir=tmp / "work", **kw)


def test_upload_refusals_over_http(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, max_upload_bytes=2000))) as c:
        def up(kind: str, data: bytes) -> int:
            return c.post("/api/v1/uploads", data={"kind": kind}, files={"file": ("m.zip", data)},
                          headers=AUTH).status_code

        assert up("dataset", _zip({"a.csv": b"1,2\n"})) == 415
        assert up("model", _zip({"../../x": b"1"})) == 422
        assert up("model", _zip({"m/w.bin": b"0" * 100_000})) == 413  # small zip, large once inflated
        assert up("model", b"not a zip") == 422
        assert list((tmp_path / "work" / "uploads").glob("*")) == []  # nothing left of the refused ones


def test_zipped_hf_text_model_runs_in_the_worker(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from aisec.testing.text import cached_tiny_sentiment_bert, toy_sentiment

    folder = tmp_path / "tiny-bert"
    shutil.copytree(cached_tiny_sentiment_bert(), folder)
    archive = shutil.make_archive(str(tmp_path / "tiny-bert"), "zip", root_dir=tmp_path, base_dir="tiny-bert")
    texts, labels = toy_sentiment(8, seed=5)
    reviews = "".join(json.dumps({"text": t, "label": int(y)}) + "\n" for t, y in zip(texts, labels, strict=True))
    with TestClient(create_app(_settings(tmp_path))) as c:
        m = c.post("/api/v1/uploads", data={"kind": "model"},
                   files={"file": ("tiny-bert.zip", Path(archive).read_bytes())}, headers=AUTH)
        assert m.status_code == 200, m.text
        d = c.post("/api/v1/uploads", data={"kind": "dataset"},
                   files={"file": ("reviews.jsonl", reviews.encode())}, headers=AUTH).json()
        body = {"task": "text", "model": f"upload:{m.json()['upload_id']}", "dataset": f"upload:{d['upload_id']}",
                "seed": 0, "checks": {"robustness": {"attacks": ["hotflip"], "samples": 8}}}
        rid = c.post("/api/v1/runs", json=body, headers=AUTH).json()["run_id"]
        end = time.monotonic() + 240
        while (info := c.get(f"/api/v1/runs/{rid}", headers=AUTH).json())["status"] not in (
                "complete", "failed", "cancelled", "interrupted"):
            assert time.monotonic() < end, "the text run did not end"
            time.sleep(0.5)
    assert info["status"] == "complete", info
    rob = info["summary"]["checks"]["robustness"]["summary"]
    assert rob["clean_accuracy"] >= 0.75 and [c["attack"] for c in rob["curves"]] == ["hotflip"]
