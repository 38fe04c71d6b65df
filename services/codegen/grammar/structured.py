"""Structured conditions (``meta.conditions``) -> condition IR.

    {"indicator": "sma", "params": {"window": 20}, "op": "crosses_above",
     "ref": {"indicator": "sma", "params": {"window": 50}}}

The shape is checked by the JSON Schema first; this module checks the
meaning (required windows, matching scales) and builds the same IR as the
natural-language rules.
"""
from __future__ import annotations

import re
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


_KEY = re.compile(r"^(?P<name>[a-z_]+)\((?P<args>[^()]*)\)$")


def _spec(series: Series) -> dict | None:
    """The structured operand of a series, or None when it has none (custom indicators, 52-week extremes...)."""
    if series.key in ind.FIELDS:
        return {"indicator": series.key}
    m = _KEY.match(series.key)
    if not m:
        return None
    name, args = m.group("name"), [a.strip() for a in m.group("args").split(",")]
    try:
        if name in ind.MOVING_AVERAGES and args[0] in ind.FIELDS:
            params = {"window": int(args[1])} | ({"source": args[0]} if args[0] != "close" else {})
            return {"indicator": name, "params": params}
        if name in ("rsi", "atr", "roc"):
            return {"indicator": name, "params": {"window": int(args[0])}}
        if name in ("hh", "ll"):
            return {"indicator": "highest_high" if name == "hh" else "lowest_low", "params": {"window": int(args[0])}}
        if name == "macd":
            return {"indicator": "macd", "params": {"fast": int(args[0]), "slow": int(args[1])}}
        if name in ("macd_signal", "macd_hist"):
            return {"indicator": name, "params": {"fast": int(args[0]), "slow": int(args[1]), "signal": int(args[2])}}
        if name in ("bb_upper", "bb_lower"):
            return {"indicator": name, "params": {"window": int(args[0]), "std": float(args[1])}}
        if name == "lag" and args[0] in ind.FIELDS:
            return {"indicator": "lag", "params": {"window": int(args[1])} | ({"source": args[0]} if args[0] != "close" else {})}
    except (IndexError, ValueError):
        return None
    return None


def _operand_spec(op: Operand) -> dict | None:
    spec = _spec(op.series) if op.series is not None else None
    if spec is not None and op.factor != 1:
        spec["multiplier"] = float(op.factor)
    return spec


def to_structured(condition: Condition) -> dict | None:
    """The meta.conditions entry of a simple condition (one comparison or crossing), or None."""
    if not isinstance(condition, (Compare, Cross)):
        return None
    left = _operand_spec(condition.left)
    if left is None:
        return None
    if condition.right.series is None:  # a constant level
        ref = float(condition.right.const)
        ref = int(ref) if ref.is_integer() else ref
    else:
        ref = _operand_spec(condition.right)
        if ref is None:
            return None
    op = f"crosses_{condition.direction}" if isinstance(condition, Cross) else condition.op
    return {**left, "op": op, "ref": ref}
