"""A dependency's answer that the transport could not deliver is never reported as UNAVAILABLE."""
from __future__ import annotations

import grpc

from services.common import errors
from services.orchestrator.checks import _unavailable


class Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return ()


def test_an_oversized_trailer_is_internal_not_unavailable():
    # what grpcio reported for codegen's 21,674-byte BadRequest trailer
    refused = Failed(grpc.StatusCode.UNAVAILABLE,
                     "Stream removed (received metadata size exceeds hard limit (value length 31466 vs. 16384))")
    error = _unavailable("codegen", refused)
    assert error.code == grpc.StatusCode.INTERNAL and error.reason == "CODEGEN_ANSWER_UNDELIVERABLE"


def test_a_real_outage_stays_unavailable():
    error = _unavailable("codegen", Failed(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"))
    assert error.code == grpc.StatusCode.UNAVAILABLE and error.reason == "CODEGEN_UNAVAILABLE"


def test_violations_are_capped_with_a_count_of_the_rest():
    violations = [(f"nodes[{i}].meta.rules[{j}]", "is not understood: " + "x" * 500) for i in range(20) for j in range(5)]
    status = errors.make_status(grpc.StatusCode.INVALID_ARGUMENT, "100 problems", violations=violations)
    assert len(status.SerializeToString()) < 8192
    info = errors.error_info(status)
    shown = 100 - int(info.metadata["violations_not_shown"])
    assert 1 <= shown <= errors.MAX_VIOLATIONS and f"{100 - shown} more not shown" in status.message
