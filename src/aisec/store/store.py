"""The evidence store: runs, hash-chained signed evidence records and artifacts in SQL.

SQLite by default (a file in the user's data folder), PostgreSQL by URL. Writes are idempotent
(keyed on the evidence id: re-importing after a crash adds only what is missing) and serialised on
the chain head (SQLite: ``BEGIN IMMEDIATE`` in WAL mode plus retries; PostgreSQL: ``SELECT ... FOR
UPDATE`` on the head row), so concurrent writers lose nothing and the chain stays linear.

>>> store = open_store("sqlite:///evidence.db")
>>> store.save_run(run)                       # after aisec.assess(...)
>>> store.query(metric="robustness.*", model="3f2a")
>>> store.verify().ok
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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
from aisec.store.chain import ChainEntry, Head, Link, VerifyReport, link_hash, verify_chain
from aisec.store.errors import BundleError, EvidenceConflict, EvidenceNotFound, StoreUnavailable
from aisec.store.paths import default_store_url
from aisec.store.tables import GENESIS, VERSION_TABLE, ArtifactRow, EvidenceRow, HeadRow, KeyRow, RunRow

if TYPE_CHECKING:
    from aisec.core.plan import Plan
    from aisec.core.run import Run

T = TypeVar("T")
BUNDLE_FORMAT = "aisec-evidence-bundle/1"
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

    def __iadd__(self, other: AddResult) -> AddResult:
        self.added += other.added
        self.skipped += other.skipped
        self.artifacts_added += other.artifacts_added
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


def open_store(url: str | None = None, *, key_dir: str | Path | None = None) -> EvidenceStore:
    """Open (creating and migrating if needed) the store at ``url`` (default: ``$AISEC_STORE_URL`` or SQLite)."""
    return EvidenceStore(url, key_dir=key_dir)


class EvidenceStore:
    """Runs, evidence and artifacts in one SQL database, with a signed hash chain over the evidence."""

    def __init__(self, url: str | None = None, *, key_dir: str | Path | None = None, retries: int = 12) -> None:
        self.url = normalize_url(url)
        self.key_dir = Path(key_dir) if key_dir is not None else None
        self.retries = retries
        self._signer: keymod.Signer | None = None
        self._engine = _engine(self.url)
        self._check_reachable()
        self._migrate()

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
            raise StoreUnavailable(
                f"cannot reach the evidence store at {self.display_url}: {_reason(exc)}. Check the URL and that the "
                "server is running, or unset AISEC_STORE_URL to use the local SQLite store."
            ) from exc

    def _migrate(self) -> None:
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

        def fn(s: Session) -> None:
            row = s.get(RunRow, run_id)
            if row is None:
                s.add(RunRow(id=run_id, status=status, plan=plan_json, created_at=_now(),
                             out_dir=str(out_dir) if out_dir else None,
                             target_of_evaluation_id=(plan_dict or {}).get("target_of_evaluation_id")))
            else:
                row.plan = row.plan or plan_json
                row.out_dir = row.out_dir or (str(out_dir) if out_dir else None)

        self._write(fn)

    def finish_run(self, run_id: str, *, status: str = "complete", error: str | None = None) -> None:
        def fn(s: Session) -> None:
            row = s.get(RunRow, run_id)
            if row is None:
                raise EvidenceNotFound(f"no run {run_id} in {self.display_url}")
            row.status = status
            row.error = error
            row.finished_at = _now()

        self._write(fn)

    def add_evidence(self, records: Iterable[Evidence], *, source: str = "run") -> AddResult:
        """Append records to the chain in one transaction; records already stored (same id) are skipped.

        Raises:
            EvidenceConflict: a record has the id of a stored record but different content.
        """
        records = list(records)
        if not records:
            return AddResult()
        signer = self.signer

        def fn(s: Session) -> AddResult:
            head = s.execute(select(HeadRow).where(HeadRow.id == 1).with_for_update()).scalar_one()
            existing: dict[str, str] = {}
            ids = [r.id for r in records]
            for i in range(0, len(ids), _CHUNK):
                existing.update(s.execute(select(EvidenceRow.id, EvidenceRow.body_sha256)
                                          .where(EvidenceRow.id.in_(ids[i:i + _CHUNK]))).tuples().all())
            if s.get(KeyRow, signer.key_id) is None:
                s.add(KeyRow(key_id=signer.key_id, algorithm="ed25519", public_key=signer.public_pem,
                             first_used=_now()))
            self._ensure_runs(s, records)
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
                s.add(EvidenceRow(
                    seq=seq, id=r.id, run_id=r.run_id, check_name=r.check, metric=r.metric,
                    model_sha256=r.resource.model_sha256, dataset_digest=r.resource.dataset_digest,
                    target_of_evaluation_id=r.target_of_evaluation_id, timestamp=r.timestamp,
                    value=r.value if math.isfinite(r.value) else None, body=body.decode(), body_sha256=digest,
                    prev_hash=last_hash, prev_id=last_id, hash=h, key_id=signer.key_id,
                    signature=signer.sign(h.encode()), source=source[:256], stored_at=now,
                ))
                existing[r.id] = digest
                count += 1
                last_id, last_hash = r.id, h
                out.added.append(r.id)
            if out.added:
                head.seq, head.count, head.last_id, head.last_hash = seq, count, last_id, last_hash
                head.key_id = signer.key_id
                head.signature = signer.sign(Head(seq=seq, count=count, last_id=last_id, last_hash=last_hash,
                                                  key_id=signer.key_id, signature="").message())
                head.updated_at = now
            return out

        return self._write(fn)

    def _ensure_runs(self, s: Session, records: Sequence[Evidence]) -> None:
        first: dict[str, Evidence] = {}
        for r in records:
            first.setdefault(r.run_id, r)
        present = set(s.execute(select(RunRow.id).where(RunRow.id.in_(list(first)))).scalars())
        for run_id, r in first.items():
            if run_id not in present:
                s.add(RunRow(id=run_id, status="imported", plan=None, created_at=r.timestamp,
                             target_of_evaluation_id=r.target_of_evaluation_id))
        s.flush()
        for run_id, r in first.items():
            row = s.get(RunRow, run_id)
            if row is not None and row.model_sha256 is None:
                row.model_sha256 = r.resource.model_sha256
                row.dataset_digest = r.resource.dataset_digest
                row.tool_version = r.tool_version
                row.target_of_evaluation_id = r.target_of_evaluation_id

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

        def fn(s: Session) -> bool:
            row = s.execute(select(ArtifactRow).where(ArtifactRow.run_id == run_id, ArtifactRow.path == path)
                            ).scalar_one_or_none()
            if row is not None:
                if row.sha256 != digest:
                    raise EvidenceConflict(f"artifact {path} of run {run_id} is already stored with sha256 "
                                           f"{row.sha256[:12]}, not {digest[:12]}")
                return False
            if s.get(RunRow, run_id) is None:
                s.add(RunRow(id=run_id, status="imported", created_at=_now()))
                s.flush()
            s.add(ArtifactRow(run_id=run_id, path=path, sha256=digest, size=size, content=content,
                              stored_path=stored, created_at=_now()))
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
            return _stored(row)

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

    def verify(self, *, trusted_key_files: Sequence[str | Path] = (), strict: bool = False) -> VerifyReport:
        """Check the whole chain, every signature, the indexed columns and the stored artifacts.

        Trusted keys are this machine's key, ``<key dir>/trusted/*.pub`` and ``trusted_key_files``;
        keys found only in the store are accepted with a warning (an issue when ``strict``).
        """
        trusted = keymod.trusted_keys(self.key_dir, list(trusted_key_files))
        known, key_warnings = _known_keys(self.public_keys())
        extra: dict[str, list[str]] = {}
        entries: list[ChainEntry] = []
        raw_refs: dict[tuple[str, str], list[tuple[str, str]]] = {}
        with self._read() as s:
            for row in s.execute(select(EvidenceRow).order_by(EvidenceRow.seq)).scalars():
                entries.append(_entry(row))
                problems = _column_problems(row)
                if problems:
                    extra[row.id] = problems
                try:
                    raw = json.loads(row.body).get("raw")
                except ValueError:
                    raw = None
                if isinstance(raw, dict) and "path" in raw:
                    raw_refs.setdefault((row.run_id, str(raw["path"])), []).append((row.id, str(raw.get("sha256"))))
            head = _head(s.get(HeadRow, 1))
            artifact_problems = self._artifact_problems(s, raw_refs)
        report = verify_chain(entries, head, trusted, known, extra=extra, strict=strict)
        issues = report.issues + artifact_problems
        return VerifyReport(ok=not issues, records=report.records, issues=issues,
                            warnings=key_warnings + report.warnings, head=head)

    def _artifact_problems(self, s: Session, refs: dict[tuple[str, str], list[tuple[str, str]]]) -> list[Any]:
        from aisec.store.chain import Issue

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
        """Write records (all, or those matching :meth:`query` filters) with their links, keys and head.

        The file is JSON lines: a header, then one line per record (canonical JSON kept byte for
        byte), then one per artifact. Returns the number of records written.
        """
        partial = any(v is not None for v in filters.values())
        records = self.query(**filters)
        run_ids = sorted({r.evidence.run_id for r in records})
        header = {
            "format": BUNDLE_FORMAT, "exported_at": _now().isoformat(), "store": self.display_url,
            "partial": partial, "head": None if partial else self.head().model_dump(),
            "keys": self.public_keys(), "runs": [self.run(r).model_dump(mode="json") for r in run_ids],
        }
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(header, sort_keys=True) + "\n")
            for r in records:
                fh.write(json.dumps({"record": {"id": r.evidence.id, "body": r.evidence.canonical_json().decode(),
                                                "link": r.link.model_dump(), "source": r.source}}) + "\n")
            if artifacts:
                for run_id in run_ids:
                    for a in self.artifacts(run_id):
                        data = self.artifact_bytes(run_id, a.path)
                        fh.write(json.dumps({"artifact": {"run_id": run_id, "path": a.path, "sha256": a.sha256,
                                                          "content": base64.b64encode(data).decode()}}) + "\n")
        tmp.replace(p)
        return len(records)

    def import_path(self, path: str | Path, *, force: bool = False) -> AddResult:
        """Import a bundle from :meth:`export_bundle`, a plain ``evidence.jsonl``, or a run's out folder.

        Idempotent: records already in the store are skipped, so an interrupted import can simply be
        run again. A bundle is verified first and refused if tampered with (unless ``force``).
        """
        p = Path(path)
        if p.is_dir():
            return self._import_run_dir(p)
        if not p.is_file():
            raise BundleError(f"nothing to import at {p}: expected a bundle, an evidence.jsonl or a run folder")
        first = _first_line(p)
        if first.get("format") == BUNDLE_FORMAT:
            return self._import_bundle(p, force=force)
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
        out += self.add_evidence(records, source=f"import:{d.name}")
        for run_id in dict.fromkeys(r.run_id for r in records):
            out.artifacts_added += self._add_run_files(run_id, d, [r for r in records if r.run_id == run_id])
        return out

    def _import_bundle(self, p: Path, *, force: bool) -> AddResult:
        bundle = read_bundle(p)
        report = bundle.verify(self.key_dir)
        if not report.ok and not force:
            raise BundleError(f"{p} fails verification; refusing to import it (pass force=True / --force to "
                              f"import anyway):\n{report.text()}")
        for run in bundle.runs:
            self.begin_run(run["id"], run.get("plan"), out_dir=run.get("out_dir"),
                           status=run.get("status") or "imported")
        out = self.add_evidence(bundle.evidence(), source=f"import:{p.name}")
        for a in bundle.artifacts:
            out.artifacts_added += self.add_artifact(a["run_id"], a["path"], base64.b64decode(a["content"]))
        return out


class Bundle(BaseModel):
    """A parsed export file."""

    header: dict[str, Any]
    entries: list[ChainEntry]
    artifacts: list[dict[str, Any]]

    @property
    def runs(self) -> list[dict[str, Any]]:
        return list(self.header.get("runs") or [])

    def evidence(self) -> list[Evidence]:
        return [_parse_body(e.body) for e in self.entries]

    def verify(self, key_dir: str | Path | None = None, *, trusted_key_files: Sequence[str | Path] = (),
               strict: bool = False) -> VerifyReport:
        """Verify the bundle's chain (completeness too unless it is a filtered export) and artifacts."""
        from aisec.store.chain import Issue

        trusted = keymod.trusted_keys(key_dir, list(trusted_key_files))
        known, warnings = _known_keys(self.header.get("keys") or {})
        head = Head.model_validate(self.header["head"]) if self.header.get("head") else None
        extra: dict[str, list[str]] = {}
        for e in self.entries:
            try:
                ev = _parse_body(e.body)
                if ev.id != e.id:
                    extra.setdefault(e.id, []).append(f"its record says id {ev.id}")
            except StoreError as exc:
                extra.setdefault(e.id, []).append(str(exc))
        report = verify_chain(self.entries, head, trusted, known, extra=extra, strict=strict,
                              partial=bool(self.header.get("partial")))
        issues = list(report.issues)
        for a in self.artifacts:
            actual = hashlib.sha256(base64.b64decode(a["content"])).hexdigest()
            if actual != a["sha256"]:
                issues.append(Issue(kind="edited", detail=f"artifact {a['path']} of run {a['run_id']}: content "
                                    "does not match its sha256"))
        return VerifyReport(ok=not issues, records=report.records, issues=issues,
                            warnings=warnings + report.warnings, head=head)


def read_bundle(path: str | Path) -> Bundle:
    p = Path(path)
    header: dict[str, Any] | None = None
    entries: list[ChainEntry] = []
    artifacts: list[dict[str, Any]] = []
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if header is None:
                    header = obj
                    if obj.get("format") != BUNDLE_FORMAT:
                        raise BundleError(f"{p} is not an aisec evidence bundle (format {obj.get('format')!r})")
                elif "record" in obj:
                    r = obj["record"]
                    entries.append(ChainEntry(id=r["id"], body=r["body"], link=Link.model_validate(r["link"])))
                elif "artifact" in obj:
                    artifacts.append(dict(obj["artifact"]))
                else:
                    raise BundleError(f"{p} line {n}: neither a record nor an artifact")
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                raise BundleError(f"{p} line {n} is malformed: {exc}") from exc
    if header is None:
        raise BundleError(f"{p} is empty")
    return Bundle(header=header, entries=entries, artifacts=artifacts)


# -- helpers -----------------------------------------------------------------------------------


def _engine(url: str) -> Engine:
    try:
        u = make_url(url)
    except ArgumentError as exc:
        raise StoreUnavailable(f"'{_masked(url)}' is not a database URL: {exc}") from exc
    try:
        if u.get_backend_name() == "sqlite":
            return _sqlite_engine(u)
        connect_args: dict[str, Any] = {}
        if u.get_backend_name() == "postgresql":
            connect_args["connect_timeout"] = 5
        return create_engine(u, connect_args=connect_args, pool_pre_ping=True)
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise StoreUnavailable(f"cannot open {_masked(url)}: {exc}. PostgreSQL needs `pip install "
                               "'psycopg[binary]'`; SQLite URLs look like sqlite:///path/evidence.db") from exc


def _sqlite_engine(u: URL) -> Engine:
    db = u.database or ""
    memory = db in ("", ":memory:")
    if not memory:
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
                                                          hash=row.hash, key_id=row.key_id, signature=row.signature))


def _stored(row: EvidenceRow) -> StoredEvidence:
    e = _entry(row)
    return StoredEvidence(evidence=_parse_body(row.body), link=e.link, source=row.source, stored_at=row.stored_at)


def _head(row: HeadRow | None) -> Head:
    if row is None:
        return Head(seq=0, count=0, last_id="", last_hash=GENESIS, key_id="", signature="")
    return Head(seq=row.seq, count=row.count, last_id=row.last_id, last_hash=row.last_hash, key_id=row.key_id,
                signature=row.signature)


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
