"""Execution statuses: stored as short names, exposed as the proto enum."""
from stratexec.orchestrator.v1 import execution_pb2

# OPTIMIZING only for OptimizeStrategy executions, between GENERATING_CODE and EXECUTING.
ORDER = ["QUEUED", "ANALYZING", "GENERATING_CODE", "OPTIMIZING", "EXECUTING", "COMPLETED", "FAILED", "CANCELLED"]
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
RUNNING = ("ANALYZING", "GENERATING_CODE", "OPTIMIZING", "EXECUTING")


def to_proto(status: str) -> int:
    return execution_pb2.ExecutionStatus.Value(f"EXECUTION_STATUS_{status}")


def is_terminal(status: str) -> bool:
    return status in TERMINAL
