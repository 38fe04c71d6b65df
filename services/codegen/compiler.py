"""Strategy schema + backtest params -> analysis: what every node means.

The analysis is the single source of truth for the generated script
(emit.py) and for the AnalyzeStrategy answer: every rule either becomes a
typed condition here or the whole strategy is rejected with INVALID_ARGUMENT
naming the node, the rule and the closest supported phrasing.
"""
from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

from services.common import backtest_params
from services.common.backtest_params import PORTFOLIO_BENCHMARK
from services.codegen import parameters as parameters_mod
from services.codegen import schema as schema_mod
from services.codegen.grammar import RuleError, combine, num, parse_condition
from services.codegen.grammar.expressions import compile_indicator
from services.codegen.grammar.nl import NeedsSubject, Parsed, parse_rule_in
from services.codegen.grammar import indicators as ind
from services.codegen.grammar.ir import AT_CLOSE, Condition, Series
from services.common import errors
from stratexec.codegen.v1 import codegen_pb2

EXECUTION_RULE = "execution_rule"  # RuleInfo.node_type of the backtest-wide rules (node_id: the params field)
SIDE = {"entry_condition": "entry", "exit_condition": "exit", "filter": "filter"}
ACTION = {"entry_condition": "Enter when", "exit_condition": "Exit when", "filter": "Only enter when"}
SIDE_ACTION = {  # (node type, side) -> the action in the interpretation, where the side changes it
    ("entry_condition", "long"): "Buy (go long) when",
    ("entry_condition", "short"): "Sell short when",
    ("exit_condition", "long"): "Sell (exit the long position) when",
    ("exit_condition", "short"): "Buy back (cover the short position) when",
    ("exit_condition", "both"): "Exit either position when",
    ("filter", "long"): "Only go long when",
    ("filter", "short"): "Only sell short when",
    ("filter", "both"): "Only enter (long or short) when",
}


@dataclasses.dataclass(frozen=True)
class RulePlan:
    text: str  # the rule as written (or the structured condition as JSON)
    field: str  # where it sits in the schema: nodes[0].meta.rules[0]
    condition: Condition
    structured: bool = False  # from meta.conditions (text is its JSON)


@dataclasses.dataclass(frozen=True)
class ConditionNode:
    node_id: str
    node_type: str  # entry_condition | exit_condition | filter
    combine: str  # all | any
    rules: tuple[RulePlan, ...]
    side: str = "long"  # the position it opens, closes or filters: long | short | both (exits and filters only)

    @property
    def condition(self) -> Condition:
        return combine(self.combine, [r.condition for r in self.rules])


@dataclasses.dataclass(frozen=True)
class Stop:
    node_id: str
    node_type: str  # take_profit | stop_loss | trailing_stop
    pct: Decimal | None = None  # percent of the entry price (or of the peak for a trailing stop)
    atr_multiple: Decimal | None = None
    atr_window: int = 14

    @property
    def fraction(self) -> str:
        return num(self.pct / 100)

    @property
    def atr(self) -> Series:
        return ind.atr(self.atr_window)


@dataclasses.dataclass(frozen=True)
class RuleInfo:
    node_id: str
    node_type: str
    rule: str
    interpretation: str
    formula: str


@dataclasses.dataclass
class Analysis:
    params: backtest_params.Params
    condition_nodes: list[ConditionNode]
    take_profit: Stop | None = None
    stop_loss: Stop | None = None
    trailing_stop: Stop | None = None
    time_exit: tuple[str, int] | None = None  # (node id, max bars)
    warmup_bars: int = 0  # history before start_date the script reads so indicators are warm at start_date
    warmup_note: str = ""  # why that many, for the script's comment
    sizing_node: str | None = None
    sizing: str = ""  # the resolved params.position_sizing unless a position_sizing node overrides it
    exposure: float = 0.0  # the resolved params.exposure unless a position_sizing node overrides it
    risk_per_trade: float = 0.0  # the resolved params.risk_per_trade unless a position_sizing node overrides it
    rules: list[RuleInfo] = dataclasses.field(default_factory=list)
    custom: list[tuple[str, Series, str]] = dataclasses.field(default_factory=list)  # (node id, series, expression)
    indicators: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    summary: str = ""
    doc: dict = dataclasses.field(default_factory=dict)  # the checked schema, for the named parameters

    def nodes_of(self, node_type: str, side: str | None = None) -> list[ConditionNode]:
        """The condition nodes of a type; with ``side``, those that apply to it (a "both" node applies to each)."""
        return [n for n in self.condition_nodes if n.node_type == node_type and (side is None or n.side in (side, "both"))]

    @property
    def sides(self) -> tuple[str, ...]:
        """The positions the strategy takes: ("long",), ("short",) or ("long", "short")."""
        return {"long": ("long",), "short": ("short",), "both": ("long", "short")}[self.params.direction]

    def to_proto(self) -> codegen_pb2.StrategyAnalysis:
        return codegen_pb2.StrategyAnalysis(
            rules=[codegen_pb2.RuleInterpretation(**dataclasses.asdict(r)) for r in self.rules],
            indicators=self.indicators,
            symbols=list(self.params.symbols),
            timeframe=self.params.timeframe,
            warnings=self.warnings,
            summary=self.summary,
            warmup_bars=self.warmup_bars,
            parameters=parameters_mod.to_protos(parameters_mod.extract(self.doc, self.params.timeframe)),
        )


def _plain(value: Any) -> Any:
    """Struct numbers arrive as floats: 20.0 -> 20, recursively."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dec(value: float | int) -> Decimal:
    return Decimal(str(value)).normalize()


def analyze(doc: Any, params) -> Analysis:
    """Check the schema and the params, then interpret every node."""
    doc = _plain(schema_mod.validate(doc))
    p = backtest_params.resolve(params)
    analysis = Analysis(params=p, condition_nodes=[], sizing=p.position_sizing, exposure=p.exposure,
                        risk_per_trade=p.risk_per_trade, doc=doc)
    problems: list[tuple[str, str]] = []
    first_problem: dict[str, str] = {}
    customs: dict[str, Series] = {}
    for i, node in enumerate(doc["nodes"]):
        if node["type"] == "indicator":
            meta = node["meta"]
            try:
                series = compile_indicator(node["id"], meta["name"], meta["expression"], customs)
            except RuleError as exc:
                problems.append((f"nodes[{i}].meta.expression", exc.reason))
                continue
            customs[meta["name"]] = series
            analysis.custom.append((node["id"], series, meta["expression"]))
    parsed = _parse_rules(doc, p.timeframe, customs)

    for i, node in enumerate(doc["nodes"]):
        node_id, node_type, meta = node["id"], node["type"], node["meta"]
        if node_type in SIDE:
            plans: list[RulePlan] = []
            for j, text in enumerate(meta.get("rules", [])):
                field = f"nodes[{i}].meta.rules[{j}]"
                try:
                    result = parsed[(i, j)]
                    if isinstance(result, RuleError):
                        raise result
                    condition, notes = result.condition, result.warnings
                except RuleError as exc:
                    closest = "; ".join(f'"{x}"' for x in exc.suggestions)
                    near = (f". If you meant \"{exc.suggestion}\", resubmit it as meta.conditions: "
                            f"[{json.dumps(exc.near_miss, sort_keys=True)}]") if exc.near_miss else ""
                    problems.append((field, f"node '{node_id}': rule \"{text}\" is not understood: {exc.reason}. "
                                            f"Closest supported phrasings: {closest}{near}"))
                    first_problem = first_problem or {"node_id": node_id, "rule": text, "suggestion": exc.suggestion,
                                                      "suggestions": " | ".join(exc.suggestions),
                                                      **({"structured": json.dumps(exc.near_miss, sort_keys=True)} if exc.near_miss else {})}
                    continue
                analysis.warnings.extend(f"node '{node_id}': {note}" for note in notes)
                plans.append(RulePlan(text, field, condition))
            for j, spec in enumerate(meta.get("conditions", [])):
                field = f"nodes[{i}].meta.conditions[{j}]"
                text = json.dumps(spec, sort_keys=True)
                try:
                    condition = parse_condition(spec)
                except RuleError as exc:
                    problems.append((field, f"node '{node_id}': condition {text} is not valid: {exc.reason}"))
                    first_problem = first_problem or {"node_id": node_id, "rule": text}
                    continue
                plans.append(RulePlan(text, field, condition, structured=True))
            side = _node_side(i, node, p.direction, parsed, problems)
            analysis.condition_nodes.append(ConditionNode(node_id, node_type, meta.get("combine", "all"), tuple(plans), side))
        elif node_type == "take_profit" and p.direction != "long" and meta["target_pct"] >= 100:
            problems.append((f"nodes[{i}].meta.target_pct", f"node '{node_id}': a take profit of {num(_dec(meta['target_pct']))}% "
                                                            f"on a short needs the price to fall to 0 or below; use less than 100"))
        elif node_type == "take_profit":
            analysis.take_profit = Stop(node_id, node_type, pct=_dec(meta["target_pct"]))
        elif node_type in ("stop_loss", "trailing_stop"):
            pct = meta.get("stop_pct", meta.get("trail_pct"))
            stop = Stop(
                node_id, node_type,
                pct=_dec(pct) if pct is not None else None,
                atr_multiple=_dec(meta["atr_multiple"]) if "atr_multiple" in meta else None,
                atr_window=int(meta.get("atr_window", 14)),
            )
            setattr(analysis, node_type, stop)
        elif node_type == "time_exit":
            analysis.time_exit = (node_id, int(meta["max_bars"]))
        elif node_type == "position_sizing":
            analysis.sizing_node = node_id
            analysis.sizing = meta.get("method", analysis.sizing)
            analysis.exposure = float(meta.get("exposure", analysis.exposure))
            analysis.risk_per_trade = float(meta.get("risk_per_trade", analysis.risk_per_trade))

    if analysis.sizing == "risk" and analysis.stop_loss is None and analysis.trailing_stop is None:
        field = (f"nodes[{next(i for i, n in enumerate(doc['nodes']) if n['type'] == 'position_sizing')}].meta.method"
                 if analysis.sizing_node else "params.position_sizing")
        problems.append((field, "position_sizing risk needs a stop_loss or trailing_stop node: a trade's risk is the "
                                "distance from its entry to its stop (or use one of percent, equal, equity, fixed)"))
    if problems:
        count = len(problems)
        raise errors.invalid_argument(
            problems[0][1] if count == 1 else f"{count} problems in the strategy; the first: {problems[0][1]}",
            problems,
            reason="RULE_NOT_UNDERSTOOD" if first_problem else "STRATEGY_INVALID",
            **first_problem,
        )
    _interpret(analysis, doc)
    return analysis


def _node_side(i: int, node: dict, direction: str, parsed: dict, problems: list[tuple[str, str]]) -> str:
    """A condition node's side: meta.side, else its rules' wording ("Sell short when"), else the direction's."""
    node_id, meta = node["id"], node["meta"]
    worded = {r.position for (k, _j), r in parsed.items() if k == i and isinstance(r, Parsed) and r.position}
    side = meta.get("side") or (worded.pop() if worded else ("short" if direction == "short" else "long"))
    if meta.get("side") and worded and meta["side"] != "short":
        problems.append((f"nodes[{i}].meta.side", f"node '{node_id}': meta.side is {meta['side']} but its rule is about a short "
                                                  f"position (\"sell short\", \"cover\")"))
    if side == "both" and node["type"] == "entry_condition":
        problems.append((f"nodes[{i}].meta.side", f"node '{node_id}': an entry_condition opens one side, long or short; "
                                                  f"use two nodes for both"))
    fits = {"long": ("long", "both"), "short": ("short", "both"), "both": ("long", "short", "both")}[direction]
    if side not in fits:
        wanted = "short or both" if side == "short" else "long or both"
        problems.append(("params.direction", f"node '{node_id}' is for {side} positions but params.direction is {direction} "
                                             f"(one of {', '.join(backtest_params.DIRECTIONS)}): set it to {wanted}"))
    return side


def _parse_rules(doc: dict, timeframe: str, customs: dict[str, Series]) -> dict[tuple[int, int], "Parsed | RuleError"]:
    """Every written rule, parsed; a rule that names no series ("Sell when it is above 70") binds to the one
    series the strategy's other rules compare with a level, or is rejected when there is none or several."""
    out: dict[tuple[int, int], Parsed | RuleError] = {}
    for i, node in enumerate(doc["nodes"]):
        if node["type"] in SIDE:
            for j, text in enumerate(node["meta"].get("rules", [])):
                try:
                    out[(i, j)] = parse_rule_in(text, SIDE[node["type"]], timeframe, customs=customs)
                except RuleError as exc:
                    out[(i, j)] = exc
    subjects = {r.subject.key: r.subject for r in out.values() if isinstance(r, Parsed) and r.subject is not None}
    for (i, j), result in out.items():
        if not isinstance(result, NeedsSubject):
            continue
        node = doc["nodes"][i]
        text = node["meta"]["rules"][j]
        if len(subjects) == 1:
            try:
                out[(i, j)] = parse_rule_in(text, SIDE[node["type"]], timeframe, next(iter(subjects.values())), customs)
            except RuleError as exc:
                out[(i, j)] = exc
        elif subjects:
            names = ", ".join(sorted(s.label for s in subjects.values()))
            result.reason += f"; the strategy's other rules name several series ({names}), so it cannot be bound to one"
    return out


def _short_stop_words(stop: Stop) -> tuple[str, str]:
    """(interpretation, formula) of a stop node on a short position: every level turned over."""
    k = f"{num(stop.pct)}%" if stop.pct is not None else f"{num(stop.atr_multiple)} x ATR({stop.atr_window}) of the entry bar"
    if stop.node_type == "take_profit":
        return (f"take profit {k} below the entry price, checked on each later bar's low (at the open when the bar "
                f"opens below it)", f"exit when low <= entry * {num(1 - stop.pct / 100)}")
    if stop.node_type == "stop_loss":
        return (f"stop loss {k} above the entry price, checked on each later bar's high (at the open when the bar "
                f"opens above it)", "exit when high >= entry + stop distance")
    return (f"trailing stop {k} above the lowest price since the entry (the entry price, then the low of each "
            f"completed bar), checked on the high", "exit when high[t] >= min(entry, low[entry+1..t-1]) * (1 + trail)")


def _stop_words(stop: Stop, direction: str = "long") -> tuple[str, str, str]:
    """(rule, interpretation, formula) of a stop node, for the strategy's direction."""
    rule, words, formula = _long_stop_words(stop)
    if direction == "long":
        return rule, words, formula
    short_words, short_formula = _short_stop_words(stop)
    if direction == "short":
        return rule, f"Short position: {short_words}; the exit buys back at that level plus slippage.", short_formula
    return rule, f"{words} Short positions, mirrored: {short_words}.", f"long: {formula}; short: {short_formula}"


def _long_stop_words(stop: Stop) -> tuple[str, str, str]:
    if stop.node_type == "take_profit":
        return (
            f"target_pct: {num(stop.pct)}",
            f"Take profit: exit when the price reaches {num(stop.pct)}% above the entry price, "
            f"checked intrabar on each later bar's high; the exit fills at that level (at the open when the bar opens "
            f"above it), less slippage.",
            f"exit when high >= entry_close * {num(1 + stop.pct / 100)}",
        )
    if stop.node_type == "stop_loss":
        if stop.pct is not None:
            return (
                f"stop_pct: {num(stop.pct)}",
                f"Stop loss: exit when the price falls {num(stop.pct)}% below the entry price, "
                f"checked intrabar on each later bar's low; the exit fills at that level (at the open when the bar opens "
                f"below it), less slippage.",
                f"exit when low <= entry_close * {num(1 - stop.pct / 100)}",
            )
        return (
            f"atr_multiple: {num(stop.atr_multiple)}, atr_window: {stop.atr_window}",
            f"Stop loss: exit when the price falls {num(stop.atr_multiple)} x ATR({stop.atr_window}) (Wilder) below the "
            f"entry bar's close, with the ATR of the entry bar; checked intrabar on the low. Entries wait until the ATR "
            f"exists.",
            f"exit when low <= entry_close - {num(stop.atr_multiple)} * ATR({stop.atr_window})[entry]",
        )
    if stop.pct is not None:
        return (
            f"trail_pct: {num(stop.pct)}",
            f"Trailing stop: exit when the price falls {num(stop.pct)}% below the highest price since the entry "
            f"(the entry price, then the high of each completed bar), checked intrabar on the low; the exit "
            f"fills at that level (at the open when the bar opens below it), less slippage.",
            f"exit when low[t] <= max(entry_close, high[entry+1..t-1]) * {num(1 - stop.pct / 100)}",
        )
    return (
        f"atr_multiple: {num(stop.atr_multiple)}, atr_window: {stop.atr_window}",
        f"Trailing stop: trail {num(stop.atr_multiple)} x ATR({stop.atr_window}) of the entry bar, fixed as a fraction "
        f"of the entry close, below the highest price since the entry; checked intrabar on the low.",
        f"exit when low <= peak * (1 - {num(stop.atr_multiple)} * ATR({stop.atr_window})[entry] / entry_close)",
    )


def _interpret(a: Analysis, doc: dict) -> None:
    p = a.params
    by_id = {n.node_id: n for n in a.condition_nodes}
    stops = {s.node_id: s for s in (a.take_profit, a.stop_loss, a.trailing_stop) if s is not None}
    seen: dict[str, None] = {}
    longest: tuple[int, str] = (0, "")

    def note_series(series_list: list[Series]) -> None:
        nonlocal longest
        for s in series_list:
            if s.is_indicator and s.label not in seen:
                seen[s.label] = None
            if s.settled_after > longest[0]:
                longest = (s.settled_after, s.label)

    for node in doc["nodes"]:
        nid, ntype = node["id"], node["type"]
        if nid in by_id:
            cn = by_id[nid]
            for plan in cn.rules:
                words = plan.condition.words()
                action = ACTION[ntype] if p.direction == "long" else SIDE_ACTION[(ntype, cn.side)]
                a.rules.append(RuleInfo(nid, ntype, plan.text, f"{action} {words}, at the close of the bar.",
                                        plan.condition.full_formula()))
                note_series(plan.condition.series_needed())
            if len(cn.rules) > 1:
                joiner = " and " if cn.combine == "all" else " or "
                a.rules.append(RuleInfo(
                    nid, ntype, f"combine: {cn.combine}",
                    f"The node's {len(cn.rules)} rules combine with '{cn.combine}': "
                    f"{'every rule must hold' if cn.combine == 'all' else 'any one rule is enough'} on the same bar.",
                    joiner.join(f"({r.condition.formula()})" for r in cn.rules) + AT_CLOSE,
                ))
        elif nid in stops:
            stop = stops[nid]
            rule, words, formula = _stop_words(stop, p.direction)
            a.rules.append(RuleInfo(nid, ntype, rule, words, formula))
            if stop.atr_multiple is not None:
                note_series(list(stop.atr.walk()))
        elif ntype == "time_exit":
            bars = a.time_exit[1]
            a.rules.append(RuleInfo(
                nid, ntype, f"max_bars: {bars}",
                f"Time exit: a position still open {bars} bars after its entry bar is closed at that bar's close.",
                f"exit at the close of bar entry_bar + {bars} if still open",
            ))
        elif ntype == "indicator":
            series = next(s for node_id, s, _e in a.custom if node_id == nid)
            a.rules.append(RuleInfo(
                nid, ntype, f"{series.label} = {node['meta']['expression']}",
                f"Custom indicator {series.label}: {node['meta']['expression']}, computed on each bar from bars up to t.",
                series.lines[0].split(" = ", 1)[1],
            ))
            note_series(list(series.walk()))
        elif ntype == "position_sizing":
            a.rules.append(RuleInfo(nid, ntype, json.dumps(node["meta"], sort_keys=True), _sizing_words(a), _sizing_formula(a)))

    a.rules.extend(_execution_rules(a))
    a.indicators = list(seen)
    _warn(a, longest)
    a.summary = _summary(a)


def _execution_rules(a: Analysis) -> list[RuleInfo]:
    """The backtest-wide execution rules, each with its params field, stated in every analysis."""
    p = a.params
    fill = {
        "close": ("An entry or exit signal fills at the close of its signal bar (plus slippage); the entry price is that close.",
                  "fill[t] = close[t] for a signal at t"),
        "next_open": ("An entry or exit signal fills at the open of the next bar (plus slippage); the entry price is that open. "
                      "A signal on the last bar does not fill.",
                      "fill[t+1] = open[t+1] for a signal at t"),
    }[p.fill_at]
    order = {
        "stop_first": ("When a bar reaches both the stop and the target without opening past either, the stop is assumed "
                       "to come first.", "low <= stop and high >= target -> exit at stop"),
        "target_first": ("When a bar reaches both the stop and the target without opening past either, the target is "
                         "assumed to come first.", "low <= stop and high >= target -> exit at target"),
    }[p.stop_target_order]
    reentry = {
        "skip": ("An entry signal whose fill would fall on the bar of an exit (one order per bar) is dropped and counted "
                 "in skipped_signals with reason exit_bar; the next entry needs a signal on a later bar.",
                 "entry[t] ignored when an exit fills at t"),
        "next_bar": ("An entry signal whose fill would fall on the bar of an exit is carried to the next bar and fills "
                     "there (at its close or open per fill_at), even when the entry condition no longer holds then.",
                     "entry[t] with an exit at t -> fill at t+1"),
    }[p.reentry]
    prices = {
        "raw": ("Prices: raw: the bars as traded (split-adjusted); dividends are not counted, in the strategy or in "
                "its benchmark, whose return is a price return.", "bars = open, high, low, close as traded"),
        "total_return": ("Prices: total_return: dividends reinvested; open, high, low and close are scaled by "
                         "adj_close / close each bar (as yfinance's auto_adjust does), for the strategy and its "
                         "benchmark, whose return is then a total return.", "price[t] = price_raw[t] * adj_close[t] / close[t]"),
    }[p.prices]
    if p.benchmark == PORTFOLIO_BENCHMARK:
        bench = (f"Benchmark: the traded symbols ({', '.join(p.symbols)}) in equal parts, 1/{len(p.symbols)} of the "
                 "capital each, bought at the first close and held in one portfolio with the same capital, fees and "
                 "slippage.", "benchmark[t] = sum_i (capital / N) * close_i[t] / close_i[first], before costs")
    else:
        bench = (f"Benchmark: {p.benchmark} bought at the first close and held with the same capital, fees and slippage.",
                 "benchmark[t] = capital * close[t] / close[first], before costs")
    direction = {
        "long": ("Direction: long: long positions only; every entry buys.", "position >= 0"),
        "short": ("Direction: short: short positions only; every entry sells short and its exit buys back, with the same fees and "
                  "slippage. Stops are mirrored: the stop loss sits above the entry price and the trailing stop above "
                  "the lowest price since the entry, checked on each bar's high; the take profit sits below the entry, "
                  "checked on the low. No margin model: no borrow fee, no margin call, the proceeds stay in cash.",
                  "position <= 0; short stop = entry * (1 + stop), short target = entry * (1 - target)"),
        "both": ("Direction: both: long and short positions, one per symbol at a time: an entry signal of either side while a "
                 "position is open is ignored; a long and a short entry on one bar is neither (skipped_signals, reason "
                 "both_sides); a reversal on one bar follows the re-entry rule (one order per bar). Shorts pay the same "
                 "fees and slippage, with every stop mirrored (above the entry, checked on the high; the target below, "
                 "on the low). No margin model: no borrow fee, no margin call.",
                 "position in {long, flat, short}; short stop = entry * (1 + stop), short target = entry * (1 - target)"),
    }[p.direction]
    rules = [
        RuleInfo("direction", EXECUTION_RULE, f"direction: {p.direction}", *direction),
        RuleInfo("prices", EXECUTION_RULE, f"prices: {p.prices}", prices[0], prices[1]),
        RuleInfo("benchmark", EXECUTION_RULE, f"benchmark: {p.benchmark}", *bench),
        *([] if a.sizing_node else [RuleInfo("position_sizing", EXECUTION_RULE, f"position_sizing: {a.sizing}",
                                             _sizing_words(a), _sizing_formula(a))]),
        RuleInfo("fill_at", EXECUTION_RULE, f"fill_at: {p.fill_at}", "Fill timing: " + fill[0], fill[1]),
        RuleInfo("stop_target_order", EXECUTION_RULE, f"stop_target_order: {p.stop_target_order}",
                 "Same-bar stop and target: " + order[0] + " A bar that opens past a stop or target exits at its open "
                 "(gaps fill at the open), less slippage. Stops and targets are checked from the bar after the entry fill.",
                 order[1] + "; open past a level -> exit at open"),
        RuleInfo("reentry", EXECUTION_RULE, f"reentry: {p.reentry}", "Re-entry after an exit: " + reentry[0], reentry[1]),
        RuleInfo("exit_reason", EXECUTION_RULE, "exit reasons",
                 "Each trade records what closed it: tp, sl, trail, time_exit, the id of the exit node whose rule fired, "
                 "or end_of_data for a trade still open at the last bar. An open trade is valued at the last close: its "
                 "PnL (open_trades_pnl) is in the equity, total return and final value, not in the trade count or win rate.",
                 "exit_reason in {tp, sl, trail, time_exit, <exit node id>, end_of_data}"),
    ]
    if a.stop_loss is not None and a.trailing_stop is not None:
        rules.append(RuleInfo(
            a.trailing_stop.node_id, EXECUTION_RULE, "stop_loss + trailing_stop",
            f"Stop loss (node '{a.stop_loss.node_id}') and trailing stop (node '{a.trailing_stop.node_id}') are both live: "
            f"on each bar the effective stop is the higher of the two levels; the exit reason names the one that fired.",
            "stop[t] = max(stop_loss_level, trailing_level[t])",
        ))
    return rules


def _sizing_words(a: Analysis) -> str:
    pct = num(_dec(a.exposure) * 100)
    n = len(a.params.symbols)
    shared = " (one portfolio with shared cash; an entry buys less when the cash runs short)" if n > 1 else ""
    if a.sizing == "equal" and n > 1:
        return (f"Position sizing: equal weights in one portfolio with shared cash; each entry buys {pct}% of the "
                f"initial capital / {n} symbols worth (less when the shared cash runs short).")
    if a.sizing == "fixed":
        value = num(_dec(a.exposure * a.params.initial_capital))
        return f"Position sizing: fixed cash: each entry buys {value} worth ({pct}% of the initial capital){shared}."
    if a.sizing == "equity":
        return (f"Position sizing: each entry takes {pct}% of the equity (cash plus open positions at the bar's prices, "
                f"before its orders){shared}.")
    if a.sizing == "risk":
        risk = num(_dec(a.risk_per_trade) * 100)
        return (f"Position sizing: risk {risk}% of the equity per trade: each entry buys (or sells short) the units that "
                f"lose {risk}% of the equity if its initial stop is hit (stop distance as a fraction of the entry price: "
                f"the tighter of the stop loss and the trailing stop), at most the whole equity (no leverage); "
                f"slippage and fees come on top{shared}.")
    return f"Position sizing: each entry invests {pct}% of the cash available{shared}."


def _sizing_formula(a: Analysis) -> str:
    x = num(_dec(a.exposure))
    n = len(a.params.symbols)
    return {
        "equal": f"size = {x} * initial_capital / {n} in value per entry" if n > 1 else f"size = {x} * available cash",
        "fixed": f"size = {x} * initial_capital in value per entry",
        "equity": f"position value = {x} * equity[t]",
        "risk": f"units = min(1, {num(_dec(a.risk_per_trade))} / stop_fraction) * equity[t] / entry_price",
    }.get(a.sizing, f"size = {x} * available cash")


def _warn(a: Analysis, longest: tuple[int, str]) -> None:
    # Indicators warm up on bars before start_date: as many as the slowest needs to settle
    # (its window; for EMA and Wilder smoothing, SETTLE_TIME_CONSTANTS time constants).
    p = a.params
    settle, label = longest
    a.warmup_bars = settle + 1 if settle else 0  # + 1: a cross compares with the bar before start_date too
    if a.warmup_bars:
        a.warmup_note = _warmup_note(a, label)
    tp, sl = a.take_profit, a.stop_loss
    if tp is not None and sl is not None and sl.pct is not None and sl.pct > tp.pct:
        a.warnings.append(f"the stop loss ({num(sl.pct)}%) is wider than the take profit ({num(tp.pct)}%)")
    for side in a.sides:
        if len(a.sides) > 1 and not a.nodes_of("entry_condition", side):
            a.warnings.append(f"params.direction is both but no entry_condition is for {side} positions: no {side} trade opens")
    if not (a.nodes_of("exit_condition") or tp or sl or a.trailing_stop or a.time_exit):
        a.warnings.append("nothing closes a position (no exit_condition, take_profit, stop_loss, trailing_stop or time_exit): a trade stays open to the end")
    if a.sizing_node:
        pairs = {"position_sizing": (p.position_sizing, a.sizing), "exposure": (p.exposure, a.exposure),
                 "risk_per_trade": (p.risk_per_trade, a.risk_per_trade)}
        changed = {name: [v if isinstance(v, str) else num(_dec(v)) for v in pair]
                   for name, pair in pairs.items() if pair[0] != pair[1]}
        if changed:
            a.warnings.append(f"node '{a.sizing_node}' (position_sizing) overrides the request's "
                              + ", ".join(f"{name}={was}" for name, (was, _) in changed.items()) + " with "
                              + ", ".join(f"{name}={now}" for name, (_, now) in changed.items()))
    if a.sizing == "equal" and len(p.symbols) == 1:
        a.warnings.append("position_sizing 'equal' with one symbol is the same as 'percent'")


def _warmup_note(a: Analysis, label: str) -> str:
    return (
        f"Warm-up: warmup_bars = {a.warmup_bars} {a.params.bar_words} bars before start_date, so the slowest "
        f"indicator, {label}, has settled at start_date: a window is exact after its length; an EMA(n) or a "
        f"Wilder average(n) keeps exp(-{ind.SETTLE_TIME_CONSTANTS}) ~ 0.25% of its seed after "
        f"{ind.SETTLE_TIME_CONSTANTS} time constants, 3 * (n + 1) or 6 * n bars; one bar more for a cross, which "
        f"looks at the previous bar. With fewer bars of data before start_date the first values depend on "
        f"where the data starts (the execution then warns)."
    )


def _either(conditions: list[Condition]) -> str:
    if len(conditions) == 1:
        return conditions[0].short()
    return " or ".join(f"({c.short()})" for c in conditions)


def _summary(a: Analysis) -> str:
    p = a.params
    parts = []
    words = {"long": ("enter", "exit"), "short": ("sell short", "cover")}
    for side in a.sides:
        entry, exit_ = words[side] if p.direction != "long" else words["long"]
        entries = a.nodes_of("entry_condition", side)
        if entries:
            parts.append(f"{entry} when " + _either([n.condition for n in entries]))
        for f in a.nodes_of("filter", side):
            parts.append("only if " + f.condition.short())
        exits = a.nodes_of("exit_condition", side)
        if exits:
            parts.append(f"{exit_} when " + _either([n.condition for n in exits]))
    if a.take_profit:
        parts.append(f"take profit +{num(a.take_profit.pct)}%")
    if a.stop_loss:
        sl = a.stop_loss
        parts.append(f"stop loss -{num(sl.pct)}%" if sl.pct is not None else f"stop loss {num(sl.atr_multiple)} x ATR({sl.atr_window})")
    if a.trailing_stop:
        ts = a.trailing_stop
        parts.append(f"trailing stop {num(ts.pct)}%" if ts.pct is not None else f"trailing stop {num(ts.atr_multiple)} x ATR({ts.atr_window})")
    if a.time_exit:
        parts.append(f"exit after {a.time_exit[1]} bars")
    return f"{', '.join(p.symbols)}, {p.bar_words} bars, {p.start_date} to {p.end_date}: " + "; ".join(parts)
