"""Crash safety and concurrent writers on SQLite (real processes, real file locks)."""

from __future__ import annotations

from aisec.testing import store_writer
from aisec.testing.store_checks import kill, reap, spawn_writer, wait_for


def test_killed_writer_leaves_a_consistent_store_and_rerun_does_not_duplicate(store, sqlite_url):
    proc = spawn_writer(sqlite_url, "crash-run", 40, delay=0.02)
    try:
        wait_for(proc, "wrote 5")
    finally:
        kill(proc)
    partial = store.count()
    assert 6 <= partial < 40
    report = store.verify()
    assert report.ok, report.text()
    # resume: the same writer again (in-process this time) adds only what is missing
    assert store_writer.main([sqlite_url, "crash-run", "40"]) == 0
    assert store.count() == 40
    assert len({e.evidence.id for e in store.query()}) == 40
    assert store.verify().ok


def test_two_concurrent_writers_lose_nothing(store, sqlite_url, tmp_path):
    go = tmp_path / "go"
    writers = [spawn_writer(sqlite_url, f"writer-{i}", 25, go=go) for i in range(2)]
    try:
        for w in writers:
            wait_for(w, "ready")
        go.touch()
    finally:
        results = [reap(w) for w in writers]
    assert [code for code, _ in results] == [0, 0], results
    rows = store.query()
    assert len(rows) == 50
    assert [r.link.seq for r in rows] == list(range(1, 51))
    assert {r.evidence.run_id for r in rows} == {"writer-0", "writer-1"}
    assert store.verify().ok
