"""Structured conditions (``meta.conditions``) -> condition IR.

    {"indicator": "sma", "params": {"window": 20}, "op": "crosses_above",
     "ref": {"indicator": "sma", "params": {"window": 50}}}

The shape is checked by the JSON Schema first; this module checks the
meaning (required windows, matching scales) and builds the same IR as the
natural-language rules.
"""
from __future__ import annotations

from decimal import Decimal

from services.codegen.grammar import indicators as ind
from services.codegen.grammar.errors import RuleError
from services.codegen.grammar.ir import Compare, Condition, Cross, Operand, Series

OPS = {
    "<": "<", "lt": "<", "below": "<",
    "<=": "<=", "le": "<=",
    ">": ">", "gt": ">", "above": ">",
    ">=": ">=", "ge": ">=",
}
DIMENSIONS = {
    "rsi": "rsi", "macd": "macd", "macd_signal": "macd", "macd_hist": "macd", "roc": "roc", "atr": "atr",
}


def _int(params: dict, name: str, default: int | None, indicator: str) -> int:
    value = params.get(name, default)
    if value is None:
        raise RuleError(f"'{indicator}' needs params.{name}")
    return int(value)


def _series(spec: dict) -> tuple[Series, str]:
    """The series of an operand object and its scale (price, volume, rsi, ...)."""
    name = spec["indicator"]
    params = spec.get("params", {})
    source = params.get("source", "close")
    if name in ind.FIELDS:
        return ind.field(name), ("volume" if name == "volume" else "price")
    if name in ind.MOVING_AVERAGES:
        return ind.MOVING_AVERAGES[name](_int(params, "window", None, name), source), ("volume" if source == "volume" else "price")
    if "source" in params and name != "lag":
        raise RuleError(f"'{name}' is computed from the close; params.source applies to sma, ema, wma and lag only")
    if name == "lag":
        return ind.lagged(source, _int(params, "window", None, name)), ("volume" if source == "volume" else "price")
    if name == "rsi":
        return ind.rsi(_int(params, "window", 14, name)), "rsi"
    if name in ("macd", "macd_signal", "macd_hist"):
        fast, slow, signal = (_int(params, k, d, name) for k, d in (("fast", 12), ("slow", 26), ("signal", 9)))
        if fast >= slow:
            raise RuleError(f"'{name}': params.fast ({fast}) must be smaller than params.slow ({slow})")
        maker = {"macd": ind.macd_line, "macd_signal": ind.macd_signal, "macd_hist": ind.macd_hist}[name]
        return maker(fast, slow, signal), "macd"
    if name in ("bb_upper", "bb_middle", "bb_lower"):
        return ind.bb_band(name[3:], _int(params, "window", 20, name), params.get("std", 2)), "price"
    if name == "atr":
        return ind.atr(_int(params, "window", 14, name)), "atr"
    if name == "highest_high":
        return ind.highest_high(_int(params, "window", None, name)), "price"
    if name == "lowest_low":
        return ind.lowest_low(_int(params, "window", None, name)), "price"
    if name == "roc":
        return ind.roc(_int(params, "window", None, name)), "roc"
    raise RuleError(f"unknown indicator '{name}'")


def _operand(spec: dict) -> tuple[Operand, str]:
    series, scale = _series(spec)
    return Operand.of(series, Decimal(str(spec.get("multiplier", 1)))), scale


def parse_condition(spec: dict) -> Condition:
    left, left_scale = _operand(spec)
    ref = spec["ref"]
    if isinstance(ref, (int, float)):
        right = Operand.constant(Decimal(str(ref)).normalize(), "%" if left_scale == "roc" else "")
        if left_scale == "rsi" and not 0 <= ref <= 100:
            raise RuleError(f"RSI lies between 0 and 100; {ref} is outside")
    else:
        right, right_scale = _operand(ref)
        if right_scale != left_scale:
            raise RuleError(
                f"compares '{spec['indicator']}' with '{ref['indicator']}', which are on different scales ({left_scale} vs {right_scale})"
            )
    op = spec["op"]
    if op in ("crosses_above", "crosses_below"):
        return Cross(left, op.split("_")[1], right)
    return Compare(left, OPS[op], right)
