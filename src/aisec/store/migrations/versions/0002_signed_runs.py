"""Run fields inside the signatures: signed run hashes, record metadata signatures, origin links, head runs digest.

Every new column is nullable: a store written before this revision keeps its rows as they are, and
``verify`` reports it as "legacy, run fields unsigned" until the first write signs what it holds.

Revision ID: 0002
Revises: 0001
Create Date: 2027-01-18
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("aisec_runs") as batch:
        batch.add_column(sa.Column("run_hash", sa.String(64)))
        batch.add_column(sa.Column("key_id", sa.String(32)))
        batch.add_column(sa.Column("signature", sa.String(128)))
    with op.batch_alter_table("aisec_evidence") as batch:
        batch.add_column(sa.Column("origin", sa.Text()))
        batch.add_column(sa.Column("meta_key_id", sa.String(32)))
        batch.add_column(sa.Column("meta_signature", sa.String(128)))
    with op.batch_alter_table("aisec_chain_head") as batch:
        batch.add_column(sa.Column("runs_digest", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("aisec_chain_head") as batch:
        batch.drop_column("runs_digest")
    with op.batch_alter_table("aisec_evidence") as batch:
        for col in ("meta_signature", "meta_key_id", "origin"):
            batch.drop_column(col)
    with op.batch_alter_table("aisec_runs") as batch:
        for col in ("signature", "key_id", "run_hash"):
            batch.drop_column(col)
