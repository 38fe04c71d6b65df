"""Users' saved custom indicators, usable by name in later strategies (IndicatorService).

Revision ID: 0009
Revises: 0008
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'saved_indicators',
        sa.Column('id', sa.String(length=36), primary_key=True),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('expression', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('user_id', 'name', name='uq_saved_indicator_name'),
    )
    op.create_index('ix_saved_indicators_user_id', 'saved_indicators', ['user_id'])


def downgrade() -> None:
    op.drop_index('ix_saved_indicators_user_id', table_name='saved_indicators')
    op.drop_table('saved_indicators')
