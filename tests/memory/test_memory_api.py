"""MemoryService over gRPC against a real server process: add, search,
scoping, delete, paging, de-duplication and bad input."""
from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.memory.memory_helpers import add, error_reason, field_violations, list_all, search, struct

from stratexec.memory.v1 import memory_pb2

RSI = "RSI(14) below 30 entry on BTC daily, exit at RSI 70: total return 18.2%, max drawdown -9.5%"
MA = "Enter on a 5% price drop from the 20-day moving average on ETH: total return 7.1%, 12 trades"
PREF = "The user prefers low risk: maximum drawdown 10%, trades BTC and ETH only"


def test_health_is_serving(memory_service):
    with grpc.insecure_channel(memory_service.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "stratexec.memory.v1.MemoryService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_add_returns_the_stored_memory(stub, user_id):
    [memory] = add(stub, user_id, RSI, kind="strategy_note", asset="BTC", trades=12)
    assert memory.id and memory.user_id == user_id and memory.content == RSI
    assert memory.created_at.startswith("20")
    assert dict(memory.metadata) == {"kind": "strategy_note", "asset": "BTC", "trades": 12}


def test_search_finds_the_added_memory_with_score_and_metadata(stub, user_id):
    add(stub, user_id, RSI, kind="strategy_note", asset="BTC")
    [ma] = add(stub, user_id, MA, kind="strategy_note", asset="ETH")
    add(stub, user_id, PREF, kind="preference")
    found = search(stub, user_id, "buy ETH when price falls below its moving average", limit=3)
    assert found[0].id == ma.id
    assert found[0].content == MA
    assert 0.0 < found[0].score <= 1.0
    assert found[0].metadata["asset"] == "ETH"
    assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)


def test_search_filters_on_metadata(stub, user_id):
    add(stub, user_id, RSI, kind="strategy_note", asset="BTC")
    add(stub, user_id, PREF, kind="preference")
    prefs = search(stub, user_id, "RSI entry on bitcoin", kind="preference")
    assert [m.content for m in prefs] == [PREF]
    any_of = search(stub, user_id, "RSI entry on bitcoin", kind=["preference", "strategy_note"])
    assert {m.content for m in any_of} == {RSI, PREF}


def test_search_threshold_drops_weak_matches(stub, user_id):
    add(stub, user_id, RSI)
    assert search(stub, user_id, "RSI below 30 entry on BTC", threshold=0.0)
    assert search(stub, user_id, "chocolate cake recipe with strawberries", threshold=0.9) == []


def test_user_never_sees_another_users_memories(stub):
    alice, bob = f"alice-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    [a] = add(stub, alice, RSI, kind="strategy_note")
    [b] = add(stub, bob, RSI.replace("BTC", "BTC-USD"), kind="strategy_note")
    for query in ("RSI below 30 entry on BTC", "moving average", "anything at all"):
        for who, own, other in ((alice, a, b), (bob, b, a)):
            ids = {m.id for m in search(stub, who, query, limit=50)}
            assert own.id in ids and other.id not in ids
            assert {m.user_id for m in search(stub, who, query, limit=50)} == {who}
    assert [m.id for m in list_all(stub, alice)] == [a.id]
    assert [m.id for m in list_all(stub, bob)] == [b.id]


def test_system_templates_are_visible_to_every_user_when_asked_for(stub, user_id):
    templates = search(stub, user_id, "enter on a price drop below the moving average", limit=10, kind="code_template")
    assert templates, "the seeded code templates should be found"
    assert {m.user_id for m in templates} == {"system"}
    assert templates[0].metadata["rule_family"] == "ma_deviation_entry"
    # without asking for templates, a user's search stays within the user's own memories
    assert search(stub, user_id, "enter on a price drop below the moving average", limit=10) == []
    # and a user's own list never includes them
    assert list_all(stub, user_id) == []


def test_own_templates_rank_together_with_system_templates(stub, user_id):
    [mine] = add(stub, user_id, "My code template: ATR trailing stop at 3x ATR(14) for long positions",
                 kind="code_template")
    found = search(stub, user_id, "ATR trailing stop", limit=10, kind="code_template")
    assert found[0].id == mine.id
    assert {m.user_id for m in found} == {user_id, "system"}


def test_delete_removes_the_memory(stub, user_id):
    [keep] = add(stub, user_id, PREF)
    [gone] = add(stub, user_id, RSI)
    stub.DeleteMemory(memory_pb2.DeleteMemoryRequest(memory_id=gone.id, user_id=user_id), timeout=30)
    assert [m.id for m in list_all(stub, user_id)] == [keep.id]
    assert gone.id not in {m.id for m in search(stub, user_id, RSI, limit=10)}
    with pytest.raises(grpc.RpcError) as err:
        stub.DeleteMemory(memory_pb2.DeleteMemoryRequest(memory_id=gone.id, user_id=user_id), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_delete_of_another_users_memory_is_not_found_and_keeps_it(stub, user_id):
    [theirs] = add(stub, user_id, RSI)
    with pytest.raises(grpc.RpcError) as err:
        stub.DeleteMemory(memory_pb2.DeleteMemoryRequest(memory_id=theirs.id, user_id="mallory"), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(err.value) == "MEMORY_NOT_FOUND"
    assert [m.id for m in list_all(stub, user_id)] == [theirs.id]


@pytest.mark.parametrize("memory_id", ["6f1c2a9e-3b7d-4c55-9e21-0d8a4f6b2c13", "not-a-uuid"])  # a fixed id: xdist workers collect alike
def test_delete_of_unknown_id_is_not_found(stub, user_id, memory_id):
    with pytest.raises(grpc.RpcError) as err:
        stub.DeleteMemory(memory_pb2.DeleteMemoryRequest(memory_id=memory_id, user_id=user_id), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_pages_in_creation_order_without_gaps_or_repeats(stub, user_id):
    added = [add(stub, user_id, f"memory number {i} about strategy {i}")[0] for i in range(7)]
    pages, token = [], ""
    while True:
        reply = stub.ListMemories(memory_pb2.ListMemoriesRequest(user_id=user_id, page_size=3, page_token=token), timeout=30)
        pages.append([m.id for m in reply.memories])
        token = reply.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == [m.id for m in added]


def test_list_token_survives_deletes_and_adds_between_pages(stub, user_id):
    added = [add(stub, user_id, f"note {i}")[0] for i in range(4)]
    first = stub.ListMemories(memory_pb2.ListMemoriesRequest(user_id=user_id, page_size=2), timeout=30)
    assert [m.id for m in first.memories] == [added[0].id, added[1].id]
    stub.DeleteMemory(memory_pb2.DeleteMemoryRequest(memory_id=added[1].id, user_id=user_id), timeout=30)
    [late] = add(stub, user_id, "note added while paging")
    rest = list_all_from(stub, user_id, first.next_page_token)
    assert rest == [added[2].id, added[3].id, late.id]


def list_all_from(stub, user_id, token):
    out = []
    while token:
        reply = stub.ListMemories(memory_pb2.ListMemoriesRequest(user_id=user_id, page_size=2, page_token=token), timeout=30)
        out.extend(m.id for m in reply.memories)
        token = reply.next_page_token
    return out


def test_strategy_pattern_with_same_strategy_and_params_is_updated_not_duplicated(stub, user_id):
    strategy = {"nodes": [{"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter on 20-day MA crossover"]}}]}
    params = {"symbols": ["BTC"], "start_date": "2024-01-01", "end_date": "2024-12-31"}
    [first] = add(stub, user_id, "MA crossover on BTC 2024: failed, no data", kind="strategy_pattern",
                  strategy=strategy, params=params, outcome="failed", failure_reason="no data")
    [second] = add(stub, user_id, "MA crossover on BTC 2024: total return 21.3%", kind="strategy_pattern",
                   strategy=strategy, params=params, outcome="completed", total_return=21.3)
    assert second.id == first.id
    assert second.created_at == first.created_at
    assert second.metadata["outcome"] == "completed"
    assert "failure_reason" not in second.metadata  # replaced, not merged
    [stored] = list_all(stub, user_id)
    assert stored.content == "MA crossover on BTC 2024: total return 21.3%"
    assert stored.metadata["memory_key"] == first.metadata["memory_key"]
    # other params: a different pattern
    [third] = add(stub, user_id, "MA crossover on BTC 2023", kind="strategy_pattern",
                  strategy=strategy, params={**params, "start_date": "2023-01-01"})
    assert third.id != first.id
    assert len(list_all(stub, user_id)) == 2


def test_explicit_memory_key_updates_in_place(stub, user_id):
    [first] = add(stub, user_id, "risk tolerance: medium", kind="preference", memory_key="pref:risk")
    [second] = add(stub, user_id, "risk tolerance: low", kind="preference", memory_key="pref:risk")
    assert second.id == first.id
    assert [m.content for m in list_all(stub, user_id)] == ["risk tolerance: low"]
    [top] = search(stub, user_id, "what risk does the user accept", limit=1)
    assert top.content == "risk tolerance: low"


def test_infer_without_a_language_model_is_failed_precondition(stub, user_id):
    request = memory_pb2.AddMemoryRequest(user_id=user_id, infer=True,
                                          messages=[memory_pb2.MemoryMessage(role="user", content=PREF)])
    with pytest.raises(grpc.RpcError) as err:
        stub.AddMemory(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(err.value) == "LLM_NOT_CONFIGURED"
    assert list_all(stub, user_id) == []


def test_every_message_is_stored_including_system_role(stub, user_id):
    request = memory_pb2.AddMemoryRequest(user_id=user_id, messages=[
        memory_pb2.MemoryMessage(role="system", content="system note: BTC data starts 2014"),
        memory_pb2.MemoryMessage(role="assistant", content="assistant note: backtest done"),
        memory_pb2.MemoryMessage(content="no role means user"),
    ])
    stored = stub.AddMemory(request, timeout=30).memories
    assert [m.content for m in stored] == ["system note: BTC data starts 2014", "assistant note: backtest done",
                                           "no role means user"]


def _msgs(*contents):
    return [memory_pb2.MemoryMessage(role="user", content=c) for c in contents]


BAD_REQUESTS = [
    ("AddMemory", memory_pb2.AddMemoryRequest(user_id="u1"), {"messages"}),
    ("AddMemory", memory_pb2.AddMemoryRequest(user_id="", messages=_msgs("x")), {"user_id"}),
    ("AddMemory", memory_pb2.AddMemoryRequest(user_id="has space", messages=_msgs("x")), {"user_id"}),
    ("AddMemory", memory_pb2.AddMemoryRequest(user_id="u1", messages=_msgs("ok", "   ")), {"messages[1].content"}),
    ("AddMemory", memory_pb2.AddMemoryRequest(user_id="u1", messages=_msgs("x" * 40_000)), {"messages[0].content"}),
    ("AddMemory", memory_pb2.AddMemoryRequest(user_id="u1", messages=[memory_pb2.MemoryMessage(role="robot", content="x")]),
     {"messages[0].role"}),
    ("AddMemory", memory_pb2.AddMemoryRequest(user_id="u1", messages=_msgs("x"), metadata=struct(user_id="u2")),
     {"metadata.user_id"}),
    ("AddMemory", memory_pb2.AddMemoryRequest(user_id="u1", messages=_msgs("x"), metadata=struct(blob="y" * 20_000)),
     {"metadata"}),
    ("AddMemory", memory_pb2.AddMemoryRequest(user_id="system", messages=_msgs("x"), metadata=struct(kind="preference")),
     {"metadata.kind"}),
    ("AddMemory", memory_pb2.AddMemoryRequest(user_id="u1", messages=_msgs("a", "b"), metadata=struct(memory_key="k")),
     {"messages"}),
    ("SearchMemories", memory_pb2.SearchMemoriesRequest(user_id="u1", query=""), {"query"}),
    ("SearchMemories", memory_pb2.SearchMemoriesRequest(user_id="", query="q"), {"user_id"}),
    ("SearchMemories", memory_pb2.SearchMemoriesRequest(user_id="u1", query="q", limit=1000), {"limit"}),
    ("SearchMemories", memory_pb2.SearchMemoriesRequest(user_id="u1", query="q", limit=-1), {"limit"}),
    ("SearchMemories", memory_pb2.SearchMemoriesRequest(user_id="u1", query="q", threshold=1.5), {"threshold"}),
    ("SearchMemories", memory_pb2.SearchMemoriesRequest(user_id="u1", query="q", filters=struct(kind={"$ne": "x"})),
     {"filters.kind"}),
    ("SearchMemories", memory_pb2.SearchMemoriesRequest(user_id="u1", query="q", filters=struct(score=0.5)),
     {"filters.score"}),
    ("SearchMemories", memory_pb2.SearchMemoriesRequest(user_id="u1", query="q", filters=struct(kind=[])),
     {"filters.kind"}),
    ("SearchMemories", memory_pb2.SearchMemoriesRequest(user_id="u1", query="q", filters=struct(kind=["a", 1])),
     {"filters.kind"}),
    ("SearchMemories", memory_pb2.SearchMemoriesRequest(user_id="u1", query="q", filters=struct(user_id="u2")),
     {"filters.user_id"}),
    ("ListMemories", memory_pb2.ListMemoriesRequest(user_id=""), {"user_id"}),
    ("ListMemories", memory_pb2.ListMemoriesRequest(user_id="u1", page_size=-1), {"page_size"}),
    ("ListMemories", memory_pb2.ListMemoriesRequest(user_id="u1", page_size=10_000), {"page_size"}),
    ("ListMemories", memory_pb2.ListMemoriesRequest(user_id="u1", page_token="garbage!"), {"page_token"}),
    ("DeleteMemory", memory_pb2.DeleteMemoryRequest(user_id="u1"), {"memory_id"}),
    ("DeleteMemory", memory_pb2.DeleteMemoryRequest(memory_id=str(uuid.uuid4())), {"user_id"}),
]


@pytest.mark.parametrize("method,request_,fields", BAD_REQUESTS,
                         ids=[f"{m}-{'+'.join(sorted(f))}-{i}" for i, (m, _, f) in enumerate(BAD_REQUESTS)])
def test_bad_input_is_invalid_argument_with_field_violations(stub, method, request_, fields):
    with pytest.raises(grpc.RpcError) as err:
        getattr(stub, method)(request_, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(err.value)
    assert set(violations) == fields, violations
    assert all(violations.values())


def test_page_token_of_another_user_is_rejected(stub, user_id):
    for i in range(3):
        add(stub, user_id, f"entry {i}")
    token = stub.ListMemories(memory_pb2.ListMemoriesRequest(user_id=user_id, page_size=1), timeout=30).next_page_token
    assert token
    with pytest.raises(grpc.RpcError) as err:
        stub.ListMemories(memory_pb2.ListMemoriesRequest(user_id="someone-else", page_size=1, page_token=token), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(err.value)) == {"page_token"}


def test_bad_input_stores_nothing(stub, user_id):
    request = memory_pb2.AddMemoryRequest(user_id=user_id, messages=_msgs("fine", ""))
    with pytest.raises(grpc.RpcError):
        stub.AddMemory(request, timeout=30)
    assert list_all(stub, user_id) == []


def test_marking_a_seeded_template_tested_updates_it_in_place(stub):
    [seeded] = [m for m in list_all(stub, "system") if m.metadata["rule_family"] == "take_profit"]
    assert seeded.metadata["tested"] is False
    metadata = {**dict(seeded.metadata), "tested": True, "params": dict(seeded.metadata["params"])}
    [marked] = add(stub, "system", seeded.content, **metadata)
    assert marked.id == seeded.id and marked.metadata["tested"] is True
    assert [m.id for m in list_all(stub, "system")].count(seeded.id) == 1
    assert len(list_all(stub, "system")) == 4


def test_get_reads_own_memories_and_system_templates_but_not_other_users(stub, user_id):
    mine = add(stub, user_id, "RSI mean reversion on ETH worked in 2023", kind="strategy_note")[0]

    got = stub.GetMemory(memory_pb2.GetMemoryRequest(memory_id=mine.id, user_id=user_id)).memory
    assert (got.id, got.content, got.metadata["kind"]) == (mine.id, mine.content, "strategy_note")

    template = search(stub, user_id, "stop loss code template", kind="code_template")[0]
    assert template.user_id == "system"
    assert stub.GetMemory(memory_pb2.GetMemoryRequest(memory_id=template.id, user_id=user_id)).memory.id == template.id

    with pytest.raises(grpc.RpcError) as other:
        stub.GetMemory(memory_pb2.GetMemoryRequest(memory_id=mine.id, user_id=f"{user_id}-other"))
    assert other.value.code() == grpc.StatusCode.NOT_FOUND


def test_update_replaces_content_or_metadata_as_the_mask_says_and_search_sees_it(stub, user_id):
    memory = add(stub, user_id, "Likes breakout strategies on SPY", kind="note", source="chat")[0]

    only_content = stub.UpdateMemory(memory_pb2.UpdateMemoryRequest(
        memory_id=memory.id, user_id=user_id, content="Prefers Bollinger Band mean reversion on gold",
        update_mask=field_mask_pb2.FieldMask(paths=["content"]))).memory
    assert only_content.content.startswith("Prefers Bollinger") and only_content.metadata["source"] == "chat"
    assert only_content.id == memory.id and only_content.created_at == memory.created_at

    found = search(stub, user_id, "bollinger bands reversion gold", limit=1)
    assert found[0].id == memory.id

    both = stub.UpdateMemory(memory_pb2.UpdateMemoryRequest(
        memory_id=memory.id, user_id=user_id, content="Prefers trend following", metadata=struct(kind="note"))).memory
    assert both.content == "Prefers trend following" and "source" not in both.metadata

    with pytest.raises(grpc.RpcError) as foreign:
        stub.UpdateMemory(memory_pb2.UpdateMemoryRequest(memory_id=memory.id, user_id=f"{user_id}-other", content="x"))
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad:
        stub.UpdateMemory(memory_pb2.UpdateMemoryRequest(memory_id=memory.id, user_id=user_id, content=" ",
                                                         update_mask=field_mask_pb2.FieldMask(paths=["content", "colour"])))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad.value)) == {"content", "update_mask"}
