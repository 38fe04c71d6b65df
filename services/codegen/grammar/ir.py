"""The typed condition IR that every rule (natural language or structured)
compiles to.

A ``Series`` is one per-bar series of a symbol: a price field or an
indicator, with the pandas code that computes it. A ``Condition`` compares
series; it knows its formula, its meaning in plain words, the series it
needs and the pandas expression that computes its boolean signal. Every
signal at bar t uses bars up to t only: indicators are trailing windows,
crossings look one bar back, breakouts use the previous N bars.
"""
from __future__ import annotations

import abc

import dataclasses
from decimal import Decimal
from typing import Iterator


def num(value: Decimal | int | float) -> str:
    """Deterministic, minimal text of a number: 30, 0.95, 1.5."""
    d = Decimal(str(value))
    if d == d.to_integral_value():
        return str(int(d))
    text = format(d.normalize(), "f")
    return text


@dataclasses.dataclass(frozen=True)
class Series:
    """One per-bar series of a symbol, computed from its OHLCV bars."""

    key: str  # identity: two series with the same key are computed once
    var: str  # Python variable name in the generated code
    label: str  # formula name: "SMA(close, 20)"
    words: str  # plain words: "the 20-bar simple moving average of the close"
    lines: tuple[str, ...] = ()  # statements that define ``var``; empty for close
    note: str = ""  # which definition is used, for the comment beside the code
    deps: tuple["Series", ...] = ()
    warmup: int = 0  # bars before the first value exists
    is_indicator: bool = True
    settle: int | None = None  # bars before the value no longer depends on where the data starts (None: warmup)

    @property
    def settled_after(self) -> int:
        return self.warmup if self.settle is None else self.settle

    def walk(self) -> Iterator["Series"]:
        """This series after everything it depends on, depth first."""
        for dep in self.deps:
            yield from dep.walk()
        yield self


@dataclasses.dataclass(frozen=True)
class Operand:
    """``factor * series`` or a constant."""

    series: Series | None = None
    const: Decimal | None = None
    factor: Decimal = Decimal(1)
    unit: str = ""  # "%" when the constant is a percentage level (ROC)

    @staticmethod
    def of(series: Series, factor: Decimal | int = 1) -> "Operand":
        return Operand(series=series, factor=Decimal(factor))

    @staticmethod
    def constant(value: Decimal | int | float, unit: str = "") -> "Operand":
        return Operand(const=Decimal(str(value)), unit=unit)

    def expr(self, lag: int = 0) -> str:
        if self.series is None:
            return num(self.const)
        var = self.series.var if lag == 0 else f"{self.series.var}.shift({lag})"
        return var if self.factor == 1 else f"{num(self.factor)} * {var}"

    def label(self, at: str = "") -> str:
        if self.series is None:
            return num(self.const)
        name = self.series.label + at
        return name if self.factor == 1 else f"{num(self.factor)} * {name}"

    def words(self) -> str:
        if self.series is None:
            return num(self.const) + self.unit
        if self.factor == 1:
            return self.series.words
        return f"{num(self.factor * 100)}% of {self.series.words}"

    def series_needed(self) -> list[Series]:
        return [] if self.series is None else list(self.series.walk())


OPS = {"<": "is below", "<=": "is at or below", ">": "is above", ">=": "is at or above"}
AT_CLOSE = ", evaluated at bar close"


class Condition(abc.ABC):
    """A boolean per-bar signal."""

    @abc.abstractmethod
    def expr(self) -> str:
        """The pandas expression."""

    @abc.abstractmethod
    def formula(self) -> str:
        """The formula, without the evaluation note."""

    @abc.abstractmethod
    def words(self) -> str:
        """The meaning in plain words."""

    @abc.abstractmethod
    def series_needed(self) -> list[Series]:
        """The series the expression reads."""

    def short(self) -> str:
        """The formula without the expansion of crossings."""
        return self.formula()

    def compared(self) -> list[Series]:
        """The series this condition compares (its operands), not the series they are computed from."""
        out = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, Operand) and item.series is not None:
                    out.append(item.series)
                elif isinstance(item, Condition):
                    out.extend(item.compared())
        return out

    def full_formula(self) -> str:
        return self.formula() + AT_CLOSE


@dataclasses.dataclass(frozen=True)
class Compare(Condition):
    left: Operand
    op: str  # < <= > >=
    right: Operand

    def expr(self) -> str:
        return f"{self.left.expr()} {self.op} {self.right.expr()}"

    def formula(self) -> str:
        return f"{self.left.label()} {self.op} {self.right.label()}"

    def words(self) -> str:
        return f"{self.left.words()} {OPS[self.op]} {self.right.words()}"

    def series_needed(self) -> list[Series]:
        return self.left.series_needed() + self.right.series_needed()


@dataclasses.dataclass(frozen=True)
class Cross(Condition):
    """``left`` crosses ``right``: on the other side now, on this side (or equal) one bar before."""

    left: Operand
    direction: str  # "above" | "below"
    right: Operand

    def _ops(self) -> tuple[str, str]:
        return (">", "<=") if self.direction == "above" else ("<", ">=")

    def expr(self) -> str:
        now, before = self._ops()
        return (
            f"({self.left.expr()} {now} {self.right.expr()}) & "
            f"({self.left.expr(1)} {before} {self.right.expr(1)})"
        )

    def formula(self) -> str:
        now, before = self._ops()
        return (
            f"{self.left.label()} crosses {self.direction} {self.right.label()}: "
            f"{self.left.label('[t]')} {now} {self.right.label('[t]')} and "
            f"{self.left.label('[t-1]')} {before} {self.right.label('[t-1]')}"
        )

    def short(self) -> str:
        return f"{self.left.label()} crosses {self.direction} {self.right.label()}"

    def words(self) -> str:
        return (
            f"{self.left.words()} crosses {self.direction} {self.right.words()} "
            f"(it {'is above' if self.direction == 'above' else 'is below'} now and was not on the previous bar)"
        )

    def series_needed(self) -> list[Series]:
        return self.left.series_needed() + self.right.series_needed()


@dataclasses.dataclass(frozen=True)
class Combined(Condition):
    """All (``&``) or any (``|``) of several conditions."""

    how: str  # "all" | "any"
    parts: tuple[Condition, ...]

    def expr(self) -> str:
        joiner = " & " if self.how == "all" else " | "
        return joiner.join(f"({p.expr()})" for p in self.parts)

    def formula(self) -> str:
        joiner = " and " if self.how == "all" else " or "
        return joiner.join(f"({p.formula()})" for p in self.parts)

    def short(self) -> str:
        joiner = " and " if self.how == "all" else " or "
        return joiner.join(f"({p.short()})" for p in self.parts)

    def words(self) -> str:
        joiner = " and " if self.how == "all" else " or "
        return joiner.join(p.words() for p in self.parts)

    def series_needed(self) -> list[Series]:
        out: list[Series] = []
        for part in self.parts:
            out.extend(part.series_needed())
        return out


@dataclasses.dataclass(frozen=True)
class Persist(Condition):
    """``part`` holds on each of the last ``bars`` bars, t included."""

    part: Condition
    bars: int

    def expr(self) -> str:
        return f"({self.part.expr()}).astype(int).rolling({self.bars}).sum() == {self.bars}"

    def formula(self) -> str:
        return f"({self.part.short()}) on each of bars t-{self.bars - 1}..t"

    def short(self) -> str:
        return self.formula()

    def words(self) -> str:
        return f"{self.part.words()}, on each of the last {self.bars} bars"

    def series_needed(self) -> list[Series]:
        return self.part.series_needed()


def combine(how: str, parts: list[Condition]) -> Condition:
    return parts[0] if len(parts) == 1 else Combined(how, tuple(parts))


@dataclasses.dataclass(frozen=True)
class Within(Condition):
    """``part`` holds on at least one of the last ``bars`` bars, t included."""

    part: Condition
    bars: int

    def expr(self) -> str:
        return f"({self.part.expr()}).astype(int).rolling({self.bars}, min_periods=1).max() == 1"

    def formula(self) -> str:
        return f"({self.part.short()}) on at least one of bars t-{self.bars - 1}..t"

    def short(self) -> str:
        return self.formula()

    def words(self) -> str:
        return f"{self.part.words()}, on at least one of the last {self.bars} bars"

    def series_needed(self) -> list[Series]:
        return self.part.series_needed()
