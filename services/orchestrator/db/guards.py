"""Rules the database itself enforces, whatever code writes to it (triggers
on PostgreSQL and SQLite, made by migration 0002_lease_fencing):

- no event is appended to an execution after its terminal status change;
- a terminal status is final (the row never leaves COMPLETED, FAILED or CANCELLED).

A violation raises an IntegrityError whose message contains ``GUARD_MARK``.
"""
from __future__ import annotations

GUARD_MARK = "stratexec guard"  # as written into the triggers by migration 0002


def is_violation(exc: Exception) -> bool:
    return GUARD_MARK in str(getattr(exc, "orig", exc))
