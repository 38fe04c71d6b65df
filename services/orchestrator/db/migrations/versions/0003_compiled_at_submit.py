"""The execution's one compilation, made at submit.

- strategy_executions.compiled_pb: the codegen GenerateCodeResponse (analysis,
  code and its sha256) of ExecuteStrategy; the crew's analyze and generate
  tools read it instead of compiling the schema again. NULL for executions
  submitted before this revision (their tools call codegen, as before).

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('strategy_executions') as batch:
        batch.add_column(sa.Column('compiled_pb', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('strategy_executions') as batch:
        batch.drop_column('compiled_pb')
