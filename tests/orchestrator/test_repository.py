"""The orchestrator's persistence on SQLite and PostgreSQL: executions are
stored with their first event, request ids deduplicate, the event log has
gap-free sequences even under concurrent writers, and claims are atomic."""
from __future__ import annotations

import threading

from services.orchestrator.db.repository import Repository


def first_event(row, seq):
    return "EVENT_TYPE_STATUS_CHANGED", "QUEUED", "queued", b"event-1"


def event(n):
    return lambda execution_id, seq: ("EVENT_TYPE_LOG", "ANALYZING", f"line {n}", f"event-{seq}".encode())


def new_execution(repo: Repository, request_id: str = "", user: str = "alice"):
    return repo.create_execution(user, b"params", request_id, None, ("demo", {"nodes": []}), first_event)


def test_an_execution_is_stored_with_its_strategy_and_queued_event(database_url):
    repo = Repository(database_url)
    row, created = new_execution(repo)

    assert created and row.status == "QUEUED"
    assert repo.get_strategy("alice", row.strategy_id).schema_json == {"nodes": []}
    assert [e.sequence for e in repo.events_after(row.id, 0)] == [1]
    assert repo.get_execution(row.id, "bob") is None  # other users do not see it


def test_the_same_request_id_returns_the_same_execution_and_stores_nothing_new(database_url):
    repo = Repository(database_url)
    first, created = new_execution(repo, "req-1")
    again, created_again = new_execution(repo, "req-1")
    other_user, _ = new_execution(repo, "req-1", user="bob")

    assert created and not created_again and again.id == first.id
    assert other_user.id != first.id  # request ids are per user
    assert len(repo.list_executions("alice", "", 50, "")[0]) == 1


def test_concurrent_appends_get_gap_free_unique_sequences(database_url):
    repo = Repository(database_url)
    row, _ = new_execution(repo)

    threads = [threading.Thread(target=lambda n=n: repo.append_event(row.id, event(n))) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [e.sequence for e in repo.events_after(row.id, 0)] == list(range(1, 42))
    assert [e.sequence for e in repo.events_after(row.id, 30)] == list(range(31, 42))


def test_only_one_claim_of_a_queued_execution_wins(database_url):
    repo = Repository(database_url)
    row, _ = new_execution(repo)
    wins = []

    def claim():
        if repo.append_event(row.id, event("claim"), {"status": "ANALYZING"}, expect_status=["QUEUED"]) is not None:
            wins.append(1)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(wins) == 1
    assert repo.get_execution(row.id).status == "ANALYZING"


def test_listing_pages_newest_first_without_overlap(database_url):
    repo = Repository(database_url)
    ids = [new_execution(repo)[0].id for _ in range(7)]

    page1, token = repo.list_executions("alice", "", 3, "")
    page2, token2 = repo.list_executions("alice", "", 3, token)
    page3, token3 = repo.list_executions("alice", "", 3, token2)

    seen = [r.id for r in page1 + page2 + page3]
    assert seen == list(reversed(ids))
    assert token and token2 and token3 == ""


def test_preferences_are_one_row_per_user_and_an_update_keeps_the_fields_it_does_not_set(database_url):
    repo = Repository(database_url)
    assert repo.get_preferences("pat") is None
    repo.set_preferences("pat", {"risk_tolerance": "low", "max_drawdown": 15.0})
    repo.set_preferences("pat", {"preferred_assets": ["SPY", "BTC-USD"]})
    repo.set_preferences("kim", {"max_drawdown": 30.0})

    row = repo.get_preferences("pat")
    assert (row.risk_tolerance, row.max_drawdown, row.preferred_assets) == ("low", 15.0, ["SPY", "BTC-USD"])
    assert repo.get_preferences("kim").risk_tolerance is None
