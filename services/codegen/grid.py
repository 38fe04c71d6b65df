"""A sweep's grid: parameter ranges checked against the strategy's named
parameters and expanded to value lists.

A range is a list of values or start:stop:step (stop included when it is a
whole number of steps from start). Every problem becomes a BadRequest field
violation on ``ranges[i]``; nothing is half-accepted.
"""
from __future__ import annotations

import dataclasses
import math
from decimal import Decimal

from services.codegen.parameters import Parameter, describe
from services.common import errors

DEFAULT_MAX_COMBINATIONS = 200_000
MAX_VALUES_PER_PARAMETER = 10_000


@dataclasses.dataclass(frozen=True)
class Grid:
    parameters: tuple[Parameter, ...]  # signal parameters first, then stop levels (sweep order)
    values: tuple[tuple[float, ...], ...]

    @property
    def combinations(self) -> int:
        return math.prod(len(v) for v in self.values)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]


def span(start: float, stop: float, step: float) -> list[float]:
    """start, start + step, ... up to stop included, in decimal arithmetic (2:8:0.5 has no 7.999999)."""
    a, b, s = Decimal(repr(float(start))), Decimal(repr(float(stop))), Decimal(repr(float(step)))
    count = int((b - a) / s) + 1
    return [float(a + k * s) for k in range(count)]


def expand(ranges, parameters: list[Parameter], max_combinations: int = 0) -> Grid:
    """The grid of ``ranges`` (ParameterRange messages); raises INVALID_ARGUMENT."""
    cap = max_combinations or DEFAULT_MAX_COMBINATIONS
    by_name = {p.name: p for p in parameters}
    problems: list[tuple[str, str]] = []
    chosen: dict[str, list[float]] = {}
    if not ranges:
        problems.append(("ranges", f"give at least one parameter range; the parameters are: {describe(parameters)}"))
    for i, r in enumerate(ranges):
        field = f"ranges[{i}]"
        p = by_name.get(r.name)
        if p is None:
            problems.append((f"{field}.name", f"unknown parameter {r.name!r}; valid parameters: {describe(parameters)}"))
            continue
        if r.name in chosen:
            problems.append((f"{field}.name", f"parameter {r.name!r} is given twice"))
            continue
        if r.values:
            values = list(r.values)
            if len(set(values)) != len(values):
                problems.append((f"{field}.values", "values must be distinct"))
                continue
        else:
            if not r.step > 0:
                problems.append((f"{field}.step", f"step must be positive (got {r.step:g}); give values or start:stop:step"))
                continue
            if r.stop < r.start:
                problems.append((f"{field}.stop", f"the range {r.start:g}:{r.stop:g}:{r.step:g} is reversed (stop below start)"))
                continue
            if (r.stop - r.start) / r.step + 1 > MAX_VALUES_PER_PARAMETER:
                problems.append((f"{field}.step", f"more than {MAX_VALUES_PER_PARAMETER} values for one parameter"))
                continue
            values = span(r.start, r.stop, r.step)
        if not values:
            problems.append((f"{field}.values", "the range is empty"))
            continue
        outside = [v for v in values if not math.isfinite(v) or not p.accepts(v)]
        if outside:
            problems.append((f"{field}.values", f"{r.name} = {outside[0]:g} is outside its valid range: {p.range_words()}"))
            continue
        chosen[r.name] = values
    if not problems:
        count = math.prod(len(v) for v in chosen.values())
        if count > cap:
            problems.append(("ranges", f"{count:,} combinations is more than the cap of {cap:,}"))
    if problems:
        raise errors.invalid_argument(
            problems[0][1] if len(problems) == 1 else f"{len(problems)} problems in the ranges; the first: {problems[0][1]}",
            problems, reason="INVALID_PARAMETER_RANGE")
    order = [p for p in parameters if p.name in chosen]
    order.sort(key=lambda p: 0 if p.location[1] in ("rules", "conditions") else 1)  # stable: schema order inside
    return Grid(tuple(order), tuple(tuple(chosen[p.name]) for p in order))


def assign(parameters: list[Parameter], values: dict[str, float]) -> None:
    """Check single values for named parameters (GenerateCode's parameter_values); raises INVALID_ARGUMENT."""
    by_name = {p.name: p for p in parameters}
    problems = []
    for name, value in sorted(values.items()):
        p = by_name.get(name)
        if p is None:
            problems.append((f"parameter_values[{name}]", f"unknown parameter {name!r}; valid parameters: {describe(parameters)}"))
        elif not math.isfinite(value) or not p.accepts(value):
            problems.append((f"parameter_values[{name}]", f"{name} = {value:g} is outside its valid range: {p.range_words()}"))
    if problems:
        raise errors.invalid_argument(problems[0][1], problems, reason="INVALID_PARAMETER_VALUE")
