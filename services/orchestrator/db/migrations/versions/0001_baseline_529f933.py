"""Baseline: the schema create_all made at commit 529f933, before migrations.

A database made by that code has these tables and no alembic_version:
services.orchestrator.db.migrate stamps it at this revision, then upgrades.

Revision ID: 0001
Revises: (none)
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('strategies',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('schema_json', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_strategies_user_id'), 'strategies', ['user_id'], unique=False)

    op.create_table('strategy_executions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('strategy_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('params_pb', sa.LargeBinary(), nullable=False),
    sa.Column('generated_code', sa.Text(), nullable=True),
    sa.Column('code_sha256', sa.String(length=64), nullable=True),
    sa.Column('execution_logs', sa.JSON(), nullable=False),
    sa.Column('backtest_run_id', sa.String(length=36), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('error_pb', sa.LargeBinary(), nullable=True),
    sa.Column('agent_insights', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.String(length=64), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['strategy_id'], ['strategies.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'request_id', name='uq_execution_request')
    )
    op.create_index('ix_execution_status_created', 'strategy_executions', ['status', 'created_at'], unique=False)
    op.create_index(op.f('ix_strategy_executions_strategy_id'), 'strategy_executions', ['strategy_id'], unique=False)
    op.create_index(op.f('ix_strategy_executions_user_id'), 'strategy_executions', ['user_id'], unique=False)

    op.create_table('backtest_runs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('execution_id', sa.String(length=36), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('result_pb', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['execution_id'], ['strategy_executions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('execution_id')
    )
    op.create_table('execution_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('execution_id', sa.String(length=36), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('event_pb', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['execution_id'], ['strategy_executions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('execution_id', 'sequence', name='uq_event_sequence')
    )
    op.create_index(op.f('ix_execution_events_execution_id'), 'execution_events', ['execution_id'], unique=False)



def downgrade() -> None:
    op.drop_index(op.f('ix_execution_events_execution_id'), table_name='execution_events')

    op.drop_table('execution_events')
    op.drop_table('backtest_runs')
    op.drop_index(op.f('ix_strategy_executions_user_id'), table_name='strategy_executions')
    op.drop_index(op.f('ix_strategy_executions_strategy_id'), table_name='strategy_executions')
    op.drop_index('ix_execution_status_created', table_name='strategy_executions')

    op.drop_table('strategy_executions')
    op.drop_index(op.f('ix_strategies_user_id'), table_name='strategies')

    op.drop_table('strategies')
