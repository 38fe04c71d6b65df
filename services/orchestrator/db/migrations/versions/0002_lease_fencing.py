"""Execution lease fencing, and the rules the database itself enforces.

- strategy_executions.lease_token: new at every claim; every write of that
  attempt must present it (services/orchestrator/db/repository.py).
- No event is appended to an execution after its terminal status change.
- A terminal status is final (the row never leaves COMPLETED, FAILED or CANCELLED).

Triggers on PostgreSQL and SQLite; a violation raises an IntegrityError
whose message contains GUARD_MARK (services/orchestrator/db/guards.py).

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

GUARD_MARK = "stratexec guard"
_TERMINAL = "('COMPLETED', 'FAILED', 'CANCELLED')"
_ENDED = (f"SELECT 1 FROM execution_events WHERE execution_id = NEW.execution_id "
          f"AND type = 'EVENT_TYPE_STATUS_CHANGED' AND status IN {_TERMINAL}")

_POSTGRES = [
    f"""CREATE OR REPLACE FUNCTION stratexec_no_event_after_terminal() RETURNS trigger AS $$
BEGIN
  -- appends of one execution are serialised on its row, so the check below sees every committed event
  PERFORM 1 FROM strategy_executions WHERE id = NEW.execution_id FOR UPDATE;
  IF EXISTS ({_ENDED}) THEN
    RAISE EXCEPTION '{GUARD_MARK}: execution % already ended, no event after its terminal status', NEW.execution_id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS stratexec_no_event_after_terminal ON execution_events",
    """CREATE TRIGGER stratexec_no_event_after_terminal BEFORE INSERT ON execution_events
FOR EACH ROW EXECUTE FUNCTION stratexec_no_event_after_terminal()""",
    f"""CREATE OR REPLACE FUNCTION stratexec_terminal_is_final() RETURNS trigger AS $$
BEGIN
  IF OLD.status IN {_TERMINAL} AND NEW.status IS DISTINCT FROM OLD.status THEN
    RAISE EXCEPTION '{GUARD_MARK}: execution % is %, a terminal status is final', OLD.id, OLD.status
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS stratexec_terminal_is_final ON strategy_executions",
    """CREATE TRIGGER stratexec_terminal_is_final BEFORE UPDATE OF status ON strategy_executions
FOR EACH ROW EXECUTE FUNCTION stratexec_terminal_is_final()""",
]

_SQLITE = [
    f"""CREATE TRIGGER IF NOT EXISTS stratexec_no_event_after_terminal BEFORE INSERT ON execution_events
WHEN EXISTS ({_ENDED})
BEGIN SELECT RAISE(ABORT, '{GUARD_MARK}: no event after a terminal status'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS stratexec_terminal_is_final BEFORE UPDATE OF status ON strategy_executions
WHEN OLD.status IN {_TERMINAL} AND NEW.status IS NOT OLD.status
BEGIN SELECT RAISE(ABORT, '{GUARD_MARK}: a terminal status is final'); END""",
]



def upgrade() -> None:
    with op.batch_alter_table('strategy_executions') as batch:
        batch.add_column(sa.Column('lease_token', sa.String(length=36), nullable=True))
    for statement in _POSTGRES if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS stratexec_no_event_after_terminal ON execution_events")
        op.execute("DROP TRIGGER IF EXISTS stratexec_terminal_is_final ON strategy_executions")
        op.execute("DROP FUNCTION IF EXISTS stratexec_no_event_after_terminal()")
        op.execute("DROP FUNCTION IF EXISTS stratexec_terminal_is_final()")
    else:
        op.execute("DROP TRIGGER IF EXISTS stratexec_no_event_after_terminal")
        op.execute("DROP TRIGGER IF EXISTS stratexec_terminal_is_final")
    with op.batch_alter_table('strategy_executions') as batch:
        batch.drop_column('lease_token')
