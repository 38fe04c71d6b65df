"""The trial ledger on SQLite and PostgreSQL: each distinct combination of a user's strategy family on one
data window counts once, whichever execution ran it and however often; other families and users apart."""
from __future__ import annotations

import math

from services.orchestrator.db.repository import Repository
from services.orchestrator.research.sweep_jobs import combination_sha

NAMES = ["entry.window", "tp.target_pct"]


def trials(*combos, sharpe: float | None = 1.0):
    return [(combination_sha(NAMES, c), dict(zip(NAMES, c)), sharpe, 365) for c in combos]


def test_a_combination_counts_once_across_executions(database_url):
    repo = Repository(database_url)
    repo.record_trials("alice", "family-a", "exec-1", "sweep", trials((10, 4), (10, 7), (20, 4)))
    repo.record_trials("alice", "family-a", "exec-2", "sweep", trials((10, 7), (20, 4), (30, 4)))  # two seen before
    repo.record_trials("alice", "family-a", "exec-2", "model", trials((30, 4)))  # run again: still one trial

    count, sharpes = repo.trials("alice", "family-a")
    assert count == 4
    assert sharpes == [1.0 / math.sqrt(365)] * 4  # per bar, as the DSR reads them


def test_families_and_users_have_ledgers_of_their_own_and_undefined_sharpes_are_counted_but_not_averaged(database_url):
    repo = Repository(database_url)
    repo.record_trials("alice", "family-a", "exec-1", "sweep", trials((10, 4)))
    repo.record_trials("alice", "family-b", "exec-3", "sweep", trials((10, 4), (20, 4), sharpe=None))
    repo.record_trials("bob", "family-a", "exec-4", "sweep", trials((10, 4), (20, 4), (30, 4)))

    assert repo.trials("alice", "family-a") == (1, [1.0 / math.sqrt(365)])
    assert repo.trials("alice", "family-b") == (2, [])
    assert repo.trials("bob", "family-a")[0] == 3
    assert repo.trials("carol", "family-a") == (0, [])


def test_a_large_sweep_is_recorded_in_one_call(database_url):
    repo = Repository(database_url)
    repo.record_trials("alice", "big", "exec-1", "sweep", trials(*[(w, t) for w in range(1, 121) for t in range(1, 101)]))
    assert repo.trials("alice", "big")[0] == 12_000
