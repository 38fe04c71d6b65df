"""Size limits of requests that carry a strategy schema, the same on every RPC that takes one
(orchestrator ExecuteStrategy and CreateStrategy, codegen AnalyzeStrategy and GenerateCode)."""
from __future__ import annotations

from services.common import errors

MAX_SCHEMA_REQUEST_BYTES = 256 * 1024  # a strategy graph is a few KB; anything this large is a mistake


def check_request_size(request, limit: int = MAX_SCHEMA_REQUEST_BYTES) -> None:
    size = request.ByteSize()
    if size > limit:
        raise errors.invalid_argument(
            f"the request is {size} bytes; the limit is {limit}",
            [("schema", f"a strategy graph must serialise to less than {limit} bytes")],
            reason="REQUEST_TOO_LARGE")


def rule_text_chars(schema: dict) -> int:
    """Characters of plain-language rule text in a schema (every string in a node's meta.rules)."""
    total = 0
    for node in schema.get("nodes") or () if isinstance(schema, dict) else ():
        rules = (node.get("meta") or {}).get("rules") if isinstance(node, dict) and isinstance(node.get("meta"), dict) else None
        if isinstance(rules, list):
            total += sum(len(rule) for rule in rules if isinstance(rule, str))
    return total


def check_rule_text(schema: dict, budget: int) -> None:
    """Parsing costs up to ~0.2 ms per character (regex and closest-phrasing search): bound it."""
    chars = rule_text_chars(schema)
    if chars > budget:
        raise errors.invalid_argument(
            f"the strategy has {chars} characters of rule text; the limit is {budget}",
            [("nodes", f"at most {budget} characters of rule text in all nodes' meta.rules together (this one has {chars})")],
            reason="RULE_TEXT_TOO_LARGE")
