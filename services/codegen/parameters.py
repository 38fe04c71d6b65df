"""Named parameters of a strategy: every number the compiler reads from a
rule or a node, as ``<node id>.<name>`` with its current value and its
valid range, and the schema with other values put in their place.

Numbers in rule texts are found by position and named by what they change
in the compiled condition: the rule is parsed again with the number
nudged, and the changed field of the condition IR says its role (a series'
window -> ``window``, a factor -> ``drop_pct``/``rise_pct``, a constant ->
``level``, a persistence count -> ``bars``). This reads the IR, not the
grammar, so it holds for any phrasing the grammar accepts. Stop, target and
time-exit nodes name their meta fields directly (``tp.target_pct``).
"""
from __future__ import annotations

import copy
import dataclasses
import re
from decimal import Decimal
from typing import Any, Iterator

from services.codegen.grammar import RuleError, parse_condition, parse_rule
from services.codegen.grammar.ir import Series

NUMBER = re.compile(r"(?<![\w.#])(\d+(?:\.\d+)?)(?![\w.])")
SIDE = {"entry_condition": "entry", "exit_condition": "exit", "filter": "filter"}
WINDOW_RANGE = (1, 5000)
OPEN_BOUND = 1e12  # a level has no range of its own: the rule decides when it compiles

# Meta fields of parameter nodes (as services/codegen/schema.py bounds them):
# name -> (integer, minimum, maximum, minimum excluded, maximum excluded)
_PCT = (False, 0, 100, True, True)
_ATR = {"atr_multiple": (False, 0, 1e6, True, False), "atr_window": (True, 1, 5000, False, False)}
META_FIELDS = {
    "take_profit": {"target_pct": (False, 0, 1000, True, False)},
    "stop_loss": {"stop_pct": _PCT, **_ATR},
    "trailing_stop": {"trail_pct": _PCT, **_ATR},
    "time_exit": {"max_bars": (True, 1, 100000, False, False)},
}


@dataclasses.dataclass(frozen=True)
class Parameter:
    name: str  # <node id>.<name>
    node_id: str
    field: str  # where the number sits: nodes[0].meta.rules[0] (a rule text) or nodes[1].meta.target_pct
    value: float
    integer: bool
    minimum: float
    maximum: float
    minimum_excluded: bool = False  # the minimum itself is not allowed (a 0% stop)
    maximum_excluded: bool = False
    description: str = ""
    # where the number is: (node index, "rules", rule index, token index) | (node index, "conditions", index, json path) | (node index, "meta", key)
    location: tuple = ()

    def accepts(self, value: float) -> bool:
        if self.integer and float(value) != int(value):
            return False
        low_ok = value > self.minimum if self.minimum_excluded else value >= self.minimum
        high_ok = value < self.maximum if self.maximum_excluded else value <= self.maximum
        return low_ok and high_ok

    def range_words(self) -> str:
        if self.maximum >= OPEN_BOUND:
            return "any number the rule accepts (checked by compiling)"
        low = "(" if self.minimum_excluded else "["
        high = ")" if self.maximum_excluded else "]"
        kind = "integers" if self.integer else "numbers"
        return f"{kind} in {low}{_text(self.minimum)}, {_text(self.maximum)}{high}"


def _text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _fields(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every number in a condition IR, recursively through its dataclasses."""
    if isinstance(obj, Series):
        yield f"{path}.series", obj.key
        return
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _fields(getattr(obj, f.name), f"{path}.{f.name}")
    elif isinstance(obj, (tuple, list)):
        for i, item in enumerate(obj):
            yield from _fields(item, f"{path}[{i}]")
    elif isinstance(obj, (Decimal, int)) and not isinstance(obj, bool):
        yield path, obj


def _role(before, after) -> tuple[str, Decimal | None] | None:
    """What changed between two compilations of a rule: (role, the old factor) or None."""
    old, new = dict(_fields(before)), dict(_fields(after))
    if old.keys() != new.keys():
        return None
    changed = [k for k in old if old[k] != new[k]]
    if not changed:
        return None
    path = changed[0]
    if all(k.endswith(".series") for k in changed):
        return "window", None
    if path.endswith(".factor"):
        return ("drop_pct" if old[path] < 1 else "rise_pct"), old[path]
    if path.endswith(".const"):
        return "level", None
    if path.endswith(".bars"):
        return "bars", None
    return "value", None


def _nudge(raw: str) -> str:
    value = Decimal(raw)
    return str(value + 1) if value >= 1 else str(value / 2)


def _rule_parameters(text: str, side: str, timeframe: str) -> list[tuple[int, str, bool, float]]:
    """(token index, role, integer, value) of each number in a rule that is a parameter."""
    try:
        base, _ = parse_rule(text, side, timeframe)
    except RuleError:
        return []
    out = []
    for k, m in enumerate(NUMBER.finditer(text)):
        probe = text[: m.start()] + _nudge(m.group(1)) + text[m.end():]
        try:
            after, _ = parse_rule(probe, side, timeframe)
        except RuleError:
            continue
        role = _role(base, after)
        if role is not None:
            out.append((k, role[0], "." not in m.group(1), float(m.group(1))))
    return out


def _json_numbers(obj: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(obj, dict):
        for key in sorted(obj):
            yield from _json_numbers(obj[key], (*path, key))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _json_numbers(item, (*path, i))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


def _get(obj: Any, path: tuple) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _set(obj: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _ranges(role: str, integer: bool) -> tuple[bool, float, float, bool, bool]:
    """(integer, minimum, maximum, minimum excluded, maximum excluded) of a rule parameter by its role."""
    if role in ("window", "bars"):
        return True, WINDOW_RANGE[0], WINDOW_RANGE[1], False, False
    if role == "drop_pct":
        return False, 0, 100, True, True
    if role == "rise_pct":
        return False, 0, 1000, True, False
    return integer, -OPEN_BOUND, OPEN_BOUND, False, False  # a level: whatever the rule accepts (checked by compiling)


def _unique(node_id: str, role: str, taken: set[str]) -> str:
    name, k = f"{node_id}.{role}", 2
    while name in taken:
        name, k = f"{node_id}.{role}_{k}", k + 1
    taken.add(name)
    return name


def extract(doc: dict, timeframe: str = "1d") -> list[Parameter]:
    """Every parameter of a (validated) schema, in schema order."""
    found: list[Parameter] = []
    taken: set[str] = set()
    for i, node in enumerate(doc["nodes"]):
        node_id, node_type, meta = node["id"], node["type"], node.get("meta", {})
        if node_type in SIDE:
            for j, text in enumerate(meta.get("rules", [])):
                for k, role, integer, value in _rule_parameters(text, SIDE[node_type], timeframe):
                    kind, low, high, low_x, high_x = _ranges(role, integer)
                    found.append(Parameter(
                        _unique(node_id, role, taken), node_id, f"nodes[{i}].meta.rules[{j}]", value, kind, low, high,
                        low_x, high_x, f"number {k + 1} of the rule \"{text}\"", (i, "rules", j, k)))
            for j, spec in enumerate(meta.get("conditions", [])):
                try:
                    base = parse_condition(spec)
                except (RuleError, KeyError, TypeError, ValueError):
                    continue
                for path, value in _json_numbers(spec):
                    probe = copy.deepcopy(spec)
                    _set(probe, path, value + 1 if value >= 1 else value / 2)
                    try:
                        role = _role(base, parse_condition(probe))
                    except (RuleError, KeyError, TypeError, ValueError):
                        continue
                    if role is None:
                        continue
                    key = str(path[-1]) if isinstance(path[-1], str) and path[-1] not in ("value",) else role[0]
                    kind, low, high, low_x, high_x = _ranges(role[0], isinstance(value, int))
                    found.append(Parameter(
                        _unique(node_id, key, taken), node_id,
                        f"nodes[{i}].meta.conditions[{j}]" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path),
                        float(value), kind, low, high, low_x, high_x, f"{'.'.join(map(str, path))} of condition {j + 1}",
                        (i, "conditions", j, path)))
        for key, (integer, low, high, low_x, high_x) in META_FIELDS.get(node_type, {}).items():
            if key in meta:
                found.append(Parameter(
                    _unique(node_id, key, taken), node_id, f"nodes[{i}].meta.{key}", float(meta[key]), integer, low, high,
                    low_x, high_x, f"{key} of the {node_type} node", (i, "meta", key)))
    return found


def _number_text(value: float, integer: bool) -> str:
    if integer:
        return str(int(value))
    d = Decimal(repr(float(value))).normalize()
    return format(d, "f")


def substitute(doc: dict, parameters: list[Parameter], values: dict[str, float]) -> dict:
    """A copy of the schema with each named parameter set to its value."""
    out = copy.deepcopy(doc)
    by_name = {p.name: p for p in parameters}
    # Rule texts: replace tokens from the last to the first so earlier positions stay valid.
    edits: dict[tuple[int, int], dict[int, str]] = {}
    for name, value in values.items():
        p = by_name[name]
        i, where = p.location[0], p.location[1]
        if where == "rules":
            edits.setdefault((i, p.location[2]), {})[p.location[3]] = _number_text(value, p.integer)
        elif where == "conditions":
            _set(out["nodes"][i]["meta"]["conditions"][p.location[2]], p.location[3], int(value) if p.integer else float(value))
        else:
            out["nodes"][i]["meta"][p.location[2]] = int(value) if p.integer else float(value)
    for (i, j), tokens in edits.items():
        text = out["nodes"][i]["meta"]["rules"][j]
        matches = list(NUMBER.finditer(text))
        for k in sorted(tokens, reverse=True):
            m = matches[k]
            text = text[: m.start()] + tokens[k] + text[m.end():]
        out["nodes"][i]["meta"]["rules"][j] = text
    return out


def family(doc: dict, parameters: list[Parameter]) -> str:
    """sha256 of the schema with every named parameter's number replaced by a placeholder: the same
    strategy with other numbers is the same family (what the trial ledger counts trials of)."""
    import hashlib
    import json

    template = substitute(doc, parameters, {p.name: 0 for p in parameters})
    names = [p.name for p in parameters]
    return hashlib.sha256(json.dumps([template, names], sort_keys=True).encode()).hexdigest()


def is_signal(p: Parameter) -> bool:
    """True when the parameter changes entry/exit signals (a rule), False for stop and target levels."""
    return p.location[1] in ("rules", "conditions")


def to_protos(parameters: list[Parameter]) -> list:
    from stratexec.codegen.v1 import codegen_pb2

    return [codegen_pb2.StrategyParameter(
        name=p.name, node_id=p.node_id, field=p.field, value=p.value, integer=p.integer, minimum=p.minimum,
        maximum=p.maximum, minimum_exclusive=p.minimum_excluded, maximum_exclusive=p.maximum_excluded,
        range=p.range_words(), description=p.description, affects_signals=is_signal(p)) for p in parameters]


def describe(parameters: list[Parameter]) -> str:
    return ", ".join(p.name for p in parameters) or "none"

