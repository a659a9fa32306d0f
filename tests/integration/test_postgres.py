"""The evidence store on a real PostgreSQL server: round trip, tampering, crash, concurrent writers.

The test starts its own throwaway cluster (``initdb`` + ``pg_ctl``) on a free loopback port, as the
``postgres`` user when run as root (PostgreSQL refuses to run as root). It skips only when the
PostgreSQL server binaries are not installed (Debian: ``apt-get install postgresql``).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from aisec.store import open_store
from aisec.testing.evidence import fake_run
from aisec.testing.store_checks import (
    STORE_TAMPERINGS,
    TAMPERINGS,
    fill_store,
    kill,
    reap,
    spawn_writer,
    tamper,
    tamper_store,
    wait_for,
)


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name.split(".")[0]))
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_server():
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed; apt-get install postgresql")
    as_root = os.geteuid() == 0
    if as_root:
        runuser = shutil.which("runuser")
        prefix = [runuser, "-u", "postgres", "--"] if runuser else None
        if prefix is None:
            su = shutil.which("su")
            assert su, "running as root needs runuser or su to start PostgreSQL as 'postgres'"
    base = Path(tempfile.mkdtemp(prefix="aisec-pg-", dir="/tmp"))
    if as_root:
        shutil.chown(base, user="postgres")

    def run(*args: str) -> None:
        cmd = [str(a) for a in args]
        if as_root:
            cmd = [*prefix, *cmd] if prefix else ["su", "postgres", "-c", " ".join(cmd)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    port = _free_port()
    data = base / "data"
    run(bindir / "initdb", "-D", data, "-U", "aisec", "--auth=trust", "-E", "UTF8", "--no-sync")
    run(bindir / "pg_ctl", "-D", data, "-l", base / "log", "-w", "-t", "60", "-o",
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", "start")
    try:
        yield f"postgresql://aisec@127.0.0.1:{port}"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


_counter = itertools.count()


@pytest.fixture
def pg_url(pg_server, tmp_path, monkeypatch):
    """A fresh schema per test (cheaper than a database), selected through the connection's search_path."""
    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "keys"))
    import psycopg

    name = f"aisec_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return f"{pg_server}/postgres?options=-csearch_path%3D{name}"


def test_round_trip_queries_and_verify(pg_url, tmp_path):
    store = open_store(pg_url)
    assert store.dialect == "postgresql"
    records = fake_run(4) + fake_run(2, model_sha256="c" * 64)
    assert len(store.add_evidence(records).added) == 6
    assert store.add_evidence(records).added == []
    assert [e.evidence.canonical_json() for e in store.query()] == [r.canonical_json() for r in records]
    assert len(store.query(model="cccc")) == 2
    assert len(store.query(metric="robustness.*")) == 6
    store.export_bundle(tmp_path / "b.jsonl")
    store.close()
    again = open_store(pg_url)  # migrations already at head: opens cleanly
    assert again.verify().ok
    lite = open_store(f"sqlite:///{tmp_path / 'copy.db'}")
    lite.import_path(tmp_path / "b.jsonl")
    assert [e.evidence.sha256() for e in lite.query()] == [r.sha256() for r in records]
    again.close()
    lite.close()


@pytest.mark.parametrize("how", TAMPERINGS)
def test_tampering_is_named(pg_url, how):
    store = open_store(pg_url)
    store.add_evidence(fake_run(3))
    store.add_evidence(fake_run(3))
    assert store.verify().ok
    kind, ids = tamper(store, how)
    report = store.verify()
    assert not report.ok
    assert {i.evidence_id for i in report.issues if i.kind == kind} & ids, report.text()
    store.close()


@pytest.mark.parametrize("how", sorted(STORE_TAMPERINGS))
def test_tamper_suite_exit_codes(pg_url, how):
    store = open_store(pg_url)
    fill_store(store)
    assert store.verify().ok
    want = tamper_store(store, how)
    report = store.verify()
    assert not report.ok and report.exit_code == want, report.text()
    store.close()


def test_killed_writer_then_resume(pg_url):
    store = open_store(pg_url)
    proc = spawn_writer(pg_url, "crash-pg", 40, delay=0.02)
    try:
        wait_for(proc, "wrote 5")
    finally:
        kill(proc)
    assert 6 <= store.count() < 40
    assert store.verify().ok
    from aisec.testing import store_writer

    assert store_writer.main([pg_url, "crash-pg", "40"]) == 0
    assert store.count() == 40 and store.verify().ok
    store.close()


def test_two_concurrent_writers_on_a_fresh_database_lose_nothing(pg_url, tmp_path):
    # Both writers open the empty database at once (racing on the schema migration), then write at once.
    go = tmp_path / "go"
    writers = [spawn_writer(pg_url, f"pg-writer-{i}", 25, go=go) for i in range(2)]
    try:
        for w in writers:
            wait_for(w, "ready")
        go.touch()
    finally:
        results = [reap(w) for w in writers]
    assert [c for c, _ in results] == [0, 0], results
    store = open_store(pg_url)
    rows = store.query()
    assert len(rows) == 50 and [r.link.seq for r in rows] == list(range(1, 51))
    assert {r.evidence.run_id for r in rows} == {"pg-writer-0", "pg-writer-1"}
    assert store.verify().ok
    store.close()
