"""Custom indicator expressions (grammar: expression.lark) -> a checked Series.

    (close - sma(close, 10)) / atr(14)

Built-ins: the fields open, high, low, close, volume; arithmetic + - * /;
functions of any series: sma/ema/wma(x, n), rsi(x, n), rolling_mean/std/max/
min(x, n), lag(x, n), abs(x), min(a, b), max(a, b); atr(n) of the bars; and
indicators defined before by name. Windows and lags are positive integer
literals (a lag below 1 would read the future). Scales: + - min max need the
same scale on both sides (or a number). Every error names the node, the
position (1-based column) and what is allowed.
"""
from __future__ import annotations

import dataclasses
import pathlib
import re

import lark

from services.codegen.grammar import indicators as ind
from services.codegen.grammar.errors import RuleError
from services.codegen.grammar.ir import Series, num

MAX_LENGTH = 500
MAX_DEPTH = 12
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
FIELDS = ("open", "high", "low", "close", "volume")
# name -> (arity, the arguments that are windows)
FUNCTIONS = {
    "sma": (2, (1,)), "ema": (2, (1,)), "wma": (2, (1,)), "rsi": (2, (1,)),
    "rolling_mean": (2, (1,)), "rolling_std": (2, (1,)), "rolling_max": (2, (1,)), "rolling_min": (2, (1,)),
    "lag": (2, (1,)), "abs": (1, ()), "min": (2, ()), "max": (2, ()), "atr": (1, (0,)),
}
RESERVED = set(FIELDS) | set(FUNCTIONS) | {"macd", "bb", "roc", "price"}
ALLOWED = (f"the fields {', '.join(FIELDS)}, numbers, + - * / and parentheses, the functions "
           f"{', '.join(f'{k}({_a})' for k, _a in (('sma', 'x, n'), ('ema', 'x, n'), ('wma', 'x, n'), ('rsi', 'x, n'), ('rolling_mean', 'x, n'), ('rolling_std', 'x, n'), ('rolling_max', 'x, n'), ('rolling_min', 'x, n'), ('lag', 'x, n'), ('abs', 'x'), ('min', 'a, b'), ('max', 'a, b'), ('atr', 'n')))}, "
           f"and indicators defined in earlier nodes")

_PARSER = lark.Lark((pathlib.Path(__file__).with_name("expression.lark")).read_text(), parser="lalr", propagate_positions=True)


@dataclasses.dataclass(frozen=True)
class Value:
    code: str  # pandas expression
    scale: str  # price | volume | rsi | number | ratio | <name>
    warmup: int
    deps: tuple[Series, ...] = ()
    window: int | None = None  # a bare integer literal, usable as a window


class ExpressionError(RuleError):
    pass


def _fail(node_id: str, column: int | None, what: str) -> ExpressionError:
    where = f" at position {column}" if column else ""
    return ExpressionError(f"node '{node_id}': expression{where}: {what}; allowed: {ALLOWED}")


def _depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        deepest = max(deepest, depth)
    return deepest


def compile_indicator(node_id: str, name: str, expression: str, known: dict[str, Series]) -> Series:
    """The Series of a custom indicator node, its code on one readable line."""
    if not NAME_RE.match(name or ""):
        raise ExpressionError(f"node '{node_id}': indicator name {name!r} must be lower-case letters, digits and _ (at most 40), starting with a letter")
    if name in RESERVED:
        raise ExpressionError(f"node '{node_id}': indicator name '{name}' shadows a built-in ({', '.join(sorted(RESERVED))})")
    if name in known:
        raise ExpressionError(f"node '{node_id}': indicator '{name}' is defined twice")
    if len(expression) > MAX_LENGTH:
        raise ExpressionError(f"node '{node_id}': expression is {len(expression)} characters; at most {MAX_LENGTH}")
    if _depth(expression) > MAX_DEPTH:
        raise ExpressionError(f"node '{node_id}': expression nests parentheses {_depth(expression)} deep; at most {MAX_DEPTH}")
    try:
        tree = _PARSER.parse(expression.lower())
    except lark.exceptions.UnexpectedInput as exc:
        raise _fail(node_id, exc.column, f"unexpected {expression[exc.pos_in_stream:exc.pos_in_stream + 10]!r}" if exc.pos_in_stream is not None and exc.pos_in_stream < len(expression) else "unexpected end") from None
    value = _Builder(node_id, known, name).build(tree)
    if value.scale == "number":
        raise ExpressionError(f"node '{node_id}': expression is a constant; it must use a series ({', '.join(FIELDS)} or an indicator)")
    var = f"ind_{name}"
    return Series(
        key=f"custom({name})", var=var, label=name, words=f"the custom indicator {name} = {expression.strip()}",
        lines=(f"{var} = {value.code}",), note=f"Custom indicator {name!r} (node {node_id!r}): {expression.strip()}",
        deps=value.deps, warmup=value.warmup,
    )


class _Builder:
    def __init__(self, node_id: str, known: dict[str, Series], name: str):
        self.node_id, self.known, self.name = node_id, known, name

    def fail(self, tree, what: str) -> ExpressionError:
        column = getattr(getattr(tree, "meta", None), "column", None) or getattr(tree, "column", None)
        return _fail(self.node_id, column, what)

    def build(self, tree) -> Value:
        kind = tree.data if isinstance(tree, lark.Tree) else None
        if kind == "number":
            text = str(tree.children[0])
            return Value(text, "number", 0, window=int(text) if text.isdigit() else None)
        if kind == "name":
            return self.name_value(tree, str(tree.children[0]))
        if kind == "neg":
            inner = self.build(tree.children[0])
            return dataclasses.replace(inner, code=f"(-{inner.code})", window=None)
        if kind in ("add", "sub", "mul", "div"):
            a, b = (self.build(c) for c in tree.children)
            op = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[kind]
            if kind in ("add", "sub"):
                scale = self.same_scale(tree, a, b, op)
            else:
                scale = a.scale if b.scale == "number" else (b.scale if a.scale == "number" else "ratio")
            return Value(f"({a.code} {op} {b.code})", scale, max(a.warmup, b.warmup), a.deps + b.deps)
        if kind == "call":
            return self.call(tree)
        raise self.fail(tree, "unsupported element")

    def same_scale(self, tree, a: Value, b: Value, op: str) -> str:
        if a.scale == "number":
            return b.scale
        if b.scale == "number" or a.scale == b.scale:
            return a.scale
        raise self.fail(tree, f"'{op}' joins series on different scales ({a.scale} and {b.scale})")

    def name_value(self, tree, name: str) -> Value:
        if name in FIELDS:
            series = ind.field(name)
            return Value(series.var, "volume" if name == "volume" else "price", 0, (series,))
        if name == self.name:
            raise self.fail(tree, f"'{name}' refers to itself (a cycle)")
        if name in self.known:
            series = self.known[name]
            return Value(series.var, name, series.warmup, (series,))
        raise self.fail(tree, f"unknown name '{name}'")

    def call(self, tree) -> Value:
        fname = str(tree.children[0])
        args = [c for c in tree.children[1:] if c is not None]
        if fname not in FUNCTIONS:
            raise self.fail(tree, f"unknown function '{fname}'")
        arity, windows = FUNCTIONS[fname]
        if len(args) != arity:
            raise self.fail(tree, f"{fname}() takes {arity} argument{'s' if arity > 1 else ''}, not {len(args)}")
        values = [self.build(a) for a in args]
        for k in windows:
            if values[k].window is None or not 1 <= values[k].window <= 5000:
                raise self.fail(args[k], f"the window of {fname}() must be a whole number of bars from 1 to 5000 (a lag below 1 would read the future)")
        if fname == "atr":
            series = ind.atr(values[0].window)
            return Value(series.var, "price", series.warmup, (series,))
        x = values[0]
        if x.scale == "number":
            raise self.fail(args[0], f"{fname}() needs a series, not a number")
        if fname in ("min", "max"):
            b = values[1]
            scale = self.same_scale(tree, x, b, fname)
            return Value(f"np.{fname}imum({x.code}, {b.code})", scale, max(x.warmup, b.warmup), x.deps + b.deps)
        if fname == "abs":
            return Value(f"({x.code}).abs()", x.scale, x.warmup, x.deps)
        n = values[1].window
        code = {
            "sma": f"({x.code}).rolling({n}).mean()", "rolling_mean": f"({x.code}).rolling({n}).mean()",
            "rolling_std": f"({x.code}).rolling({n}).std()", "rolling_max": f"({x.code}).rolling({n}).max()",
            "rolling_min": f"({x.code}).rolling({n}).min()", "lag": f"({x.code}).shift({n})",
            "ema": f"({x.code}).ewm(span={n}, adjust=False, min_periods={n}).mean()",
            "wma": f"({x.code}).rolling({n}).apply(lambda w: np.dot(w, np.arange(1, {n + 1})) / {num(n * (n + 1) // 2)}, raw=True)",
            "rsi": (f"(100 - 100 / (1 + ({x.code}).diff().clip(lower=0).ewm(alpha=1 / {n}, adjust=False, min_periods={n}).mean()"
                    f" / (-({x.code}).diff()).clip(lower=0).ewm(alpha=1 / {n}, adjust=False, min_periods={n}).mean()))"),
        }[fname]
        return Value(code, "rsi" if fname == "rsi" else x.scale, x.warmup + n, x.deps)
