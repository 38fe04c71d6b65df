"""Re-queue after a dependency outage: retry_at (not claimed before it) and
outage_requeues (bounded by ORCHESTRATOR_OUTAGE_BUDGET_S).

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('strategy_executions') as batch:
        batch.add_column(sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('outage_requeues', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('strategy_executions') as batch:
        batch.drop_column('outage_requeues')
        batch.drop_column('retry_at')
