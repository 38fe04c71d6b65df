"""JSON Schema of the strategy graph, checked before anything else runs.

Every problem becomes a BadRequest field violation whose field is the path
of the offending value ("nodes[0].meta.target_pct") and whose description
names the node id.
"""
from __future__ import annotations

from typing import Any

import jsonschema

from services.common import errors
from services.common.backtest_params import SIZINGS

NODE_TYPES = [
    "entry_condition",
    "exit_condition",
    "filter",
    "take_profit",
    "stop_loss",
    "trailing_stop",
    "time_exit",
    "position_sizing",
    "indicator",
]
CONDITION_TYPES = ("entry_condition", "exit_condition", "filter")
SINGLETON_TYPES = ("take_profit", "stop_loss", "trailing_stop", "time_exit", "position_sizing")

INDICATORS = [
    "close", "open", "high", "low", "volume",  # price fields
    "sma", "ema", "wma",  # moving averages: params.window, params.source
    "rsi",  # params.window (14)
    "macd", "macd_signal", "macd_hist",  # params.fast (12), params.slow (26), params.signal (9)
    "bb_upper", "bb_middle", "bb_lower",  # params.window (20), params.std (2)
    "atr",  # params.window (14)
    "highest_high", "lowest_low",  # params.window: the previous N bars, bar t excluded
    "roc",  # params.window: rate of change in percent
    "lag",  # params.window: params.source N bars earlier
]
OPS = ["<", "<=", ">", ">=", "lt", "le", "gt", "ge", "above", "below", "crosses_above", "crosses_below"]

_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_PCT = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100}
_WINDOW = {"type": "integer", "minimum": 1, "maximum": 5000}

OPERAND = {
    "type": "object",
    "required": ["indicator"],
    "additionalProperties": False,
    "properties": {
        "indicator": {"enum": INDICATORS},
        "params": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "window": _WINDOW,
                "source": {"enum": ["close", "open", "high", "low", "volume"]},
                "fast": _WINDOW,
                "slow": _WINDOW,
                "signal": _WINDOW,
                "std": _POSITIVE,
            },
        },
        "multiplier": _POSITIVE,
    },
}
CONDITION = {
    "type": "object",
    "required": ["indicator", "op", "ref"],
    "additionalProperties": False,
    "properties": {
        **OPERAND["properties"],
        "op": {"enum": OPS},
        "ref": {"anyOf": [{"type": "number"}, OPERAND]},
    },
}
CONDITION_META = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "rules": {"type": "array", "minItems": 1, "maxItems": 20, "items": {"type": "string", "minLength": 1, "maxLength": 500}},
        "conditions": {"type": "array", "minItems": 1, "maxItems": 20, "items": CONDITION},
        "combine": {"enum": ["all", "any"]},
        # The position the node is for (see BacktestParams.direction); "both" for an exit or a filter
        # that applies to either.
        "side": {"enum": ["long", "short", "both"]},
    },
    "anyOf": [{"required": ["rules"]}, {"required": ["conditions"]}],
}
STOP_META = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"atr_multiple": _POSITIVE, "atr_window": _WINDOW},
    "dependentSchemas": {"atr_window": {"required": ["atr_multiple"]}},
}
META = {
    "entry_condition": CONDITION_META,
    "exit_condition": CONDITION_META,
    "filter": CONDITION_META,
    "take_profit": {
        "type": "object", "additionalProperties": False, "required": ["target_pct"],
        "properties": {"target_pct": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000}},
    },
    "stop_loss": {
        **STOP_META, "properties": {**STOP_META["properties"], "stop_pct": _PCT},
        "oneOf": [{"required": ["stop_pct"]}, {"required": ["atr_multiple"]}],
    },
    "trailing_stop": {
        **STOP_META, "properties": {**STOP_META["properties"], "trail_pct": _PCT},
        "oneOf": [{"required": ["trail_pct"]}, {"required": ["atr_multiple"]}],
    },
    "time_exit": {
        "type": "object", "additionalProperties": False, "required": ["max_bars"],
        "properties": {"max_bars": {"type": "integer", "minimum": 1, "maximum": 100000}},
    },
    "indicator": {
        "type": "object", "additionalProperties": False, "required": ["name", "expression"],
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 40},
                       "expression": {"type": "string", "minLength": 1, "maxLength": 500}},
    },
    "position_sizing": {
        "type": "object", "additionalProperties": False, "minProperties": 1,
        "properties": {"method": {"enum": list(SIZINGS)}, "exposure": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                       "risk_per_trade": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
    },
}
ONE_OF_HELP = {
    "stop_loss": "needs exactly one of meta.stop_pct (percent below the entry) or meta.atr_multiple (ATR multiples below the entry)",
    "trailing_stop": "needs exactly one of meta.trail_pct (percent below the peak) or meta.atr_multiple (ATR multiples below the peak)",
}

STRATEGY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "stratexec strategy graph",
    "type": "object",
    "required": ["nodes"],
    "properties": {
        "nodes": {
            "type": "array",
            "minItems": 1,
            "maxItems": 100,
            "items": {
                "type": "object",
                "required": ["id", "type", "meta"],
                "properties": {
                    "id": {"type": "string", "minLength": 1, "maxLength": 100},
                    "type": {"enum": NODE_TYPES},
                    "meta": {"type": "object"},
                },
                "allOf": [
                    {"if": {"properties": {"type": {"const": t}}, "required": ["type"]}, "then": {"properties": {"meta": META[t]}}}
                    for t in NODE_TYPES
                ],
            },
        }
    },
}

_VALIDATOR = jsonschema.Draft202012Validator(STRATEGY_SCHEMA)


def _field(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _node_of(doc: Any, path) -> tuple[int | None, dict]:
    parts = list(path)
    if len(parts) >= 2 and parts[0] == "nodes" and isinstance(parts[1], int):
        node = doc["nodes"][parts[1]]
        return parts[1], node if isinstance(node, dict) else {}
    return None, {}


def _describe(error: jsonschema.ValidationError, node: dict) -> tuple[str, str]:
    """(field suffix, message) for one schema error, in the user's terms."""
    v = error.validator
    if v == "required":
        missing = [p for p in error.validator_value if isinstance(error.instance, dict) and p not in error.instance]
        return (missing[0] if missing else ""), f"'{missing[0] if missing else '?'}' is required"
    if v == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        return (extra[0] if extra else ""), (
            f"'{extra[0] if extra else '?'}' is not a field of this node type; allowed: {', '.join(sorted(allowed))}"
        )
    if v == "enum" and list(error.path)[-1:] == ["type"]:
        return "", f"unknown node type {error.instance!r}; supported: {', '.join(NODE_TYPES)}"
    if v == "anyOf" and list(error.path)[-1:] == ["meta"]:
        return "", "needs meta.rules (natural-language rules) or meta.conditions (structured conditions)"
    if v == "oneOf" and list(error.path)[-1:] == ["meta"]:
        return "", ONE_OF_HELP.get(node.get("type"), error.message)
    if v == "anyOf" and list(error.path)[-1:] == ["ref"]:
        return "", "must be a number or an operand object such as {\"indicator\": \"sma\", \"params\": {\"window\": 50}}"
    return "", error.message


def validate(doc: Any) -> dict:
    """The strategy document, checked; raises INVALID_ARGUMENT with field violations."""
    if not isinstance(doc, dict):
        raise errors.invalid_argument("the strategy schema must be an object with 'nodes'", [("schema", "not an object")], reason="SCHEMA_INVALID")
    problems: list[tuple[str, str]] = []
    found = []
    for error in _VALIDATOR.iter_errors(doc):
        if error.validator == "anyOf" and list(error.path)[-1:] == ["ref"] and isinstance(error.instance, dict):
            # An operand object: report what is wrong inside it, not just "no branch matched".
            found.extend(e for e in error.context if e.schema_path and e.schema_path[0] == 1)
        else:
            found.append(error)
    found.sort(key=lambda e: (_field(e.absolute_path), e.validator, e.message))
    for error in found:
        if error.validator in ("if", "allOf"):
            continue
        index, node = _node_of(doc, error.absolute_path)
        suffix, message = _describe(error, node)
        field = _field(error.absolute_path)
        if suffix:
            field = f"{field}.{suffix}" if field else suffix
        if index is not None:
            node_id = node.get("id") if isinstance(node.get("id"), str) else f"#{index}"
            message = f"node '{node_id}'" + (f" ({node['type']})" if isinstance(node.get("type"), str) and node.get("type") in NODE_TYPES else "") + f": {message}"
        problems.append((field or "schema", message))
    if not problems:
        problems.extend(_graph_checks(doc))
    if problems:
        problems = list(dict.fromkeys(problems))
        raise errors.invalid_argument(
            f"the strategy schema is invalid: {problems[0][1]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            problems,
            reason="SCHEMA_INVALID",
        )
    return doc


def _graph_checks(doc: dict) -> list[tuple[str, str]]:
    problems = []
    seen: dict[str, int] = {}
    counts: dict[str, list[int]] = {}
    for i, node in enumerate(doc["nodes"]):
        if node["id"] in seen:
            problems.append((f"nodes[{i}].id", f"node '{node['id']}': the id is already used by nodes[{seen[node['id']]}]"))
        seen.setdefault(node["id"], i)
        counts.setdefault(node["type"], []).append(i)
    for t in SINGLETON_TYPES:
        for i in counts.get(t, [])[1:]:
            problems.append((f"nodes[{i}].type", f"node '{doc['nodes'][i]['id']}': only one {t} node is allowed"))
    if not counts.get("entry_condition"):
        problems.append(("nodes", "the strategy needs at least one entry_condition node"))
    return problems
