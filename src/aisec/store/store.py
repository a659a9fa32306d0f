"""The evidence store: runs, hash-chained signed evidence records and artifacts in SQL.

SQLite by default (a file in the user's data folder), PostgreSQL by URL. Writes are idempotent
(keyed on the evidence id: re-importing after a crash adds only what is missing) and serialised on
the chain head (SQLite: ``BEGIN IMMEDIATE`` in WAL mode plus retries; PostgreSQL: ``SELECT ... FOR
UPDATE`` on the head row), so concurrent writers lose nothing and the chain stays linear.

>>> store = open_store("sqlite:///evidence.db")
>>> store.save_run(run)                       # after aisec.assess(...)
>>> store.query(metric="robustness.*", model="3f2a")
>>> store.verify().ok

What is signed: each record (its chain link), each record's metadata (source, storage time, the
link of its original signer when imported), each run's fields (plan, status, digests, times, its
artifacts' sha256) and the head, which also covers the set of runs. Writes refuse to sign over
runs that were changed outside aisec (:class:`StoreTampered`). ``verify`` trusts only the trust
store (:mod:`aisec.store.keys`), never keys merely found in the store.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from aisec.core.errors import StoreError
from aisec.core.evidence import Evidence, file_sha256
from aisec.store import keys as keymod
from aisec.store.chain import (
    BUNDLE_PREFIX,
    ChainEntry,
    Head,
    Issue,
    KeyRing,
    Link,
    VerifyReport,
    canonical,
    link_hash,
    meta_message,
    run_hash,
    runs_digest,
    verify_chain,
)
from aisec.store.errors import (
    BundleError,
    EvidenceConflict,
    EvidenceNotFound,
    NotAStore,
    StoreMissing,
    StoreTampered,
    StoreUnavailable,
    UntrustedSigner,
)
from aisec.store.paths import default_store_url
from aisec.store.tables import GENESIS, VERSION_TABLE, ArtifactRow, EvidenceRow, HeadRow, KeyRow, RunRow

if TYPE_CHECKING:
    from aisec.core.plan import Plan
    from aisec.core.run import Run

T = TypeVar("T")
BUNDLE_FORMAT = "aisec-evidence-bundle/2"
BUNDLE_FORMAT_V1 = "aisec-evidence-bundle/1"
INLINE_LIMIT = 16 * 1024 * 1024
_PG_MIGRATION_LOCK = 0x61697365  # "aise": one advisory lock id for schema upgrades
_CHUNK = 500


class StoredEvidence(BaseModel):
    """An evidence record with where it sits in the store."""

    model_config = ConfigDict(frozen=True)

    evidence: Evidence
    link: Link
    source: str
    stored_at: datetime
    origin: Link | None = None
    """The link its original signer made, for a record imported from a bundle (its link is then local)."""

    @property
    def signed_by(self) -> str:
        """The key id of whoever signed the record first (the original signer, not the importer)."""
        return (self.origin or self.link).key_id


class RunInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    status: str
    plan: dict[str, Any] | None
    target_of_evaluation_id: str | None
    model_sha256: str | None
    dataset_digest: str | None
    tool_version: str | None
    out_dir: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    evidence_count: int = 0


class ArtifactInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    path: str
    sha256: str
    size: int
    inline: bool
    stored_path: str | None


class AddResult(BaseModel):
    """Ids written by a call, and ids already present (skipped, identical content)."""

    added: list[str] = []
    skipped: list[str] = []
    artifacts_added: int = 0
    signers: dict[str, int] = {}
    """Added records per original signer's key id."""
    runs: dict[str, list[int]] = {}
    """Per run id touched: ``[records added, records already present]``."""

    def __iadd__(self, other: AddResult) -> AddResult:
        for run_id, (a, k) in other.runs.items():
            prev = self.runs.get(run_id, [0, 0])
            self.runs = {**self.runs, run_id: [prev[0] + a, prev[1] + k]}
        self.added += other.added
        self.skipped += other.skipped
        self.artifacts_added += other.artifacts_added
        self.signers = {k: self.signers.get(k, 0) + other.signers.get(k, 0)
                        for k in {*self.signers, *other.signers}}
        return self


def normalize_url(url: str | None) -> str:
    """A store URL SQLAlchemy understands: plain paths become SQLite files, ``postgresql://`` uses psycopg 3."""
    url = url or default_store_url()
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def open_store(url: str | None = None, *, key_dir: str | Path | None = None, create: bool = True) -> EvidenceStore:
    """Open (creating and migrating if needed) the store at ``url`` (default: ``$AISEC_STORE_URL`` or SQLite).

    With ``create=False`` (read-only commands) nothing is created: a missing SQLite file raises
    :class:`StoreMissing`, a file or database without an aisec store :class:`NotAStore`.
    """
    return EvidenceStore(url, key_dir=key_dir, create=create)


class EvidenceStore:
    """Runs, evidence and artifacts in one SQL database, with a signed hash chain over the evidence."""

    def __init__(self, url: str | None = None, *, key_dir: str | Path | None = None, retries: int = 12,
                 create: bool = True) -> None:
        self.url = normalize_url(url)
        self.key_dir = Path(key_dir) if key_dir is not None else None
        self.retries = retries
        self._signer: keymod.Signer | None = None
        if not create:
            _check_sqlite_file(self.url)
        self._engine = _engine(self.url, create=create)
        self._check_reachable()
        self._migrate(create=create)

    # -- setup ---------------------------------------------------------------------------------

    @property
    def display_url(self) -> str:
        """The URL with any password hidden (safe for logs and errors)."""
        return _masked(self.url)

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def signer(self) -> keymod.Signer:
        if self._signer is None:
            self._signer = keymod.Signer.load_or_create(self.key_dir)
        return self._signer

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> EvidenceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EvidenceStore({self.display_url!r})"

    def _check_reachable(self) -> None:
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            self._engine.dispose()
            if "not a database" in _reason(exc):
                raise NotAStore(f"{self.display_url} is not an evidence store: {_reason(exc)}. Expected a SQLite "
                                "database written by aisec; check the path or restore the file from a backup.") from exc
            raise StoreUnavailable(
                f"cannot reach the evidence store at {self.display_url}: {_reason(exc)}. Check the URL and that the "
                "server is running, or unset AISEC_STORE_URL to use the local SQLite store."
            ) from exc

    def _migrate(self, *, create: bool = True) -> None:
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", "aisec.store:migrations")
        head = ScriptDirectory.from_config(cfg).get_current_head()
        try:
            with self._engine.connect() as conn:
                current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
            if current == head:
                return
            if current is None and not create:
                self._engine.dispose()
                raise NotAStore(
                    f"{self.display_url} holds no aisec evidence store (no {VERSION_TABLE} table; a 0-byte or foreign "
                    "database). Expected a store written by aisec; check the path, or create one by storing a run.")

            def upgrade() -> None:
                with self._engine.begin() as conn:
                    if self.dialect == "postgresql":
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")

            self._retry(upgrade)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"cannot prepare the evidence store at {self.display_url}: {_reason(exc)}") from exc

    def _retry(self, fn: Callable[[], T]) -> T:
        delay = 0.02
        for attempt in range(self.retries):
            try:
                return fn()
            except OperationalError as exc:
                if attempt == self.retries - 1 or not _transient(exc):
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, fn: Callable[[Session], T]) -> T:
        def attempt() -> T:
            with Session(self._engine, expire_on_commit=False) as s, s.begin():
                return fn(s)

        try:
            return self._retry(attempt)
        except DBAPIError as exc:
            raise StoreError(f"writing to the evidence store at {self.display_url} failed: {_reason(exc)}") from exc

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with Session(self._engine) as s, s.begin():
                yield s
        except DBAPIError as exc:
            raise StoreError(f"reading the evidence store at {self.display_url} failed: {_reason(exc)}") from exc

    # -- writing -------------------------------------------------------------------------------

    def begin_run(self, run_id: str, plan: Plan | dict[str, Any] | None = None, *, out_dir: str | Path | None = None,
                  status: str = "running") -> None:
        """Record that a run started (idempotent: an existing run keeps its row; a missing plan is filled in)."""
        plan_json = _plan_json(plan)
        plan_dict = json.loads(plan_json) if plan_json else None
        signer = self.signer

        def fn(s: Session) -> None:
            head = self._lock(s)
            row = s.get(RunRow, run_id)
            if row is None:
                s.add(RunRow(id=run_id, status=status, plan=plan_json, created_at=_now(),
                             out_dir=str(out_dir) if out_dir else None,
                             target_of_evaluation_id=(plan_dict or {}).get("target_of_evaluation_id")))
            else:
                _check_run_row(s, row)
                row.plan = row.plan or plan_json
                row.out_dir = row.out_dir or (str(out_dir) if out_dir else None)
            self._seal(s, head, signer, {run_id})

        self._write(fn)

    def finish_run(self, run_id: str, *, status: str = "complete", error: str | None = None) -> None:
        signer = self.signer

        def fn(s: Session) -> None:
            head = self._lock(s)
            row = s.get(RunRow, run_id)
            if row is None:
                raise EvidenceNotFound(f"no run {run_id} in {self.display_url}")
            _check_run_row(s, row)
            row.status = status
            row.error = error
            row.finished_at = _now()
            self._seal(s, head, signer, {run_id})

        self._write(fn)

    def _lock(self, s: Session) -> HeadRow:
        """Lock the head row and refuse to go on if the runs no longer match what the head signed."""
        head = s.execute(select(HeadRow).where(HeadRow.id == 1).with_for_update()).scalar_one_or_none()
        if head is None:
            raise StoreTampered(f"the chain head row of {self.display_url} is missing; expected one row in "
                                "aisec_chain_head. Run `aisec evidence verify` and restore the store from a backup.")
        if head.runs_digest is not None:
            rows = s.execute(select(RunRow.id, RunRow.run_hash)).tuples().all()
            unsigned = [rid for rid, h in rows if h is None]
            if unsigned or runs_digest([(rid, h) for rid, h in rows if h is not None]) != head.runs_digest:
                raise StoreTampered(
                    f"the runs in {self.display_url} differ from what the signed head covers (runs added, deleted or "
                    f"unsigned{': ' + ', '.join(unsigned[:3]) if unsigned else ''}); refusing to sign over that. "
                    "Run `aisec evidence verify` to see what changed, and restore the store from a backup.")
        return head

    def _seal(self, s: Session, head: HeadRow, signer: keymod.Signer, runs: set[str]) -> None:
        """Sign the runs changed in this transaction and the head (with the new runs digest).

        A legacy store (head without ``runs_digest``) is upgraded here: its unsigned runs and record
        metadata are signed as they stand, once.
        """
        s.flush()
        if s.get(KeyRow, signer.key_id) is None:
            s.add(KeyRow(key_id=signer.key_id, algorithm="ed25519", public_key=signer.public_pem, first_used=_now()))
        if head.runs_digest is None:
            runs = runs | set(s.execute(select(RunRow.id).where(RunRow.signature.is_(None))).scalars())
            for ev_row in s.execute(select(EvidenceRow).where(EvidenceRow.meta_signature.is_(None))).scalars():
                _sign_meta(ev_row, signer)
        for run_id in sorted(runs):
            row = s.get(RunRow, run_id)
            if row is None:
                continue
            row.run_hash = run_hash(_run_fields(row, _artifact_digests(s, run_id)))
            row.key_id = signer.key_id
            row.signature = signer.sign(row.run_hash.encode())
        s.flush()
        hashes = s.execute(select(RunRow.id, RunRow.run_hash)).tuples().all()
        head.runs_digest = runs_digest([(rid, h) for rid, h in hashes if h is not None])
        head.key_id = signer.key_id
        head.signature = signer.sign(_head(head).message())
        head.updated_at = _now()

    def add_evidence(self, records: Iterable[Evidence], *, source: str = "run",
                     origins: Mapping[str, Link] | None = None) -> AddResult:
        """Append records to the chain in one transaction; records already stored (same id) are skipped.

        Args:
            origins: per evidence id, the link its original signer made (an import from a bundle):
                kept beside the local link, so the record stays attributed to its signer.

        Raises:
            EvidenceConflict: a record has the id of a stored record but different content.
            StoreTampered: the store's runs were changed outside aisec.
        """
        records = list(records)
        if not records:
            return AddResult()
        signer = self.signer
        origins = dict(origins or {})

        def fn(s: Session) -> AddResult:
            head = self._lock(s)
            existing: dict[str, str] = {}
            ids = [r.id for r in records]
            for i in range(0, len(ids), _CHUNK):
                existing.update(s.execute(select(EvidenceRow.id, EvidenceRow.body_sha256)
                                          .where(EvidenceRow.id.in_(ids[i:i + _CHUNK]))).tuples().all())
            touched = self._ensure_runs(s, records)
            out = AddResult()
            seq, count, last_id, last_hash = head.seq, head.count, head.last_id, head.last_hash
            now = _now()
            for r in records:
                body = r.canonical_json()
                digest = hashlib.sha256(body).hexdigest()
                if r.id in existing:
                    if existing[r.id] != digest:
                        raise EvidenceConflict(
                            f"evidence {r.id} is already stored with different content; refusing to overwrite it "
                            "(evidence records are immutable: give the new measurement a new id)")
                    out.skipped.append(r.id)
                    continue
                h = link_hash(last_hash, last_id, body)
                seq += 1
                origin = origins.get(r.id)
                row = EvidenceRow(
                    seq=seq, id=r.id, run_id=r.run_id, check_name=r.check, metric=r.metric,
                    model_sha256=r.resource.model_sha256, dataset_digest=r.resource.dataset_digest,
                    target_of_evaluation_id=r.target_of_evaluation_id, timestamp=r.timestamp,
                    value=r.value if math.isfinite(r.value) else None, body=body.decode(), body_sha256=digest,
                    prev_hash=last_hash, prev_id=last_id, hash=h, key_id=signer.key_id,
                    signature=signer.sign(h.encode()), source=source[:256], stored_at=now,
                    origin=canonical(origin.model_dump()).decode() if origin is not None else None,
                )
                _sign_meta(row, signer)
                s.add(row)
                existing[r.id] = digest
                count += 1
                last_id, last_hash = r.id, h
                out.added.append(r.id)
                kid = origin.key_id if origin is not None else signer.key_id
                out.signers[kid] = out.signers.get(kid, 0) + 1
            if out.added:
                head.seq, head.count, head.last_id, head.last_hash = seq, count, last_id, last_hash
            if out.added or touched:
                self._seal(s, head, signer, touched)
            return out

        return self._write(fn)

    def _ensure_runs(self, s: Session, records: Sequence[Evidence]) -> set[str]:
        """Create or complete the runs of ``records``; returns the ids of the runs changed."""
        first: dict[str, Evidence] = {}
        for r in records:
            first.setdefault(r.run_id, r)
        present = set(s.execute(select(RunRow.id).where(RunRow.id.in_(list(first)))).scalars())
        touched: set[str] = set()
        for run_id, r in first.items():
            if run_id not in present:
                s.add(RunRow(id=run_id, status="imported", plan=None, created_at=r.timestamp,
                             target_of_evaluation_id=r.target_of_evaluation_id))
                touched.add(run_id)
        s.flush()
        for run_id, r in first.items():
            row = s.get(RunRow, run_id)
            if row is not None and row.model_sha256 is None:
                if run_id not in touched:
                    _check_run_row(s, row)
                row.model_sha256 = r.resource.model_sha256
                row.dataset_digest = r.resource.dataset_digest
                row.tool_version = r.tool_version
                row.target_of_evaluation_id = r.target_of_evaluation_id
                touched.add(run_id)
        return touched

    def add_artifact(self, run_id: str, path: str, data: bytes | Path, *, inline_limit: int = INLINE_LIMIT) -> bool:
        """Store a run's file (inline up to ``inline_limit`` bytes, else its path). True if added, False if present."""
        if isinstance(data, Path):
            size = data.stat().st_size
            digest = file_sha256(data)
            content = data.read_bytes() if size <= inline_limit else None
            stored = None if content is not None else str(data.resolve())
        else:
            size, digest, content, stored = len(data), hashlib.sha256(data).hexdigest(), data, None
            if size > inline_limit:
                raise StoreError(f"artifact {path} is {size} bytes; pass a file path to store it by reference")
        signer = self.signer

        def fn(s: Session) -> bool:
            row = s.execute(select(ArtifactRow).where(ArtifactRow.run_id == run_id, ArtifactRow.path == path)
                            ).scalar_one_or_none()
            if row is not None:
                if row.sha256 != digest:
                    raise EvidenceConflict(f"artifact {path} of run {run_id} is already stored with sha256 "
                                           f"{row.sha256[:12]}, not {digest[:12]}")
                return False
            head = self._lock(s)
            run = s.get(RunRow, run_id)
            if run is None:
                s.add(RunRow(id=run_id, status="imported", created_at=_now()))
                s.flush()
            else:
                _check_run_row(s, run)
            s.add(ArtifactRow(run_id=run_id, path=path, sha256=digest, size=size, content=content,
                              stored_path=stored, created_at=_now()))
            self._seal(s, head, signer, {run_id})
            return True

        return self._write(fn)

    def save_run(self, run: Run, *, source: str = "run") -> AddResult:
        """Store a finished :class:`aisec.core.run.Run`: its plan, evidence and per-sample files (idempotent)."""
        self.begin_run(run.run_id, run.plan, out_dir=run.out)
        out = self.add_evidence(run.evidence, source=source)
        if run.out is not None:
            out.artifacts_added += self._add_run_files(run.run_id, Path(run.out), run.evidence)
        self.finish_run(run.run_id, status="failed" if run.errors else "complete",
                        error="\n".join(run.errors) or None)
        return out

    def recorder(self, plan: Plan | dict[str, Any] | None = None, *, out_dir: str | Path | None = None
                 ) -> Callable[[list[Evidence]], None]:
        """A callback that stores each check's evidence as soon as it exists (for ``assess(on_evidence=...)``).

        A run that crashes keeps what was stored and stays ``running``; ``aisec evidence import OUT_DIR``
        or :meth:`save_run` later completes it without duplicating anything.
        """
        started: set[str] = set()

        def record(records: list[Evidence]) -> None:
            for run_id in {r.run_id for r in records} - started:
                self.begin_run(run_id, plan, out_dir=out_dir)
                started.add(run_id)
            self.add_evidence(records, source="run")

        return record

    def _add_run_files(self, run_id: str, out_dir: Path, records: Sequence[Evidence]) -> int:
        paths = {r.raw.path for r in records if r.raw is not None}
        samples = out_dir / "samples"
        if samples.is_dir():
            paths |= {str(p.relative_to(out_dir)) for p in sorted(samples.iterdir()) if p.is_file()
                      and not p.name.endswith(".tmp")}
        artefacts = out_dir / "artefacts"  # aisec.core.artefacts.ARTEFACTS: the checks' files, in sub-folders
        if artefacts.is_dir():
            paths |= {p.relative_to(out_dir).as_posix() for p in sorted(artefacts.rglob("*")) if p.is_file()
                      and not p.is_symlink() and not p.name.endswith(".tmp")}
        n = 0
        for rel in sorted(paths):
            f = out_dir / rel
            if f.is_file():
                n += self.add_artifact(run_id, rel, f)
        return n

    # -- reading -------------------------------------------------------------------------------

    def get(self, evidence_id: str) -> Evidence:
        """The record with this id (or a unique prefix of at least 4 characters)."""
        return self.get_entry(evidence_id).evidence

    def get_entry(self, evidence_id: str) -> StoredEvidence:
        with self._read() as s:
            return _stored(self._find_row(s, evidence_id))

    def _find_row(self, s: Session, evidence_id: str) -> EvidenceRow:
        row = s.execute(select(EvidenceRow).where(EvidenceRow.id == evidence_id)).scalar_one_or_none()
        if row is None and len(evidence_id) >= 4:
            rows = s.execute(select(EvidenceRow).where(EvidenceRow.id.startswith(evidence_id, autoescape=True))
                             .limit(2)).scalars().all()
            if len(rows) > 1:
                raise EvidenceNotFound(f"evidence id prefix '{evidence_id}' is ambiguous; give more characters")
            row = rows[0] if rows else None
        if row is None:
            raise EvidenceNotFound(f"no evidence '{evidence_id}' in {self.display_url} "
                                   "(list ids with `aisec evidence list`)")
        return row

    def query(
        self,
        *,
        model: str | None = None,
        metric: str | None = None,
        check: str | None = None,
        run_id: str | None = None,
        target_of_evaluation_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[StoredEvidence]:
        """Records in chain order matching every filter given.

        ``model`` is a model sha256 or its prefix; ``metric`` may hold ``*`` wildcards
        (``robustness.*``); ``since``/``until`` bound the measurement time (inclusive).
        """
        q = select(EvidenceRow).order_by(EvidenceRow.seq)
        if model:
            q = q.where(EvidenceRow.model_sha256.startswith(model, autoescape=True))
        if metric:
            if "*" in metric:
                pattern = metric.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
                q = q.where(EvidenceRow.metric.like(pattern, escape="\\"))
            else:
                q = q.where(EvidenceRow.metric == metric)
        if check:
            q = q.where(EvidenceRow.check_name == check)
        if run_id:
            q = q.where(EvidenceRow.run_id == run_id)
        if target_of_evaluation_id:
            q = q.where(EvidenceRow.target_of_evaluation_id == target_of_evaluation_id)
        if since:
            q = q.where(EvidenceRow.timestamp >= since)
        if until:
            q = q.where(EvidenceRow.timestamp <= until)
        if limit:
            q = q.limit(limit)
        with self._read() as s:
            return [_stored(r) for r in s.execute(q).scalars()]

    def count(self) -> int:
        with self._read() as s:
            return int(s.execute(select(func.count()).select_from(EvidenceRow)).scalar_one())

    def runs(self, *, status: str | None = None) -> list[RunInfo]:
        q = select(RunRow).order_by(RunRow.created_at)
        if status:
            q = q.where(RunRow.status == status)
        with self._read() as s:
            per_run = select(EvidenceRow.run_id, func.count()).group_by(EvidenceRow.run_id)
            counts = dict(s.execute(per_run).tuples().all())
            return [_run_info(r, counts.get(r.id, 0)) for r in s.execute(q).scalars()]

    def run(self, run_id: str) -> RunInfo:
        with self._read() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise EvidenceNotFound(f"no run {run_id} in {self.display_url}")
            q = select(func.count()).select_from(EvidenceRow).where(EvidenceRow.run_id == run_id)
            n = s.execute(q).scalar_one()
            return _run_info(row, int(n))

    def artifacts(self, run_id: str) -> list[ArtifactInfo]:
        with self._read() as s:
            q = select(ArtifactRow).where(ArtifactRow.run_id == run_id).order_by(ArtifactRow.path)
            rows = s.execute(q).scalars()
            return [ArtifactInfo(run_id=r.run_id, path=r.path, sha256=r.sha256, size=r.size,
                                 inline=r.content is not None, stored_path=r.stored_path) for r in rows]

    def artifact_bytes(self, run_id: str, path: str) -> bytes:
        with self._read() as s:
            row = s.execute(select(ArtifactRow).where(ArtifactRow.run_id == run_id, ArtifactRow.path == path)
                            ).scalar_one_or_none()
            if row is None:
                raise EvidenceNotFound(f"no artifact {path} for run {run_id}")
            if row.content is not None:
                return row.content
            assert row.stored_path is not None
            return Path(row.stored_path).read_bytes()

    def head(self) -> Head:
        with self._read() as s:
            return _head(s.get(HeadRow, 1))

    def public_keys(self) -> dict[str, str]:
        """key id -> PEM of every key that signed records in this store."""
        with self._read() as s:
            return {k.key_id: k.public_key for k in s.execute(select(KeyRow)).scalars()}

    # -- verification --------------------------------------------------------------------------

    def verify(self, *, trusted_key_files: Sequence[str | Path] = (), strict: bool | None = None,
               allow_untrusted: bool = False, pinned_head: str | Head | None = None,
               allow_empty: bool = False) -> VerifyReport:
        """Check the whole chain, every signature, the indexed columns, the runs and the stored artifacts.

        Trusted keys are this machine's own key, the trust store ``<key dir>/trusted/*.pub`` and
        ``trusted_key_files``. A key found only in the store is an ``untrusted`` issue
        (``allow_untrusted``: a warning). An empty store or a missing head row is an issue too.

        Args:
            strict: kept for callers written before 2027-01; ``strict=False`` means ``allow_untrusted=True``.
            pinned_head: a head hash (or :class:`Head`) recorded earlier and kept elsewhere; it must
                still be in the chain, so truncating the newest records is detected even by someone
                who holds the signing key.
            allow_empty: an empty store is not an issue (a store that was just created).
        """
        allow = allow_untrusted or strict is False
        ring = KeyRing(keymod.trusted_keys(self.key_dir, list(trusted_key_files)))
        known, key_warnings = _known_keys(self.public_keys())
        ring.known = known
        extra: dict[str, list[str]] = {}
        entries: list[ChainEntry] = []
        raw_refs: dict[tuple[str, str], list[tuple[str, str]]] = {}
        issues: list[Issue] = []
        with self._read() as s:
            head_row = s.get(HeadRow, 1)
            head = _head(head_row)
            legacy = head_row is not None and head.legacy and bool(head.count or head.signature)
            unsigned_meta = 0
            evidence_runs: set[str] = set()
            for row in s.execute(select(EvidenceRow).order_by(EvidenceRow.seq)).scalars():
                entries.append(_entry(row))
                evidence_runs.add(row.run_id)
                problems = _column_problems(row) + _meta_problems(row, ring)
                if row.meta_signature is None:
                    unsigned_meta += 1
                    if not legacy:
                        problems.append("its metadata (source, storage time, original signer) is unsigned")
                if problems:
                    extra[row.id] = problems
                try:
                    raw = json.loads(row.body).get("raw")
                except ValueError:
                    raw = None
                if isinstance(raw, dict) and "path" in raw:
                    raw_refs.setdefault((row.run_id, str(raw["path"])), []).append((row.id, str(raw.get("sha256"))))
            run_rows = list(s.execute(select(RunRow).order_by(RunRow.id)).scalars())
            digests = _all_artifact_digests(s)
            issues += _run_problems(run_rows, digests, head, ring, legacy=legacy)
            run_ids = {r.id for r in run_rows}
            for rid in sorted(evidence_runs - run_ids):
                issues.append(Issue(kind="run", detail=f"run {rid}: its row is gone, but records of it remain"))
            artifact_problems = self._artifact_problems(s, raw_refs)
        if head_row is None:
            issues.insert(0, Issue(kind="missing_head", detail="the chain head row (aisec_chain_head, id 1) is "
                                   "missing, so completeness cannot be checked; restore the store from a backup"))
        elif not entries and not run_rows and not head.count and not head.signature and not allow_empty:
            issues.append(Issue(kind="empty", detail=f"{self.display_url} holds no records, no runs and no signed "
                                "head: there is nothing to vouch for (an emptied store looks exactly like this)"))
        report = verify_chain(entries, head if head_row is not None else None, ring, extra=extra)
        issues = report.issues + issues + artifact_problems
        if pinned_head is not None:
            issues += _pinned_problems(pinned_head, entries, head)
        more, untrusted_warnings = ring.untrusted_issue(allow)
        issues += more
        warnings = key_warnings + report.warnings + untrusted_warnings
        if legacy:
            warnings.append(f"legacy store: run fields unsigned (written before store revision 0002; "
                            f"{unsigned_meta} record(s) without signed metadata); the next write signs them as they "
                            "stand")
        return VerifyReport(ok=not issues, records=report.records, issues=issues, warnings=warnings, head=head,
                            legacy=legacy)

    def verify_entry(self, evidence_id: str) -> tuple[StoredEvidence, RunInfo, list[str]]:
        """Check one record and its run against the trust store only: what ``reproduce`` relies on.

        Returns the record, its run and the problems found (empty when both are signed by trusted
        keys and unchanged). Cheaper than :meth:`verify`: the rest of the chain is not read.
        """
        ring = KeyRing(keymod.trusted_keys(self.key_dir))
        problems: list[str] = []
        with self._read() as s:
            row = self._find_row(s, evidence_id)
            entry = _stored(row)
            if link_hash(row.prev_hash, row.prev_id, row.body.encode()) != row.hash:
                problems.append(f"evidence {row.id}: its content no longer matches its chain hash")
            why = ring.check(row.key_id, row.signature, row.hash.encode())
            if why:
                problems.append(f"evidence {row.id}: {why}")
            problems += [f"evidence {row.id}: {p}" for p in _column_problems(row) + _meta_problems(row, ring)]
            if row.meta_signature is None:
                problems.append(f"evidence {row.id}: its metadata is unsigned (legacy store)")
            run_row = s.get(RunRow, row.run_id)
            if run_row is None:
                raise EvidenceNotFound(f"evidence {row.id} names run {row.run_id}, which is not in {self.display_url}")
            problems += [str(i) for i in _run_problems([run_row], _all_artifact_digests(s, row.run_id), None, ring,
                                                       legacy=False)]
            n = s.execute(select(func.count()).select_from(EvidenceRow).where(EvidenceRow.run_id == row.run_id)
                          ).scalar_one()
            run = _run_info(run_row, int(n))
        if ring.untrusted:  # pragma: no cover - the ring holds no known-only keys here
            problems.append(f"signed by untrusted key(s) {sorted(ring.untrusted)}")
        return entry, run, problems

    def _artifact_problems(self, s: Session, refs: dict[tuple[str, str], list[tuple[str, str]]]) -> list[Issue]:
        issues = []
        for row in s.execute(select(ArtifactRow).order_by(ArtifactRow.id)).scalars():
            if row.content is not None:
                actual = hashlib.sha256(row.content).hexdigest()
            elif row.stored_path and Path(row.stored_path).is_file():
                actual = file_sha256(row.stored_path)
            else:
                issues.append(Issue(kind="removed", detail=f"artifact {row.path} of run {row.run_id}: its file "
                                    f"{row.stored_path} is gone"))
                continue
            if actual != row.sha256:
                issues.append(Issue(kind="edited", detail=f"artifact {row.path} of run {row.run_id}: content sha256 "
                                    f"{actual[:12]} differs from the recorded {row.sha256[:12]}"))
            for ev_id, want in refs.get((row.run_id, row.path), []):
                if want != actual:
                    issues.append(Issue(kind="edited", evidence_id=ev_id,
                                        detail=f"its per-sample file {row.path} no longer has the signed sha256"))
        return issues

    # -- export / import -----------------------------------------------------------------------

    def export_bundle(self, path: str | Path, *, artifacts: bool = True, **filters: Any) -> int:
        """Write records (all, or those matching :meth:`query` filters) with their links, keys, runs and head.

        The file is JSON lines: a header, one line per record (canonical JSON kept byte for byte,
        its link and, for imported records, its original signer's link), one per artifact, and a
        last line signing the sha256 of every byte before it with this machine's key, so no line
        of the bundle (header included) can be edited, added or removed unnoticed. Returns the
        number of records written.
        """
        partial = any(v is not None for v in filters.values())
        signer = self.signer
        records = self.query(**filters)
        run_ids = sorted({r.evidence.run_id for r in records})
        keys = self.public_keys()
        keys.setdefault(signer.key_id, signer.public_pem)
        with self._read() as s:
            runs = []
            for rid in run_ids:
                row = s.get(RunRow, rid)
                if row is None:
                    continue
                n = s.execute(select(func.count()).select_from(EvidenceRow).where(EvidenceRow.run_id == rid)
                              ).scalar_one()
                info = _run_info(row, int(n)).model_dump(mode="json")
                info["signed"] = {"fields": _run_fields(row, _artifact_digests(s, rid)), "run_hash": row.run_hash,
                                  "key_id": row.key_id, "signature": row.signature}
                runs.append(info)
        header = {
            "format": BUNDLE_FORMAT, "exported_at": _now().isoformat(), "store": self.display_url,
            "partial": partial, "head": None if partial else self.head().model_dump(),
            "keys": keys, "runs": runs, "signer": signer.key_id,
        }
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        digest = hashlib.sha256()
        with tmp.open("wb") as fh:

            def line(obj: dict[str, Any]) -> None:
                data = (json.dumps(obj, sort_keys=True) + "\n").encode()
                digest.update(data)
                fh.write(data)

            line(header)
            for r in records:
                line({"record": {"id": r.evidence.id, "body": r.evidence.canonical_json().decode(),
                                 "link": r.link.model_dump(), "source": r.source,
                                 "origin": r.origin.model_dump() if r.origin is not None else None}})
            if artifacts:
                for run_id in run_ids:
                    for a in self.artifacts(run_id):
                        data = self.artifact_bytes(run_id, a.path)
                        line({"artifact": {"run_id": run_id, "path": a.path, "sha256": a.sha256,
                                           "content": base64.b64encode(data).decode()}})
            sha = digest.hexdigest()
            fh.write((json.dumps({"bundle_signature": {
                "key_id": signer.key_id, "sha256": sha, "signature": signer.sign(BUNDLE_PREFIX + sha.encode())}},
                sort_keys=True) + "\n").encode())
        tmp.replace(p)
        return len(records)

    def import_path(self, path: str | Path, *, force: bool = False, trust_keys: Sequence[str] = ()) -> AddResult:
        """Import a bundle from :meth:`export_bundle`, a plain ``evidence.jsonl``, or a run's out folder.

        Idempotent: records already in the store are skipped, so an interrupted import can simply be
        run again. A bundle is verified first and refused if tampered with (unless ``force``) or
        signed by a key that is not in the trust store (unless its fingerprint is in ``trust_keys``,
        which then adds it to the trust store). Imported records keep their original signer and
        signature beside the local chain link; nothing is re-signed as one's own.

        Raises:
            UntrustedSigner: the bundle or its records are signed by keys not trusted (``force`` does not help).
            BundleError: the bundle is malformed or fails verification.
        """
        p = Path(path)
        if p.is_dir():
            # a run folder and the runs inside it (the demo's privacy runs live in <out>/privacy/<name>/)
            dirs = sorted({e.parent for e in p.rglob("evidence.jsonl") if "checkpoints" not in e.parts} | {p})
            res = AddResult()
            for d in dirs:
                if d == p or (d / "evidence.jsonl").is_file():
                    res += self._import_run_dir(d)
            return res
        if not p.is_file():
            raise BundleError(f"nothing to import at {p}: expected a bundle, an evidence.jsonl or a run folder")
        first = _first_line(p)
        if first.get("format") in (BUNDLE_FORMAT, BUNDLE_FORMAT_V1):
            return self._import_bundle(p, force=force, trust_keys=trust_keys)
        records = _read_evidence_lines(p)
        return self.add_evidence(records, source=f"import:{p.name}")

    def _import_run_dir(self, d: Path) -> AddResult:
        ev = d / "evidence.jsonl"
        if not ev.is_file():
            raise BundleError(f"{d} has no evidence.jsonl; is it an `aisec assess --out` folder?")
        records = _read_evidence_lines(ev)
        plan = None
        if (d / "plan.yaml").is_file():
            from aisec.core.plan import Plan

            plan = Plan.from_yaml(d / "plan.yaml")
        out = AddResult()
        for run_id in dict.fromkeys(r.run_id for r in records):
            self.begin_run(run_id, plan, out_dir=d.resolve(), status="imported")
        added = self.add_evidence(records, source=f"import:{d.name}")
        out += added
        new = set(added.added)
        for run_id in dict.fromkeys(r.run_id for r in records):
            mine = [r.id for r in records if r.run_id == run_id]
            a = sum(1 for i in mine if i in new)
            out.runs = {**out.runs, run_id: [a, len(mine) - a]}
        for run_id in dict.fromkeys(r.run_id for r in records):
            out.artifacts_added += self._add_run_files(run_id, d, [r for r in records if r.run_id == run_id])
        return out

    def _import_bundle(self, p: Path, *, force: bool, trust_keys: Sequence[str] = ()) -> AddResult:
        bundle = read_bundle(p)
        extra = bundle.keys_for(trust_keys)
        report = bundle.verify(self.key_dir, extra_trusted=extra)
        untrusted = [i for i in report.issues if i.kind == "untrusted"]
        if untrusted:
            listed = ", ".join(f"{kid} (sha256:{keymod.fingerprint(k)})" for kid, k in bundle.listed_keys().items()
                               if kid not in keymod.trusted_keys(self.key_dir) and kid not in extra)
            raise UntrustedSigner(
                f"{p} is signed by key(s) not in your trust store: {listed or untrusted[0].detail}. Nothing was "
                "imported. Check the fingerprint with the sender, then import with --trust-key FINGERPRINT "
                "(trust_keys=[...]) or add the key first with `aisec evidence trust add KEY.pub`.")
        if not report.ok and not force:
            raise BundleError(f"{p} fails verification; refusing to import it (pass force=True / --force to "
                              f"import anyway; the records keep their signatures, so verify will name them):\n"
                              f"{report.text()}")
        for key in extra.values():
            keymod.add_trusted(keymod.public_pem(key), self.key_dir)
        for run in bundle.runs:
            self.begin_run(run["id"], run.get("plan"), out_dir=run.get("out_dir"),
                           status=run.get("status") or "imported")
        origins = {e.id: e.origin or e.link for e in bundle.entries}
        out = self.add_evidence(bundle.evidence(), source=f"import:{p.name}", origins=origins)
        for a in bundle.artifacts:
            out.artifacts_added += self.add_artifact(a["run_id"], a["path"], base64.b64decode(a["content"]))
        return out


class Bundle(BaseModel):
    """A parsed export file."""

    header: dict[str, Any]
    entries: list[ChainEntry]
    artifacts: list[dict[str, Any]]
    signature: dict[str, Any] | None = None
    """The last line's ``bundle_signature`` (key id, sha256, signature); None in a format-1 bundle."""
    content_sha256: str = ""
    """The sha256 of every byte before the signature line, as read."""

    @property
    def runs(self) -> list[dict[str, Any]]:
        return list(self.header.get("runs") or [])

    def evidence(self) -> list[Evidence]:
        return [_parse_body(e.body) for e in self.entries]

    def listed_keys(self) -> dict[str, Any]:
        """The public keys the bundle lists (usable, never trusted by being listed)."""
        return _known_keys(self.header.get("keys") or {})[0]

    def keys_for(self, fingerprints: Sequence[str]) -> dict[str, Any]:
        """The listed keys matching ``fingerprints`` (key ids or sha256 fingerprints) the user vouches for.

        Raises:
            UntrustedSigner: a fingerprint matches no key the bundle lists.
        """
        listed = self.listed_keys()
        out: dict[str, Any] = {}
        for fp in fingerprints:
            want = keymod.normalize_fingerprint(fp)
            hits = {kid: k for kid, k in listed.items() if keymod.fingerprint(k).startswith(want)}
            if not hits:
                raise UntrustedSigner(f"--trust-key {fp}: the bundle lists no key with that fingerprint; it lists "
                                      f"{', '.join(sorted(listed)) or 'none'}")
            out.update(hits)
        return out

    def verify(self, key_dir: str | Path | None = None, *, trusted_key_files: Sequence[str | Path] = (),
               strict: bool | None = None, allow_untrusted: bool = False,
               extra_trusted: Mapping[str, Any] | None = None) -> VerifyReport:
        """Verify the bundle's own signature, its chain (completeness too unless it is a filtered export),
        its runs' signatures and its artifacts. Keys listed in the bundle are never trusted by that alone."""
        allow = allow_untrusted or strict is False
        trusted = {**keymod.trusted_keys(key_dir, list(trusted_key_files)), **dict(extra_trusted or {})}
        known, warnings = _known_keys(self.header.get("keys") or {})
        ring = KeyRing(trusted, known)
        issues: list[Issue] = []
        fmt = self.header.get("format")
        if fmt != BUNDLE_FORMAT or self.signature is None:
            issues.append(Issue(kind="unsigned", detail=f"the bundle ({fmt}) is not signed as a whole, so its header "
                                "(head, partial flag, runs, keys) and its set of records can be edited unnoticed; "
                                "re-export it with this aisec version"))
        else:
            if self.signature.get("sha256") != self.content_sha256:
                issues.append(Issue(kind="edited", detail="the bundle's content no longer matches its signed sha256: "
                                    "a line (header, record or artifact) was edited, added or removed"))
            why = ring.check(self.signature.get("key_id"), self.signature.get("signature"),
                             BUNDLE_PREFIX + str(self.signature.get("sha256")).encode())
            if why:
                issues.append(Issue(kind="edited", detail=f"the bundle signature cannot be trusted: {why}"))
        partial = bool(self.header.get("partial"))
        head = Head.model_validate(self.header["head"]) if self.header.get("head") else None
        if head is None and not partial:
            issues.append(Issue(kind="head", detail="the bundle claims to be a complete export but has no head"))
        extra: dict[str, list[str]] = {}
        for e in self.entries:
            try:
                ev = _parse_body(e.body)
                if ev.id != e.id:
                    extra.setdefault(e.id, []).append(f"its record says id {ev.id}")
            except StoreError as exc:
                extra.setdefault(e.id, []).append(str(exc))
            if e.origin is not None:
                extra.setdefault(e.id, []).extend(_origin_problems(e.body, e.origin, ring))
        extra = {k: v for k, v in extra.items() if v}
        report = verify_chain(self.entries, head, ring, extra=extra, partial=partial)
        issues += report.issues
        for run in self.runs:
            issues += _bundle_run_problems(run, ring)
        for a in self.artifacts:
            actual = hashlib.sha256(base64.b64decode(a["content"])).hexdigest()
            if actual != a["sha256"]:
                issues.append(Issue(kind="edited", detail=f"artifact {a['path']} of run {a['run_id']}: content "
                                    "does not match its sha256"))
        more, untrusted_warnings = ring.untrusted_issue(allow)
        issues += more
        return VerifyReport(ok=not issues, records=report.records, issues=issues,
                            warnings=warnings + report.warnings + untrusted_warnings, head=head,
                            legacy=fmt != BUNDLE_FORMAT)


def read_bundle(path: str | Path) -> Bundle:
    """Parse a bundle; the signature line must be the last one."""
    p = Path(path)
    header: dict[str, Any] | None = None
    entries: list[ChainEntry] = []
    artifacts: list[dict[str, Any]] = []
    signature: dict[str, Any] | None = None
    digest = hashlib.sha256()
    with p.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if signature is not None:
                if raw.strip():
                    raise BundleError(f"{p} line {n}: content after the bundle signature (expected it last); "
                                      "the bundle was appended to")
                continue
            if not raw.strip():
                digest.update(raw)
                continue
            try:
                obj = json.loads(raw)
                if header is None:
                    header = obj
                    if obj.get("format") not in (BUNDLE_FORMAT, BUNDLE_FORMAT_V1):
                        raise BundleError(f"{p} is not an aisec evidence bundle (format {obj.get('format')!r})")
                elif "bundle_signature" in obj:
                    signature = dict(obj["bundle_signature"])
                    continue
                elif "record" in obj:
                    r = obj["record"]
                    origin = Link.model_validate(r["origin"]) if r.get("origin") else None
                    entries.append(ChainEntry(id=r["id"], body=r["body"], link=Link.model_validate(r["link"]),
                                              origin=origin))
                elif "artifact" in obj:
                    artifacts.append(dict(obj["artifact"]))
                else:
                    raise BundleError(f"{p} line {n}: neither a record nor an artifact")
            except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
                raise BundleError(f"{p} line {n} is malformed: {exc}") from exc
            digest.update(raw)
    if header is None:
        raise BundleError(f"{p} is empty")
    return Bundle(header=header, entries=entries, artifacts=artifacts, signature=signature,
                  content_sha256=digest.hexdigest())


# -- helpers -----------------------------------------------------------------------------------


def _check_sqlite_file(url: str) -> None:
    """For read-only opens: a SQLite file must exist and not be empty (nothing is created)."""
    try:
        u = make_url(url)
    except ArgumentError:
        return
    if u.get_backend_name() != "sqlite" or (u.database or "") in ("", ":memory:"):
        return
    f = Path(u.database or "").expanduser()
    if not f.exists():
        raise StoreMissing(f"no evidence store at {f}: the file does not exist, and read-only commands create "
                           "nothing. Check --store / AISEC_STORE_URL (the default is evidence.db in the aisec data "
                           "folder).")
    if f.is_file() and f.stat().st_size == 0:
        raise NotAStore(f"{f} is a 0-byte file, not an evidence store; expected a SQLite database written by aisec. "
                        "It may have been truncated: restore it from a backup.")


def _engine(url: str, *, create: bool = True) -> Engine:
    try:
        u = make_url(url)
    except ArgumentError as exc:
        raise StoreUnavailable(f"'{_masked(url)}' is not a database URL: {exc}") from exc
    try:
        if u.get_backend_name() == "sqlite":
            return _sqlite_engine(u, create=create)
        connect_args: dict[str, Any] = {}
        if u.get_backend_name() == "postgresql":
            connect_args["connect_timeout"] = 5
        return create_engine(u, connect_args=connect_args, pool_pre_ping=True)
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise StoreUnavailable(f"cannot open {_masked(url)}: {exc}. PostgreSQL needs `pip install "
                               "'psycopg[binary]'`; SQLite URLs look like sqlite:///path/evidence.db") from exc


def _sqlite_engine(u: URL, *, create: bool = True) -> Engine:
    db = u.database or ""
    memory = db in ("", ":memory:")
    if not memory and create:
        try:
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the folder for the SQLite store {db}: {exc}") from exc
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(u, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see "begin" below).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 30000")
        if not memory:
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of
        # deadlocking when both try to upgrade a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _transient(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    text = str(exc.orig).lower()
    return code in {"40001", "40P01", "55P03"} or "locked" in text or "busy" in text


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _now() -> datetime:
    return datetime.now(UTC)


def _plan_json(plan: Any) -> str | None:
    if plan is None:
        return None
    if hasattr(plan, "model_dump"):
        plan = plan.model_dump(mode="json")
    return json.dumps(plan, sort_keys=True)


def _parse_body(body: str) -> Evidence:
    try:
        return Evidence.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise StoreError(f"a stored record is not valid evidence: {str(exc).splitlines()[0]}") from exc


def _entry(row: EvidenceRow) -> ChainEntry:
    return ChainEntry(id=row.id, body=row.body, link=Link(seq=row.seq, prev_hash=row.prev_hash, prev_id=row.prev_id,
                                                          hash=row.hash, key_id=row.key_id, signature=row.signature),
                      origin=_origin(row))


def _origin(row: EvidenceRow) -> Link | None:
    if not row.origin:
        return None
    try:
        return Link.model_validate_json(row.origin)
    except ValidationError:
        return None  # reported by _meta_problems


def _stored(row: EvidenceRow) -> StoredEvidence:
    e = _entry(row)
    return StoredEvidence(evidence=_parse_body(row.body), link=e.link, source=row.source, stored_at=row.stored_at,
                          origin=e.origin)


def _head(row: HeadRow | None) -> Head:
    if row is None:
        return Head(seq=0, count=0, last_id="", last_hash=GENESIS, key_id="", signature="")
    return Head(seq=row.seq, count=row.count, last_id=row.last_id, last_hash=row.last_hash, key_id=row.key_id,
                signature=row.signature, runs_digest=row.runs_digest)


def iso_utc(t: datetime | None) -> str | None:
    """A stored time as the UTC ISO-8601 text that signatures cover (None stays None)."""
    return None if t is None else t.astimezone(UTC).isoformat()


def _run_fields(row: RunRow, artifacts: list[list[str]]) -> dict[str, Any]:
    """What a run's signature covers: every column but the signature itself, and its artifacts' sha256."""
    return {"id": row.id, "status": row.status, "plan": row.plan,
            "target_of_evaluation_id": row.target_of_evaluation_id, "model_sha256": row.model_sha256,
            "dataset_digest": row.dataset_digest, "tool_version": row.tool_version, "out_dir": row.out_dir,
            "error": row.error, "created_at": iso_utc(row.created_at), "finished_at": iso_utc(row.finished_at),
            "artifacts": artifacts}


def _artifact_digests(s: Session, run_id: str) -> list[list[str]]:
    q = select(ArtifactRow.path, ArtifactRow.sha256).where(ArtifactRow.run_id == run_id).order_by(ArtifactRow.path)
    return [[p, h] for p, h in s.execute(q).tuples()]


def _all_artifact_digests(s: Session, run_id: str | None = None) -> dict[str, list[list[str]]]:
    q = select(ArtifactRow.run_id, ArtifactRow.path, ArtifactRow.sha256).order_by(ArtifactRow.run_id,
                                                                                  ArtifactRow.path)
    if run_id is not None:
        q = q.where(ArtifactRow.run_id == run_id)
    out: dict[str, list[list[str]]] = {}
    for rid, p, h in s.execute(q).tuples():
        out.setdefault(rid, []).append([p, h])
    return out


def _check_run_row(s: Session, row: RunRow) -> None:
    """Before changing a signed run: refuse if its fields no longer match their signed hash."""
    if row.run_hash is None:
        return
    if run_hash(_run_fields(row, _artifact_digests(s, row.id))) != row.run_hash:
        raise StoreTampered(
            f"run {row.id} was changed outside aisec (its plan, status or digests no longer match their signed "
            "hash); refusing to sign over the change. Run `aisec evidence verify` and restore the store from a "
            "backup.")


def _sign_meta(row: EvidenceRow, signer: keymod.Signer) -> None:
    row.meta_key_id = signer.key_id
    row.meta_signature = signer.sign(meta_message(row.hash, row.origin, row.source, iso_utc(row.stored_at) or ""))


def _meta_problems(row: EvidenceRow, ring: KeyRing) -> list[str]:
    """A record's metadata signature and, if imported, its original signer's link."""
    out: list[str] = []
    if row.meta_signature is not None:
        why = ring.check(row.meta_key_id, row.meta_signature,
                         meta_message(row.hash, row.origin, row.source, iso_utc(row.stored_at) or ""))
        if why:
            out.append(f"its metadata (source {row.source!r}, storage time, original signer): {why}")
    if row.origin:
        origin = _origin(row)
        if origin is None:
            out.append("its original signer's link is not a valid link")
        else:
            out += _origin_problems(row.body, origin, ring)
    return out


def _origin_problems(body: str, origin: Link, ring: KeyRing) -> list[str]:
    out = []
    if link_hash(origin.prev_hash, origin.prev_id, body.encode()) != origin.hash:
        out.append("its content no longer matches its original signer's hash")
    why = ring.check(origin.key_id, origin.signature, origin.hash.encode())
    if why:
        out.append(f"its original signature: {why}")
    return out


def _run_problems(rows: Sequence[RunRow], artifacts: Mapping[str, list[list[str]]], head: Head | None,
                  ring: KeyRing, *, legacy: bool) -> list[Issue]:
    """Each run's fields against its signed hash and signature; the set of runs against the head."""
    issues = []
    for row in rows:
        if row.signature is None or row.run_hash is None:
            if not legacy:
                issues.append(Issue(kind="run", detail=f"run {row.id}: its fields (plan, status, digests) are "
                                    "unsigned, in a store whose head covers signed runs"))
            continue
        if run_hash(_run_fields(row, list(artifacts.get(row.id, [])))) != row.run_hash:
            issues.append(Issue(kind="run", detail=f"run {row.id}: its fields (plan, status, model_sha256, "
                                "dataset_digest, times, artifacts ...) no longer match their signed hash"))
        why = ring.check(row.key_id, row.signature, row.run_hash.encode())
        if why:
            issues.append(Issue(kind="run", detail=f"run {row.id}: {why}"))
    if head is not None and not head.legacy:
        got = runs_digest([(r.id, r.run_hash) for r in rows if r.run_hash is not None])
        if got != head.runs_digest:
            issues.append(Issue(kind="run", detail="the set of runs differs from the one the signed head covers "
                                "(a run was added, deleted or re-hashed)"))
    return issues


def _bundle_run_problems(run: Mapping[str, Any], ring: KeyRing) -> list[Issue]:
    """A bundle's run: its signed fields, their signature, and the plain fields the importer uses."""
    signed = run.get("signed") or {}
    fields = signed.get("fields")
    rid = run.get("id")
    if not isinstance(fields, dict) or not signed.get("signature"):
        return [Issue(kind="run", detail=f"run {rid}: the bundle carries no signed fields for it (legacy store)")]
    issues = []
    if run_hash(fields) != signed.get("run_hash"):
        issues.append(Issue(kind="run", detail=f"run {rid}: its fields no longer match their signed hash"))
    why = ring.check(signed.get("key_id"), signed.get("signature"), str(signed.get("run_hash")).encode())
    if why:
        issues.append(Issue(kind="run", detail=f"run {rid}: {why}"))
    plan = json.loads(fields["plan"]) if isinstance(fields.get("plan"), str) else None
    for name, want in (("id", fields.get("id")), ("status", fields.get("status")), ("plan", plan),
                       ("model_sha256", fields.get("model_sha256")), ("out_dir", fields.get("out_dir"))):
        if run.get(name) != want:
            issues.append(Issue(kind="run", detail=f"run {rid}: its {name} differs from the signed one"))
    return issues


def _pinned_problems(pinned: str | Head, entries: Sequence[ChainEntry], head: Head) -> list[Issue]:
    """A head kept elsewhere must still be in the chain (else newest records were cut off or rolled back)."""
    want = pinned.last_hash if isinstance(pinned, Head) else pinned.strip().lower()
    count = pinned.count if isinstance(pinned, Head) else None
    if not want or want == GENESIS:
        return []
    pos = next((i for i, e in enumerate(entries) if e.link.hash == want), None)
    if pos is None:
        return [Issue(kind="removed", detail=f"the pinned head {want[:16]}… is not in the chain: records up to it "
                      "were removed, or the store was rolled back to an earlier state (the current head counts "
                      f"{head.count})")]
    if count is not None and head.count < count:
        return [Issue(kind="removed", detail=f"the pinned head counts {count} records, the store's head {head.count}")]
    return []


def _run_info(row: RunRow, n: int) -> RunInfo:
    return RunInfo(id=row.id, status=row.status, plan=json.loads(row.plan) if row.plan else None,
                   target_of_evaluation_id=row.target_of_evaluation_id, model_sha256=row.model_sha256,
                   dataset_digest=row.dataset_digest, tool_version=row.tool_version, out_dir=row.out_dir,
                   error=row.error, created_at=row.created_at, finished_at=row.finished_at, evidence_count=n)


def _column_problems(row: EvidenceRow) -> list[str]:
    """Indexed columns that disagree with the record body (someone edited the table directly)."""
    out = []
    if hashlib.sha256(row.body.encode()).hexdigest() != row.body_sha256:
        out.append("its stored body digest does not match its content")
    try:
        ev = _parse_body(row.body)
    except StoreError as exc:
        return [*out, str(exc)]
    want = {"id": ev.id, "run_id": ev.run_id, "check_name": ev.check, "metric": ev.metric,
            "model_sha256": ev.resource.model_sha256, "dataset_digest": ev.resource.dataset_digest,
            "target_of_evaluation_id": ev.target_of_evaluation_id}
    for col, value in want.items():
        if getattr(row, col) != value:
            out.append(f"column {col} says {getattr(row, col)!r} but the record says {value!r}")
    if row.timestamp != ev.timestamp.astimezone(UTC):
        out.append(f"column timestamp says {row.timestamp.isoformat()} but the record says {ev.timestamp.isoformat()}")
    want_value = ev.value if math.isfinite(ev.value) else None
    if row.value != want_value:
        out.append(f"column value says {row.value!r} but the record says {want_value!r}")
    return out


def _known_keys(pems: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    out: dict[str, Any] = {}
    warnings = []
    for kid, pem in pems.items():
        try:
            k = keymod.load_public_pem(pem)
        except StoreError as exc:
            warnings.append(f"key {kid} in the store is unreadable: {exc}")
            continue
        if keymod.key_id(k) != kid:
            warnings.append(f"key {kid} in the store does not match its id; ignored")
            continue
        out[kid] = k
    return out, warnings


def _first_line(p: Path) -> dict[str, Any]:
    with p.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    raise BundleError(f"{p} is not JSON lines: {exc}") from exc
                return obj if isinstance(obj, dict) else {}
    raise BundleError(f"{p} is empty")


def _read_evidence_lines(p: Path) -> list[Evidence]:
    out = []
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                out.append(Evidence.model_validate(obj))
            except (ValueError, ValidationError) as exc:
                raise BundleError(f"{p} line {n} is not an evidence record: {str(exc).splitlines()[0]}") from exc
    return out
