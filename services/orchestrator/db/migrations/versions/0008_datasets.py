"""Users' uploaded daily bars, traded as "@NAME" (DatasetService).

Revision ID: 0008
Revises: 0007
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'datasets',
        sa.Column('id', sa.String(length=36), primary_key=True),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('csv', sa.LargeBinary(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('bars', sa.Integer(), nullable=False),
        sa.Column('first_date', sa.String(length=10), nullable=False),
        sa.Column('last_date', sa.String(length=10), nullable=False),
        sa.Column('has_adj_close', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('user_id', 'name', name='uq_dataset_name'),
    )
    op.create_index('ix_datasets_user_id', 'datasets', ['user_id'])


def downgrade() -> None:
    op.drop_index('ix_datasets_user_id', table_name='datasets')
    op.drop_table('datasets')
