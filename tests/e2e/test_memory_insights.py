"""The agents learn across executions: a second run of a similar strategy
surfaces the first one's result in its insights, the user's preferences
are read and conflicts reported, and failures are remembered too."""
from __future__ import annotations

import uuid

import grpc
import pytest

from services.orchestrator import convert
from services.stack import start_stack
from stratexec.memory.v1 import memory_pb2, memory_pb2_grpc
from stratexec.orchestrator.v1 import execution_pb2, preference_pb2, preference_pb2_grpc
from stratexec_cli.client import Client
from tests.e2e.conftest import EXAMPLE, btc_2024

S = execution_pb2


def run_to_end(client: Client, schema, params) -> execution_pb2.Execution:
    execution = client.execute(schema, params)
    list(client.watch(execution.id))
    return client.get(execution.id)


def test_a_second_similar_execution_surfaces_the_first_ones_result(orchestrator_addr):
    client = Client(orchestrator_addr, user=f"learner-{uuid.uuid4().hex[:8]}")
    first = run_to_end(client, EXAMPLE, btc_2024())
    first_return = client.results(first.id).result.metrics.total_return

    eth = btc_2024()
    eth.symbols[:] = ["ETH"]
    second = run_to_end(client, EXAMPLE, eth)

    assert second.status == S.EXECUTION_STATUS_COMPLETED
    findings = second.agent_insights["memory_findings"]
    mine = [f for f in findings if f["metadata"]["execution_id"] == first.id]
    assert mine, findings
    assert abs(mine[0]["metadata"]["total_return"] - first_return) < 1e-3
    assert f"{first_return:.2f}%" in mine[0]["memory"]


def test_the_same_strategy_and_params_update_one_memory_instead_of_adding_another(stack, orchestrator_addr):
    user = f"repeat-{uuid.uuid4().hex[:8]}"
    client = Client(orchestrator_addr, user=user)
    run_to_end(client, EXAMPLE, btc_2024())
    latest = run_to_end(client, EXAMPLE, btc_2024())

    with grpc.insecure_channel(stack["memory"].address) as channel:
        listed = memory_pb2_grpc.MemoryServiceStub(channel).ListMemories(
            memory_pb2.ListMemoriesRequest(user_id=user, page_size=50))
    patterns = [m for m in listed.memories if m.metadata["kind"] == "strategy_pattern"]
    assert len(patterns) == 1
    assert patterns[0].metadata["execution_id"] == latest.id


def test_preferences_are_set_through_the_api_and_conflicts_are_reported(orchestrator_addr):
    user = f"cautious-{uuid.uuid4().hex[:8]}"
    client = Client(orchestrator_addr, user=user)
    with grpc.insecure_channel(orchestrator_addr) as channel:
        prefs = preference_pb2_grpc.PreferenceServiceStub(channel)
        reply = prefs.UpdatePreferences(
            preference_pb2.UpdatePreferencesRequest(preferences=preference_pb2.Preferences(
                risk_tolerance=preference_pb2.RISK_TOLERANCE_LOW, max_drawdown=5, preferred_assets=["SPY"])),
            metadata=(("x-user-id", user),))
        assert reply.preferences.max_drawdown == 5 and list(reply.preferences.preferred_assets) == ["SPY"]

    execution = run_to_end(client, EXAMPLE, btc_2024())  # BTC, whose drawdown exceeds 5%

    insights = execution.agent_insights
    assert insights["preferences"]["risk_tolerance"] == "low"
    conflicts = " | ".join(insights["preference_conflicts"])
    assert "BTC-USD not among your preferred assets (SPY)" in conflicts
    assert "this backtest's max drawdown" in conflicts
    warnings = [e.log.message for e in client.watch(execution.id) if e.type == S.EVENT_TYPE_LOG]
    assert any(w.startswith("preference conflict:") for w in warnings)


def test_preferences_live_in_sql_and_ones_an_older_release_kept_in_memory_are_copied_once(stack, orchestrator_addr):
    user = f"veteran-{uuid.uuid4().hex[:8]}"
    who = (("x-user-id", user),)
    with grpc.insecure_channel(stack["memory"].address) as channel:  # as an older orchestrator stored them
        memory = memory_pb2_grpc.MemoryServiceStub(channel)
        legacy = memory.AddMemory(memory_pb2.AddMemoryRequest(
            messages=[memory_pb2.MemoryMessage(role="user", content="User preference: maximum drawdown 12%")],
            user_id=user, metadata=convert.struct({"kind": "preference", "memory_key": "preference:max_drawdown",
                                                   "max_drawdown": 12}), infer=False))
        with grpc.insecure_channel(orchestrator_addr) as orchestrator:
            prefs = preference_pb2_grpc.PreferenceServiceStub(orchestrator)
            assert prefs.GetPreferences(preference_pb2.GetPreferencesRequest(), metadata=who).preferences.max_drawdown == 12

            for m in legacy.memories:  # memory forgets it: SQL has it now
                memory.DeleteMemory(memory_pb2.DeleteMemoryRequest(memory_id=m.id, user_id=user))
            updated = prefs.UpdatePreferences(preference_pb2.UpdatePreferencesRequest(
                preferences=preference_pb2.Preferences(preferred_assets=["ETH"])), metadata=who).preferences
            assert updated.max_drawdown == 12 and list(updated.preferred_assets) == ["ETH-USD"]
            assert prefs.GetPreferences(preference_pb2.GetPreferencesRequest(), metadata=who).preferences == updated

        texts = [m.content for m in memory.ListMemories(memory_pb2.ListMemoriesRequest(user_id=user)).memories]
    assert any("preferred assets ETH-USD" in t for t in texts)  # memory keeps the text, for search


@pytest.fixture(scope="module")
def impatient_stack(tmp_path_factory):
    """A sandbox whose runs time out at once: every execution fails inside the sandbox."""
    services = start_stack(tmp_path_factory.mktemp("impatient"),
                           env={"SANDBOX_MODE": "fresh", "SANDBOX_DEFAULT_TIMEOUT_SECONDS": "0.5"})
    yield services
    for svc in reversed(list(services.values())):
        svc.stop()


@pytest.mark.slow
def test_a_failed_execution_is_remembered_with_its_reason(impatient_stack):
    user = f"unlucky-{uuid.uuid4().hex[:8]}"
    client = Client(impatient_stack["orchestrator"].address, user=user)

    execution = run_to_end(client, EXAMPLE, btc_2024())

    assert execution.status == S.EXECUTION_STATUS_FAILED
    assert "TIMED_OUT" in execution.error_message
    with grpc.insecure_channel(impatient_stack["memory"].address) as channel:
        listed = memory_pb2_grpc.MemoryServiceStub(channel).ListMemories(memory_pb2.ListMemoriesRequest(user_id=user))
    failed = [m for m in listed.memories if m.metadata["outcome"] == "failed"]
    assert len(failed) == 1 and "TIMED_OUT" in failed[0].metadata["failure_reason"]
