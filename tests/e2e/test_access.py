"""Identity and access: bearer tokens map to users, users see only their
own executions, and the internal services refuse calls without the
internal token (health stays open for probes)."""
from __future__ import annotations

import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.stack import start_stack
from stratexec.codegen.v1 import codegen_pb2, codegen_pb2_grpc
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli.client import Client, ClientError
from tests.e2e.conftest import EXAMPLE, btc_2024

pytestmark = pytest.mark.slow  # its own stack of services (make test-fast skips it)

TOKENS = {"token-alice": "alice", "token-bob": "bob"}
INTERNAL = "internal-secret"


@pytest.fixture(scope="module")
def locked_stack(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("locked")
    token_file = run_dir / "tokens.json"
    token_file.write_text(json.dumps(TOKENS))
    services = start_stack(run_dir, env={"ORCHESTRATOR_AUTH": "tokens", "ORCHESTRATOR_TOKEN_FILE": str(token_file),
                                         "STRATEXEC_INTERNAL_TOKEN": INTERNAL})
    yield services
    for svc in reversed(list(services.values())):
        svc.stop()


class TokenClient(Client):
    def __init__(self, address: str, token: str | None):
        super().__init__(address)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()


def test_calls_without_a_known_token_are_unauthenticated(locked_stack):
    address = locked_stack["orchestrator"].address
    for token in (None, "token-mallory"):
        with pytest.raises(ClientError) as failure:
            TokenClient(address, token).list()
        assert failure.value.status.code == grpc.StatusCode.UNAUTHENTICATED.value[0]


def test_each_user_sees_only_their_own_executions(locked_stack):
    address = locked_stack["orchestrator"].address
    alice, bob = TokenClient(address, "token-alice"), TokenClient(address, "token-bob")

    execution = alice.execute(EXAMPLE, btc_2024())
    events = list(alice.watch(execution.id))

    assert events[-1].status == execution_pb2.EXECUTION_STATUS_COMPLETED
    assert alice.get(execution.id).user_id == "alice"
    assert alice.results(execution.id).result.metrics.trades >= 1
    for call in (bob.get, bob.results, bob.code, bob.cancel):
        with pytest.raises(ClientError) as hidden:
            call(execution.id)
        assert hidden.value.status.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert execution.id in [e.id for e in alice.list().executions]
    assert execution.id not in [e.id for e in bob.list().executions]


def test_internal_services_need_the_internal_token_but_health_stays_open(locked_stack):
    codegen = locked_stack["codegen"].address
    from google.protobuf import struct_pb2

    schema = struct_pb2.Struct()
    schema.update(EXAMPLE)
    request = codegen_pb2.AnalyzeStrategyRequest(schema=schema, params=btc_2024())
    with grpc.insecure_channel(codegen) as channel:
        stub = codegen_pb2_grpc.CodegenServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.AnalyzeStrategy(request)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

        reply = stub.AnalyzeStrategy(request, metadata=(("authorization", f"Bearer {INTERNAL}"),))
        assert reply.analysis.rules[0].node_id == "entry"

        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
