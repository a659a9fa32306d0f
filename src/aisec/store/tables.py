"""The evidence store's tables (SQLAlchemy 2, typed ``Mapped[]``).

Four tables hold what an auditor needs, one holds the hash chain's head:

- ``aisec_runs``: one row per assessment run: its plan, status and timestamps, and a signed hash of
  all of them (``run_hash``/``key_id``/``signature``; NULL in stores written before revision 0002).
- ``aisec_evidence``: one row per evidence record. ``body`` is the record's canonical JSON (the
  authority); the other columns are copies for indexed queries, and ``verify`` checks they agree.
  ``seq``/``prev_hash``/``prev_id``/``hash``/``key_id``/``signature`` are the hash-chain link;
  ``origin`` the link the record's original signer made (imported records), ``meta_key_id``/
  ``meta_signature`` a signature over link, origin, ``source`` and ``stored_at``.
- ``aisec_artifacts``: per-sample files of a run (path, sha256, size, bytes inline or a stored path).
- ``aisec_keys``: public keys that signed records in this store (for export and verification).
- ``aisec_chain_head``: a single row: last sequence number, record count, last id and hash and the
  digest of every run's signed hash (``runs_digest``), signed.

Table names carry an ``aisec_`` prefix so the store can share a PostgreSQL database with other
applications. Times are stored as naive UTC on every backend (:class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

GENESIS = "0" * 64
"""``prev_hash`` of the first record in a store."""
VERSION_TABLE = "aisec_alembic_version"
"""Alembic's version table (prefixed, so it never clashes with another application's)."""

# SQLite only auto-increments INTEGER PRIMARY KEY, not BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware in Python, naive UTC in the database (same on SQLite and PostgreSQL)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "aisec_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    plan: Mapped[str | None] = mapped_column(Text)
    target_of_evaluation_id: Mapped[str | None] = mapped_column(String(64))
    model_sha256: Mapped[str | None] = mapped_column(String(128), index=True)
    dataset_digest: Mapped[str | None] = mapped_column(String(128))
    tool_version: Mapped[str | None] = mapped_column(String(32))
    out_dir: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    run_hash: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32))
    signature: Mapped[str | None] = mapped_column(String(128))


class EvidenceRow(Base):
    __tablename__ = "aisec_evidence"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("aisec_runs.id"), index=True)
    check_name: Mapped[str] = mapped_column(String(64), index=True)
    metric: Mapped[str] = mapped_column(String(128), index=True)
    model_sha256: Mapped[str] = mapped_column(String(128), index=True)
    dataset_digest: Mapped[str] = mapped_column(String(128), index=True)
    target_of_evaluation_id: Mapped[str] = mapped_column(String(64), index=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    value: Mapped[float | None] = mapped_column(Float)
    body: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    prev_id: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(256))
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime())
    origin: Mapped[str | None] = mapped_column(Text)
    meta_key_id: Mapped[str | None] = mapped_column(String(32))
    meta_signature: Mapped[str | None] = mapped_column(String(128))


class ArtifactRow(Base):
    __tablename__ = "aisec_artifacts"
    __table_args__ = (UniqueConstraint("run_id", "path", name="uq_aisec_artifacts_run_path"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("aisec_runs.id"), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    stored_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KeyRow(Base):
    __tablename__ = "aisec_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[str] = mapped_column(Text)
    first_used: Mapped[datetime] = mapped_column(UTCDateTime())


class HeadRow(Base):
    __tablename__ = "aisec_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(BigInteger)
    last_id: Mapped[str] = mapped_column(String(64))
    last_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    runs_digest: Mapped[str | None] = mapped_column(String(64))
