from __future__ import annotations

import pytest


@pytest.fixture
def key_dir(tmp_path, monkeypatch):
    d = tmp_path / "keys"
    monkeypatch.setenv("AISEC_KEY_DIR", str(d))
    monkeypatch.setenv("AISEC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AISEC_STORE_URL", raising=False)
    return d


@pytest.fixture
def sqlite_url(tmp_path, key_dir):
    return f"sqlite:///{tmp_path / 'store' / 'evidence.db'}"


@pytest.fixture
def store(sqlite_url):
    from aisec.store import open_store

    s = open_store(sqlite_url)
    yield s
    s.close()
