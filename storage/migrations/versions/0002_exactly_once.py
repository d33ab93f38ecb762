"""exactly once: pending jobs with idempotency keys, outbox message refs, event claims

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 20:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column(
            "provider_job_id", existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=True
        )
        batch_op.add_column(
            sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.add_column(sa.Column("request", sa.JSON(), nullable=True))
        batch_op.create_index("ix_jobs_idempotency_key", ["idempotency_key"], unique=True)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_ref", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("posting_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("seen_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("done_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    # Events recorded before this revision were marked on receipt: count them as handled.
    op.execute("UPDATE seen_events SET done_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("seen_events", schema=None) as batch_op:
        batch_op.drop_column("done_at")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("posting_since")
        batch_op.drop_column("message_ref")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_idempotency_key")
        batch_op.drop_column("request")
        batch_op.drop_column("idempotency_key")
        batch_op.alter_column(
            "provider_job_id", existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False
        )
