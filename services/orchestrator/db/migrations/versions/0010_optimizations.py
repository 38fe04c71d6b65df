"""Research mode: executions have a kind; OptimizeStrategy's request and results; the trial ledger.

Revision ID: 0010
Revises: 0009
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('strategy_executions',
                  sa.Column('kind', sa.String(length=16), nullable=False, server_default='backtest'))
    op.create_table(
        'optimizations',
        sa.Column('execution_id', sa.String(length=36), sa.ForeignKey('strategy_executions.id'), primary_key=True),
        sa.Column('request_pb', sa.LargeBinary(), nullable=False),
        sa.Column('sweep_pb', sa.LargeBinary(), nullable=False),
        sa.Column('family', sa.String(length=64), nullable=False),
        sa.Column('summary_pb', sa.LargeBinary(), nullable=True),
        sa.Column('result_pb', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'trial_ledger',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('family', sa.String(length=64), nullable=False),
        sa.Column('combination', sa.String(length=64), nullable=False),
        sa.Column('values_json', sa.JSON(), nullable=False),
        sa.Column('sharpe_ratio', sa.Float(), nullable=True),
        sa.Column('periods_per_year', sa.Integer(), nullable=False),
        sa.Column('execution_id', sa.String(length=36), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('user_id', 'family', 'combination', name='uq_trial'),
    )
    op.create_index('ix_trial_family', 'trial_ledger', ['user_id', 'family'])


def downgrade() -> None:
    op.drop_index('ix_trial_family', table_name='trial_ledger')
    op.drop_table('trial_ledger')
    op.drop_table('optimizations')
    op.drop_column('strategy_executions', 'kind')
