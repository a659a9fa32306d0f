"""Conformance checks for evidence-store backends: tampering, round trips, crashes, concurrent writers.

The SQLite unit tests and the PostgreSQL integration test run the same functions, so a backend is
held to one standard. :func:`tamper` edits the database directly, as an attacker with write access
would, and returns what ``verify`` must report.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert, select, update

from aisec.store import EvidenceStore
from aisec.store.chain import (
    EXIT_EMPTY,
    EXIT_NO_HEAD,
    EXIT_TAMPERED,
    EXIT_UNTRUSTED,
    head_message,
    link_hash,
    meta_message,
)
from aisec.store.keys import Signer
from aisec.store.store import iso_utc
from aisec.store.tables import GENESIS, EvidenceRow, HeadRow, KeyRow, RunRow

TAMPERINGS = ("edit_body", "edit_column", "edit_resigned", "remove_middle", "remove_last", "insert", "reorder")

STORE_TAMPERINGS: dict[str, int] = {
    "edit_value": EXIT_TAMPERED,
    "edit_value_resigned": EXIT_TAMPERED,
    "edit_plan": EXIT_TAMPERED,
    "edit_plan_rehashed": EXIT_TAMPERED,
    "edit_status": EXIT_TAMPERED,
    "edit_run_model_sha256": EXIT_TAMPERED,
    "edit_source": EXIT_TAMPERED,
    "unsign_run": EXIT_TAMPERED,
    "delete_run": EXIT_TAMPERED,
    "delete_record": EXIT_TAMPERED,
    "delete_newest": EXIT_TAMPERED,
    "reorder": EXIT_TAMPERED,
    "resign_with_registered_key": EXIT_UNTRUSTED,
    "replace_key_row": EXIT_UNTRUSTED,
    "delete_head_row": EXIT_NO_HEAD,
    "empty_store": EXIT_EMPTY,
}
"""Tamperings of a store holding a real run (:func:`fill_store`) and the exit code ``verify`` must give."""

PLAN = {"model": "digits-cnn", "data": {"source": "digits", "options": {"split": "test"}},
        "checks": {"robustness": {"attacks": ["fgsm"], "eps": [0.1]}}, "seed": 0}


def fill_store(store: EvidenceStore, run_id: str = "run-tamper", n: int = 4) -> list[str]:
    """Store a run as ``aisec assess`` does (plan, ``n`` records, finished); returns the record ids."""
    from aisec.testing.evidence import fake_run

    records = fake_run(n, run_id=run_id)
    store.begin_run(run_id, PLAN)
    store.add_evidence(records)
    store.finish_run(run_id)
    return [r.id for r in records]


def resign_all(store: EvidenceStore, attacker: Signer, *, register: bool = True, drop_others: bool = False) -> None:
    """What an attacker with write access and their own key does: re-sign every record, run and the head."""
    with store.engine.begin() as conn:
        for row in conn.execute(select(EvidenceRow)).all():
            stored_at = iso_utc(row.stored_at) or ""
            conn.execute(update(EvidenceRow).where(EvidenceRow.seq == row.seq).values(
                key_id=attacker.key_id, signature=attacker.sign(row.hash.encode()), meta_key_id=attacker.key_id,
                meta_signature=attacker.sign(meta_message(row.hash, row.origin, row.source, stored_at))))
        for run in conn.execute(select(RunRow)).all():
            conn.execute(update(RunRow).where(RunRow.id == run.id).values(
                key_id=attacker.key_id, signature=attacker.sign(str(run.run_hash).encode())))
        h = conn.execute(select(HeadRow)).one()
        conn.execute(update(HeadRow).values(key_id=attacker.key_id, signature=attacker.sign(
            head_message(h.seq, h._mapping["count"], h.last_id, h.last_hash, h.runs_digest))))
        if drop_others:
            conn.execute(delete(KeyRow))
        if register:
            from datetime import UTC, datetime

            conn.execute(insert(KeyRow).values(key_id=attacker.key_id, algorithm="ed25519",
                                               public_key=attacker.public_pem, first_used=datetime.now(UTC)))


def tamper_store(store: EvidenceStore, how: str) -> int:
    """Apply one of :data:`STORE_TAMPERINGS` to a store made by :func:`fill_store`; return the expected exit code."""
    from aisec.store.chain import run_hash

    attacker = Signer(Ed25519PrivateKey.generate())
    if how in ("resign_with_registered_key", "replace_key_row"):
        resign_all(store, attacker, drop_others=how == "replace_key_row")
        return STORE_TAMPERINGS[how]
    if how == "delete_run" and store.dialect == "sqlite":
        import sqlite3

        # The attacker's own sqlite3 connection: foreign keys are off unless turned on, records stay.
        with sqlite3.connect(str(store.engine.url.database)) as raw:
            raw.execute("DELETE FROM aisec_runs")
        return STORE_TAMPERINGS[how]
    with store.engine.begin() as conn:
        rows = conn.execute(select(EvidenceRow).order_by(EvidenceRow.seq)).all()
        run = conn.execute(select(RunRow)).first()
        assert run is not None and len(rows) >= 4, "tamper_store() needs a store made by fill_store()"
        second = rows[1]
        if how == "edit_value":
            body = json.loads(second.body)
            body["value"] = body["value"] + 0.25
            conn.execute(update(EvidenceRow).where(EvidenceRow.seq == second.seq).values(
                body=_canonical(body), value=body["value"],
                body_sha256=hashlib.sha256(_canonical(body).encode()).hexdigest()))
        elif how == "edit_value_resigned":
            pass
        elif how in ("edit_plan", "edit_plan_rehashed"):
            plan = json.loads(run.plan)
            plan["model"] = {"path": "/tmp/evil.pkl", "trust_model_code": True}
            values: dict[str, object] = {"plan": json.dumps(plan, sort_keys=True)}
            if how == "edit_plan_rehashed":  # a careful attacker: the hash matches the new fields
                fields = {"id": run.id, "status": run.status, "plan": values["plan"],
                          "target_of_evaluation_id": run.target_of_evaluation_id, "model_sha256": run.model_sha256,
                          "dataset_digest": run.dataset_digest, "tool_version": run.tool_version,
                          "out_dir": run.out_dir, "error": run.error,
                          "created_at": iso_utc(run.created_at), "finished_at": iso_utc(run.finished_at),
                          "artifacts": []}
                values["run_hash"] = run_hash(fields)
            conn.execute(update(RunRow).where(RunRow.id == run.id).values(**values))
        elif how == "edit_status":
            conn.execute(update(RunRow).where(RunRow.id == run.id).values(status="complete", error=None,
                                                                          finished_at=None))
        elif how == "edit_run_model_sha256":
            conn.execute(update(RunRow).where(RunRow.id == run.id).values(model_sha256="f" * 64))
        elif how == "edit_source":
            conn.execute(update(EvidenceRow).where(EvidenceRow.seq == second.seq).values(source="run:measured"))
        elif how == "unsign_run":
            conn.execute(update(RunRow).where(RunRow.id == run.id).values(run_hash=None, key_id=None, signature=None))
        elif how == "delete_run":
            conn.execute(delete(EvidenceRow).where(EvidenceRow.run_id == run.id))
            conn.execute(delete(RunRow).where(RunRow.id == run.id))
        elif how == "delete_record":
            conn.execute(delete(EvidenceRow).where(EvidenceRow.seq == second.seq))
        elif how == "delete_newest":
            conn.execute(delete(EvidenceRow).where(EvidenceRow.seq == rows[-1].seq))
        elif how == "reorder":
            pass
        elif how == "delete_head_row":
            conn.execute(delete(HeadRow))
        elif how == "empty_store":
            for table in (EvidenceRow, RunRow, KeyRow):
                conn.execute(delete(table))
            conn.execute(update(HeadRow).values(seq=0, count=0, last_id="", last_hash=GENESIS, key_id="",
                                                signature="", runs_digest=None, updated_at=None))
        else:
            raise ValueError(f"unknown tampering '{how}'; choose from {sorted(STORE_TAMPERINGS)}")
    if how in ("reorder", "edit_value_resigned"):
        tamper(store, "reorder" if how == "reorder" else "edit_resigned")
    return STORE_TAMPERINGS[how]


def _canonical(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def tamper(store: EvidenceStore, how: str) -> tuple[str, set[str]]:
    """Tamper with a store holding at least 4 records; return (issue kind, ids it may name)."""
    attacker = Signer(Ed25519PrivateKey.generate())
    with store.engine.begin() as conn:
        rows = conn.execute(select(EvidenceRow).order_by(EvidenceRow.seq)).all()
        if len(rows) < 4:
            raise ValueError("tamper() needs a store with at least 4 records")
        second, third, last = rows[1], rows[2], rows[-1]
        if how == "edit_body":
            body = json.loads(second.body)
            body["value"] = body["value"] + 0.25
            conn.execute(update(EvidenceRow).where(EvidenceRow.seq == second.seq).values(body=_canonical(body)))
            return "edited", {second.id}
        if how == "edit_column":
            conn.execute(update(EvidenceRow).where(EvidenceRow.seq == second.seq).values(metric="robustness.other"))
            return "edited", {second.id}
        if how == "edit_resigned":  # a careful attacker: consistent body digest, hash and value, new signature
            body = json.loads(second.body)
            body["value"] = body["value"] + 0.25
            text = _canonical(body)
            h = link_hash(second.prev_hash, second.prev_id, text.encode())
            conn.execute(update(EvidenceRow).where(EvidenceRow.seq == second.seq).values(
                body=text, body_sha256=hashlib.sha256(text.encode()).hexdigest(), value=body["value"], hash=h,
                signature=attacker.sign(h.encode())))
            return "edited", {second.id}
        if how == "remove_middle":
            conn.execute(delete(EvidenceRow).where(EvidenceRow.seq == second.seq))
            return "removed", {second.id}
        if how == "remove_last":
            conn.execute(delete(EvidenceRow).where(EvidenceRow.seq == last.seq))
            return "removed", {last.id}
        if how == "insert":
            body = json.loads(third.body)
            body["id"] = str(uuid.uuid4())
            text = _canonical(body)
            h = link_hash(second.hash, second.id, text.encode())
            values = {c: getattr(third, c) for c in EvidenceRow.__table__.columns.keys()}  # noqa: SIM118
            values.update(seq=last.seq + 100, id=body["id"], body=text, prev_hash=second.hash, prev_id=second.id,
                          body_sha256=hashlib.sha256(text.encode()).hexdigest(), hash=h,
                          key_id=attacker.key_id, signature=attacker.sign(h.encode()))
            conn.execute(insert(EvidenceRow).values(**values))
            return "inserted", {body["id"]}
        if how == "reorder":
            tmp = last.seq + 1000
            conn.execute(update(EvidenceRow).where(EvidenceRow.seq == second.seq).values(seq=tmp))
            conn.execute(update(EvidenceRow).where(EvidenceRow.seq == third.seq).values(seq=second.seq))
            conn.execute(update(EvidenceRow).where(EvidenceRow.seq == tmp).values(seq=third.seq))
            return "reordered", {second.id, third.id}
    raise ValueError(f"unknown tampering '{how}'; choose from {TAMPERINGS}")


def spawn_writer(url: str, run_id: str, n: int, *, go: Path | None = None, delay: float = 0.0,
                 env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start :mod:`aisec.testing.store_writer` as a subprocess (stdout piped, line-buffered text)."""
    cmd = [sys.executable, "-m", "aisec.testing.store_writer", url, run_id, str(n)]
    if go is not None:
        cmd += ["--go", str(go)]
    if delay:
        cmd += ["--delay", str(delay)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                            env={**os.environ, **(env or {})})


def wait_for(proc: subprocess.Popen[str], line: str, timeout: float = 60.0) -> None:
    """Read ``proc``'s stdout until a line equal to ``line`` (raises with its stderr if it exits first)."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        got = proc.stdout.readline()
        if got.strip() == line:
            return
        if not got and proc.poll() is not None:
            raise RuntimeError(f"writer exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    raise TimeoutError(f"writer did not print {line!r} within {timeout}s")


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the writer (no cleanup of any kind runs in it) and close our ends of its pipes."""
    proc.send_signal(signal.SIGKILL)
    reap(proc)


def reap(proc: subprocess.Popen[str], timeout: float = 120.0) -> tuple[int, str]:
    """Wait for the writer; return its exit code and stderr, closing the pipes."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err or ""
