"""Fair claiming on SQLite and PostgreSQL: round robin across users (the
user with the fewest running executions goes first, so one user's long
queue never holds another's back), and a per-user concurrency limit."""
from __future__ import annotations

from services.orchestrator.db.repository import Repository
from tests.orchestrator.test_repository import new_execution


def claim(repo: Repository, user_limit: int = 0):
    claimed = repo.claim_next(lambda eid, seq: ("EVENT_TYPE_STATUS_CHANGED", "ANALYZING", "claimed", b"c"),
                              {"status": "ANALYZING"}, user_limit=user_limit)
    return None if claimed is None else claimed[1]


def test_a_long_queue_of_one_user_does_not_hold_another_user_back(database_url):
    repo = Repository(database_url)
    alice = [new_execution(repo, user="alice")[0].id for _ in range(5)]
    bob = new_execution(repo, user="bob")[0].id  # submitted after all of alice's

    order = [claim(repo).id for _ in range(3)]

    assert order == [alice[0], bob, alice[1]]  # not alice's five first
    assert repo.queued_count("alice") == 3 and repo.queued_count("bob") == 0


def test_a_user_at_the_concurrency_limit_gets_nothing_more_until_one_ends(database_url):
    repo = Repository(database_url)
    first = new_execution(repo, user="alice")[0].id
    new_execution(repo, user="alice")

    assert claim(repo, user_limit=1).id == first
    assert claim(repo, user_limit=1) is None  # alice already runs one; nobody else waits
    repo.append_event(first, lambda eid, seq: ("EVENT_TYPE_STATUS_CHANGED", "COMPLETED", "done", b"d"),
                      {"status": "COMPLETED"})
    assert claim(repo, user_limit=1) is not None
