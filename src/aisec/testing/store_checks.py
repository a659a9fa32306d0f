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
from aisec.store.chain import link_hash
from aisec.store.keys import Signer
from aisec.store.tables import EvidenceRow

TAMPERINGS = ("edit_body", "edit_column", "edit_resigned", "remove_middle", "remove_last", "insert", "reorder")


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
