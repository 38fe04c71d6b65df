"""The consistency check of a whole database: did every execution run
exactly once, with an event log a client can trust?

For every execution: its status is terminal and was reached by exactly one
terminal status-change event, the last one (nothing after it); its event
sequences run 1..n without a gap; a COMPLETED execution has exactly one
backtest run, the one the row points at, and its final attempt (the events
after its last claim) ran the sandbox exactly once. Given the sandbox's own
log (``sandbox_runs``: execution id -> "run started" count), no execution
ran the sandbox more often than it was attempted.

    python -m services.orchestrator.consistency DATABASE_URL [SANDBOX_LOG]
"""
from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
import sys

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from services.orchestrator import statuses
from services.orchestrator.db.models import BacktestRun, ExecutionEvent, StrategyExecution
from stratexec.orchestrator.v1 import execution_pb2

STATUS_CHANGED = "EVENT_TYPE_STATUS_CHANGED"
SANDBOX_TOOL = "execute_python_code"


@dataclasses.dataclass
class Report:
    executions: int = 0
    by_status: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    attempts: int = 0  # claims, over all executions
    sandbox_runs: int = 0  # sandbox runs recorded in the event logs (final attempts)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "consistent" if self.ok else f"{len(self.problems)} problems"
        return (f"{self.executions} executions ({dict(self.by_status)}), {self.attempts} attempts, "
                f"{self.sandbox_runs} sandbox runs: {verdict}")


def sandbox_runs_from_log(path: pathlib.Path) -> collections.Counter:
    """Runs the sandbox itself started, per execution id (its JSON log lines "run started")."""
    runs = collections.Counter()
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("msg") == "run started" and entry.get("execution_id"):
                runs[entry["execution_id"]] += 1
    return runs


def _check_one(row: StrategyExecution, events: list[ExecutionEvent], runs: list[BacktestRun], report: Report,
               sandbox_runs: collections.Counter | None) -> None:
    def problem(text: str) -> None:
        report.problems.append(f"{row.id}: {text}")

    report.by_status[row.status] += 1
    sequences = [e.sequence for e in events]
    if sequences != list(range(1, len(events) + 1)):
        problem(f"event sequences are not 1..{len(events)}: {sequences[:5]}...")
    terminal = [i for i, e in enumerate(events) if e.type == STATUS_CHANGED and statuses.is_terminal(e.status)]
    if not statuses.is_terminal(row.status):
        problem(f"not terminal: {row.status}")
    if len(terminal) != 1:
        problem(f"{len(terminal)} terminal status changes")
    elif terminal[0] != len(events) - 1:
        problem(f"{len(events) - 1 - terminal[0]} events after the terminal status {events[terminal[0]].status}")
    elif events[terminal[0]].status != row.status:
        problem(f"the terminal event says {events[terminal[0]].status}, the row {row.status}")

    claims = [i for i, e in enumerate(events) if e.type == STATUS_CHANGED and e.status == "ANALYZING"]
    report.attempts += len(claims)
    if claims and len(claims) != (row.attempts or 0):
        problem(f"{len(claims)} claims in the log, {row.attempts} attempts on the row")
    final_attempt = events[claims[-1]:] if claims else []
    ran = sum(1 for e in final_attempt if e.type == "EVENT_TYPE_AGENT_STEP"
              and execution_pb2.ExecutionEvent.FromString(e.event_pb).agent_step.tool == SANDBOX_TOOL)
    report.sandbox_runs += ran
    if row.status == "COMPLETED":
        if ran != 1:
            problem(f"COMPLETED, but its final attempt ran the sandbox {ran} times")
        if len(runs) != 1 or runs[0].id != row.backtest_run_id:
            problem(f"COMPLETED with {len(runs)} backtest runs (row points at {row.backtest_run_id})")
    elif runs:
        problem(f"{row.status} with {len(runs)} backtest runs")
    if sandbox_runs is not None and sandbox_runs[row.id] > max(len(claims), 1):
        problem(f"the sandbox ran it {sandbox_runs[row.id]} times in {len(claims)} attempts")


def check(database_url: str, sandbox_runs: collections.Counter | None = None) -> Report:
    engine = create_engine(database_url)
    report = Report()
    try:
        with Session(engine) as s:
            events = collections.defaultdict(list)
            for e in s.scalars(select(ExecutionEvent).order_by(ExecutionEvent.execution_id, ExecutionEvent.sequence)):
                events[e.execution_id].append(e)
            runs = collections.defaultdict(list)
            for run in s.scalars(select(BacktestRun)):
                runs[run.execution_id].append(run)
            for row in s.scalars(select(StrategyExecution)):
                report.executions += 1
                _check_one(row, events[row.id], runs[row.id], report, sandbox_runs)
    finally:
        engine.dispose()
    return report


def main(argv: list[str]) -> int:
    sandbox = sandbox_runs_from_log(pathlib.Path(argv[2])) if len(argv) > 2 else None
    report = check(argv[1], sandbox)
    for line in report.problems:
        print(line)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
