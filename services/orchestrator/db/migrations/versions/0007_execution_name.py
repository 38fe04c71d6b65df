"""Executions get an optional name, given on the request and shown in lists.

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('strategy_executions', sa.Column('name', sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column('strategy_executions', 'name')
