"""Preferences in SQL: one row per user (they were memories found by a
semantic search with a fixed query; memory keeps their text for search).
Users whose preferences are still only in memory are copied over on first
read (services/orchestrator/preferences.py).

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'user_preferences',
        sa.Column('user_id', sa.String(length=128), primary_key=True),
        sa.Column('risk_tolerance', sa.String(length=16), nullable=True),
        sa.Column('max_drawdown', sa.Float(), nullable=True),
        sa.Column('preferred_assets', sa.JSON(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('user_preferences')
