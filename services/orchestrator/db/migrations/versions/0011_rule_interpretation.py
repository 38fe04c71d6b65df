"""A rule the grammar did not understand may be left to the Strategy Analyzer (with a language model):
"propose" or "accept" (accept_interpreted_rules), stored on the execution.

Revision ID: 0011
Revises: 0010
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('strategy_executions', sa.Column('rule_interpretation', sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column('strategy_executions', 'rule_interpretation')
