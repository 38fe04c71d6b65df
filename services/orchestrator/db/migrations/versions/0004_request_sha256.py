"""strategy_executions.request_sha256: the digest of the request a request_id was first used with.

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows from before have no digest (NULL): a retry of one of them is accepted as before.
    with op.batch_alter_table("strategy_executions") as batch:
        batch.add_column(sa.Column("request_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("strategy_executions") as batch:
        batch.drop_column("request_sha256")
