"""Initial evidence store: runs, evidence (hash-chained), artifacts, keys, chain head.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aisec.store.tables import GENESIS, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "aisec_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("plan", sa.Text()),
        sa.Column("target_of_evaluation_id", sa.String(64)),
        sa.Column("model_sha256", sa.String(128)),
        sa.Column("dataset_digest", sa.String(128)),
        sa.Column("tool_version", sa.String(32)),
        sa.Column("out_dir", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
    )
    op.create_index("ix_aisec_runs_status", "aisec_runs", ["status"])
    op.create_index("ix_aisec_runs_model_sha256", "aisec_runs", ["model_sha256"])
    op.create_index("ix_aisec_runs_created_at", "aisec_runs", ["created_at"])

    op.create_table(
        "aisec_evidence",
        sa.Column("seq", BigId, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("aisec_runs.id"), nullable=False),
        sa.Column("check_name", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("model_sha256", sa.String(128), nullable=False),
        sa.Column("dataset_digest", sa.String(128), nullable=False),
        sa.Column("target_of_evaluation_id", sa.String(64), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("value", sa.Float()),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("prev_id", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("stored_at", UTCDateTime(), nullable=False),
    )
    for col in ("run_id", "check_name", "metric", "model_sha256", "dataset_digest", "target_of_evaluation_id",
                "timestamp"):
        op.create_index(f"ix_aisec_evidence_{col}", "aisec_evidence", [col])

    op.create_table(
        "aisec_artifacts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("aisec_runs.id"), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary()),
        sa.Column("stored_path", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("run_id", "path", name="uq_aisec_artifacts_run_path"),
    )
    op.create_index("ix_aisec_artifacts_run_id", "aisec_artifacts", ["run_id"])
    op.create_index("ix_aisec_artifacts_sha256", "aisec_artifacts", ["sha256"])

    op.create_table(
        "aisec_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("first_used", UTCDateTime(), nullable=False),
    )

    head = op.create_table(
        "aisec_chain_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_id", sa.String(64), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("updated_at", UTCDateTime()),
    )
    # The head row exists from the start, so every writer can lock it (SELECT ... FOR UPDATE).
    op.bulk_insert(head, [{"id": 1, "seq": 0, "count": 0, "last_id": "", "last_hash": GENESIS,
                           "key_id": "", "signature": "", "updated_at": None}])


def downgrade() -> None:
    for name in ("aisec_chain_head", "aisec_keys", "aisec_artifacts", "aisec_evidence", "aisec_runs"):
        op.drop_table(name)
