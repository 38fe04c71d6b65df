"""Analysis -> the text of a standalone VectorBT script.

Deterministic: the text depends on the analysis only (no time, no random
names, no set ordering), so the same schema and params give byte-identical
code. Everything user-written that reaches the script (node ids, rule
texts) goes through json.dumps into comments, so it can never become code.
"""
from __future__ import annotations

import hashlib
import json
import re
import textwrap

from services.codegen.compiler import EXECUTION_RULE, Analysis, ConditionNode, Stop
from services.common.backtest_params import EQUITY_SIZINGS, PORTFOLIO_BENCHMARK
from services.codegen.grammar.ir import Series, num
from stratexec_runtime.execution import LINE_PREFIX

INDENT = "    "


def sha256(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def _q(text: str) -> str:
    """A user-written string as a one-line, quoted comment fragment."""
    return json.dumps(text)


def _ident(node_id: str, taken: set[str]) -> str:
    base = "node_" + (re.sub(r"[^0-9a-zA-Z_]+", "_", node_id).strip("_").lower() or "unnamed")
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _rule_text(rule) -> str:
    # A structured condition is already one line of JSON; a written rule is quoted.
    return f"condition {rule.text}" if rule.structured else _q(rule.text)


class Block:
    """Lines of one function body, with the series already defined in it."""

    def __init__(self, predefined: tuple[str, ...] = ("close",)):
        self.lines: list[str] = []
        self.defined: set[str] = set(predefined)

    def comment(self, text: str) -> None:
        for line in text.splitlines():
            self.lines.append(f"{INDENT}# {line}" if line else f"{INDENT}#")

    def code(self, line: str) -> None:
        self.lines.append(INDENT + line)

    def blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def define(self, series_list: list[Series]) -> None:
        """Emit the statements of every series not defined yet, with the definition they follow."""
        last_note = ""
        for s in series_list:
            if s.key in self.defined:
                continue
            self.defined.add(s.key)
            if s.note and s.note != last_note:
                self.comment(s.note)
                last_note = s.note
            for line in s.lines:
                self.code(line)


def _condition_node(block: Block, node: ConditionNode, target: str) -> None:
    head = f"Node {_q(node.node_id)} ({node.node_type})"
    if len(node.rules) == 1:
        rule = node.rules[0]
        block.comment(f"{head}: {_rule_text(rule)}")
        block.comment(rule.condition.full_formula() + ".")
        block.define(rule.condition.series_needed())
        block.code(f"{target} = {rule.condition.expr()}")
        return
    how = "all must hold" if node.combine == "all" else "any one is enough"
    block.comment(f'{head}: {len(node.rules)} rules, {how} (combine = "{node.combine}")')
    names = []
    for k, rule in enumerate(node.rules, start=1):
        name = f"{target}_rule_{k}"
        names.append(name)
        block.comment(f"Rule {k}: {_rule_text(rule)}")
        block.comment(rule.condition.full_formula() + ".")
        block.define(rule.condition.series_needed())
        block.code(f"{name} = {rule.condition.expr()}")
    joiner = " & " if node.combine == "all" else " | "
    block.code(f"{target} = {joiner.join(names)}")


PREFIX = {"long": "", "short": "short_"}  # signal column names of each side: entries / short_entries, ...


def _signals_function(a: Analysis) -> list[str]:
    block = Block()
    block.code('close = ohlc["close"]')
    single = len(a.sides) == 1
    direct_entry = {side: single and len(a.nodes_of("entry_condition", side)) == 1 and not a.nodes_of("filter", side)
                    and not _atr_stops(a) for side in a.sides}
    direct_exit = {side: single and len(a.nodes_of("exit_condition", side)) == 1 for side in a.sides}
    taken: set[str] = set()
    names: dict[str, str] = {}
    for node_id, series, _expression in a.custom:
        block.blank()
        block.comment(f"Node {_q(node_id)} (indicator):")
        block.define(list(series.walk()))
    for node in a.condition_nodes:
        block.blank()
        prefix = PREFIX.get(node.side, "")
        if node.node_type == "entry_condition" and direct_entry.get(node.side):
            target = prefix + "entries"
        elif node.node_type == "exit_condition" and direct_exit.get(node.side):
            target = prefix + "exits"
        else:
            target = _ident(node.node_id, taken)
        names[node.node_id] = target
        _condition_node(block, node, target)

    columns = []
    for side in a.sides:
        prefix, entries, exits = PREFIX[side], a.nodes_of("entry_condition", side), a.nodes_of("exit_condition", side)
        filters = a.nodes_of("filter", side)
        whose = "" if a.params.direction == "long" else f" of {side} positions"
        if not direct_entry[side]:
            block.blank()
            parts = [names[n.node_id] for n in entries]
            expr = ("(" + " | ".join(parts) + ")" if len(parts) > 1 else parts[0]) if parts else "pd.Series(False, index=close.index)"
            words = "the entry node" if len(parts) == 1 else "any entry node" if parts else "no entry node"
            if filters:
                expr += " & " + " & ".join(names[f.node_id] for f in filters)
                words += " and every filter"
            for stop in _atr_stops(a):
                if side == a.sides[0]:
                    block.comment(f"Node {_q(stop.node_id)} ({stop.node_type}) needs the ATR of the entry bar: entries wait until it exists.")
                block.define(list(stop.atr.walk()))
                expr += f" & {stop.atr.var}.notna()"
                words += f", once the ATR({stop.atr_window}) exists"
            block.comment(f"Entries{whose}: {words}.")
            block.code(f"{prefix}entries = {expr}")
        if not exits:
            block.blank()
            block.code(f"{prefix}exits = pd.Series(False, index=close.index)  # no exit_condition node{whose.replace(' of', ' for')}")
            block.code(f'{prefix}exit_node = ""')
        else:
            if not direct_exit[side]:
                block.blank()
                block.comment(f"Exits{whose}: any exit node.")
                block.code(f"{prefix}exits = " + " | ".join(names[n.node_id] for n in exits))
            block.comment("The exit node that fired (the first in the strategy's order): each trade's exit reason.")
            block.code(f"{prefix}exit_node = np.select([" + ", ".join(names[n.node_id] for n in exits) + "], ["
                       + ", ".join(json.dumps(n.node_id) for n in exits) + '], default="")')
        columns += [f'"{prefix}{name}": {prefix}{name}' for name in ("entries", "exits", "exit_node")]

    columns = ", ".join(columns) + "".join(f', "{s.var}": {s.var}' for _n, s, _e in a.custom)
    for stop in _atr_stops(a):
        column = "sl_distance" if stop.node_type == "stop_loss" else "trail_distance"
        block.blank()
        unit = "in price units" if stop.node_type == "stop_loss" else "as a fraction of the close"
        block.comment(f"Node {_q(stop.node_id)} ({stop.node_type}): {num(stop.atr_multiple)} x ATR({stop.atr_window}) {unit}; "
                      f"the rules read it at the entry's signal bar.")
        block.code(f"{column} = {num(stop.atr_multiple)} * {stop.atr.var}" + ("" if stop.node_type == "stop_loss" else " / close"))
        columns += f', "{column}": {column}'
    charted = _charted(a)
    if charted:
        block.blank()
        block.comment("The indicators the rules read, for the report's chart (not read by the rules).")
        columns += "".join(f", {json.dumps(LINE_PREFIX + s.label)}: {s.var}" for s in charted)
    block.blank()
    block.code(f"return pd.DataFrame({{{columns}}})")
    return [
        "def signals(ohlc):",
        f'{INDENT}"""Entry and exit signals of one symbol\'s bars (columns open, high, low, close, volume).',
        "",
        f"{INDENT}A signal at bar t uses bars up to t only; RULES say where its order fills.",
        f'{INDENT}"""',
        *block.lines,
    ]


def _charted(a: Analysis) -> list[Series]:
    """Every indicator a condition compares (not the price fields, not what it is computed from), once, in the
    strategy's order."""
    found: dict[str, Series] = {}
    for node in a.condition_nodes:
        for s in node.condition.compared():
            if s.is_indicator:
                found.setdefault(s.key, s)
    return list(found.values())


def _atr_stops(a: Analysis) -> list[Stop]:
    return [s for s in (a.stop_loss, a.trailing_stop) if s is not None and s.atr_multiple is not None]


def _stop_comment(stop: Stop) -> str:
    if stop.node_type == "take_profit":
        return f"Node {_q(stop.node_id)} (take_profit): exit at +{num(stop.pct)}% from the entry price, checked on the bar's high."
    if stop.node_type == "stop_loss":
        if stop.pct is not None:
            return f"Node {_q(stop.node_id)} (stop_loss): exit at -{num(stop.pct)}% from the entry price, checked on the bar's low."
        return (f"Node {_q(stop.node_id)} (stop_loss): exit {num(stop.atr_multiple)} x ATR({stop.atr_window}) below the "
                f"entry price, checked on the bar's low.")
    if stop.pct is not None:
        return (f"Node {_q(stop.node_id)} (trailing_stop): exit {num(stop.pct)}% below the highest price since the entry, "
                f"checked on the bar's low.")
    return (f"Node {_q(stop.node_id)} (trailing_stop): exit {num(stop.atr_multiple)} x ATR({stop.atr_window}) (of the entry "
            f"bar, as a fraction of its close) below the highest price since the entry, checked on the bar's low.")


def _stop_comments(a: Analysis) -> list[str]:
    """Comment lines for the stop nodes."""
    stops = [s for s in (a.take_profit, a.stop_loss, a.trailing_stop) if s is not None]
    if not stops:
        return ["No take_profit, stop_loss or trailing_stop node: positions close on exit signals only."]
    comments = [_stop_comment(s) for s in stops]
    if a.stop_loss and a.trailing_stop:
        comments.append("Both stops are live: on each bar the higher of the two levels is the effective stop"
                        + (" (the lower for a short)." if a.params.direction != "long" else "."))
    if a.params.direction != "long":
        comments.append("Short positions: every level is mirrored: the stops sit above (the trailing stop above the lowest "
                        "low since the entry), checked on the bar's high; the target below, checked on the low.")
    return comments


def _rules_literal(a: Analysis) -> list[str]:
    """RULES: what stratexec_runtime.plan_trades applies, with one comment per execution rule."""
    def stop(s: Stop | None):
        if s is None:
            return None
        return "atr" if s.atr_multiple is not None else float(s.pct / 100)

    values = {
        "fill_at": a.params.fill_at,
        "stop_target_order": a.params.stop_target_order,
        "reentry": a.params.reentry,
        "take_profit": stop(a.take_profit),
        "stop_loss": stop(a.stop_loss),
        "trailing_stop": stop(a.trailing_stop),
        "max_bars": a.time_exit[1] if a.time_exit else None,
    }
    lines = ["# Execution rules (stratexec_runtime.plan_trades decides every fill with them; vectorbt does the accounting):"]
    lines += [f"# - {rule.interpretation}" for rule in a.rules if rule.node_type == EXECUTION_RULE]
    lines += ["RULES = {", *[f"    {json.dumps(k)}: {'None' if v is None else json.dumps(v)}," for k, v in values.items()], "}"]
    return lines


def _costs(a: Analysis) -> str:
    return f'init_cash=PARAMS["initial_capital"], fees=PARAMS["fees"], slippage=PARAMS["slippage"], freq="{a.params.freq}",'


def _portfolio_call(a: Analysis, multi: bool) -> list[str]:
    if a.sizing in EQUITY_SIZINGS:
        return _orders_call(a, multi)
    shorts = a.params.direction != "long"
    if multi:
        data = ["    close, long_entries, long_exits," if shorts else "    close, entries, exits,"]
    elif shorts:
        data = ['    ohlc["close"], plan.long_entries, plan.long_exits,']
    else:
        data = ['    ohlc["close"], plan.entries, plan.exits,']
    if shorts:  # with short signals vectorbt trades both ways; one position at a time (plan_trades)
        data.append("    short_entries=short_entries, short_exits=short_exits," if multi else
                    "    short_entries=plan.short_entries, short_exits=plan.short_exits,")
    price = "price" if multi else "plan.price"
    if multi and a.sizing == "equal":
        sizing = ['size=PARAMS["exposure"] * PARAMS["initial_capital"] / len(symbols), size_type="value",  # equal weights: each entry buys the same value']
    elif a.sizing == "fixed":
        sizing = ['size=PARAMS["exposure"] * PARAMS["initial_capital"], size_type="value",  # fixed cash: each entry buys this value']
    else:
        sizing = ['size=PARAMS["exposure"], size_type="percent",  # each entry invests this fraction of the cash available']
    if multi and shorts:
        sizing.append("cash_sharing=True, group_by=True, call_seq=call_seq,  # one portfolio: shared cash, exits before entries on a bar")
    elif multi:
        sizing.append('cash_sharing=True, group_by=True, call_seq="auto",  # one portfolio: shared cash, sells before buys on a bar')
    return [
        "pf = vbt.Portfolio.from_signals(",
        *data,
        f"    price={price},  # each order fills at the price the rules decided, plus slippage",
        *(["    accumulate=False, lock_cash=True,  # a short sale ties up its value in cash as a purchase does (no margin)"]
          if shorts else ['    direction="longonly", accumulate=False,']),
        *[f"    {line}" for line in sizing],
        f"    {_costs(a)}",
        ")",
    ]


def _orders_call(a: Analysis, multi: bool) -> list[str]:
    """Sizing on the equity (equity, risk): one order per planned fill with a target percent of the equity."""
    shorts = a.params.direction != "long"
    symbol = json.dumps(a.params.symbols[0])
    what = ("the units that lose risk_per_trade of the equity at the initial stop" if a.sizing == "risk"
            else "exposure of the equity")
    lines = ["pf = vbt.Portfolio.from_orders(",
             "    close, target_percents(plans, close.index, PARAMS)," if multi else
             f'    ohlc["close"], target_percents(plans, ohlc.index, PARAMS)[{symbol}],',
             f'    size_type="targetpercent",  # each entry: {what} (negative: short); 0 closes the position',
             f"    price={'price' if multi else 'plan.price'},  # each order fills at the price the rules decided, plus slippage",
             f'    direction="{"both" if shorts else "longonly"}",' + (" lock_cash=True,  # a short sale ties up its value in cash (no margin)" if shorts else "")]
    if multi:
        lines.append("    cash_sharing=True, group_by=True, call_seq=call_seq,  # one portfolio: shared cash, exits before entries on a bar")
    return [*lines, f"    {_costs(a)}", ")"]


def _order_arrays_line(a: Analysis) -> str:
    if a.sizing in EQUITY_SIZINGS:
        names = ("price", "call_seq")
    elif a.params.direction != "long":
        names = ("long_entries", "long_exits", "short_entries", "short_exits", "price", "call_seq")
    else:
        return "entries, exits, price = order_arrays(plans, close.index)"
    return f"{', '.join(names)} = order_arrays(plans, close.index, {', '.join(json.dumps(n) for n in names)})"


def _multi_symbol_setup(a: Analysis) -> list[str]:
    return [
        'symbols = PARAMS["symbols"]',
        'sig = {symbol: signals(prices[symbol]).loc[PARAMS["start_date"]:] for symbol in symbols}',
        'prices = {symbol: bars.loc[PARAMS["start_date"]:] for symbol, bars in prices.items()}',
        "",
        "# One column per symbol on the union of their calendars. On a day without a bar a symbol has no signal",
        "# and keeps its last close (a flat bar), so nothing fills or stops there.",
        'close = pd.DataFrame({symbol: prices[symbol]["close"] for symbol in symbols}).ffill()',
        'bars = {name: pd.DataFrame({symbol: prices[symbol][name] for symbol in symbols}).reindex(close.index).fillna(close) for name in ("open", "high", "low")}',
        'ohlc = {symbol: pd.DataFrame({"open": bars["open"][symbol], "high": bars["high"][symbol], "low": bars["low"][symbol], "close": close[symbol]}) for symbol in symbols}',
        "no_signal = {" + ", ".join(f'"{PREFIX[side]}{name}": {value}' for side in a.sides
                                    for name, value in (("entries", "False"), ("exits", "False"), ("exit_node", '""'))) + "}",
        "sig = {symbol: sig[symbol].reindex(close.index).fillna(no_signal) for symbol in symbols}",
    ]


def _price_symbols(p) -> str:
    """The symbols the script loads: the traded ones and the benchmark's."""
    return 'PARAMS["symbols"]' if p.benchmark == PORTFOLIO_BENCHMARK else 'PARAMS["symbols"] + [PARAMS["benchmark"]]'


def _benchmark_lines(a: Analysis) -> list[str]:
    p = a.params
    costs = f'init_cash=PARAMS["initial_capital"], fees=PARAMS["fees"], slippage=PARAMS["slippage"], freq="{p.freq}"'
    if p.benchmark != PORTFOLIO_BENCHMARK:
        return ["# Benchmark: bought at the first close and held, with the same capital, fees and slippage.",
                'bench = prices[PARAMS["benchmark"]]',
                f'benchmark_pf = vbt.Portfolio.from_holding(bench["close"], {costs})']
    return ["# Benchmark: the traded symbols in equal parts (1/N of the capital each), bought at the first close and",
            "# held in one portfolio, with the same capital, fees and slippage.",
            "weights = pd.DataFrame(index=close.index, columns=close.columns, dtype=float)  # NaN: no order",
            "weights.iloc[0] = 1 / len(close.columns)",
            f'benchmark_pf = vbt.Portfolio.from_orders(close, size=weights, size_type="targetpercent", group_by=True, cash_sharing=True, {costs})']


def _main_function(a: Analysis) -> list[str]:
    p = a.params
    multi = len(p.symbols) > 1
    body = [
        "parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)",
        'parser.add_argument("--data", help="CSV file or directory of <SYMBOL>.csv; omit to download with yfinance")',
        "args = parser.parse_args(argv)",
        f'prices = load_prices(args.data, {_price_symbols(p)}, PARAMS["start_date"], PARAMS["end_date"], PARAMS["timeframe"],',
        '                     warmup_bars=PARAMS["warmup_bars"], prices=PARAMS["prices"])',
        "",
        "# Indicators are computed on the warm-up bars before start_date too (never on bars after end_date);",
        "# trading starts at start_date.",
        *[f"# {line}" for line in textwrap.wrap(a.warmup_note, 100)],
    ]
    if multi:
        body += _multi_symbol_setup(a)
    else:
        body += [
            f"sig = signals(prices[{json.dumps(p.symbols[0])}]).loc[PARAMS[\"start_date\"]:]",
            'prices = {symbol: bars.loc[PARAMS["start_date"]:] for symbol, bars in prices.items()}',
            f"ohlc = prices[{json.dumps(p.symbols[0])}]",
        ]
    body.append("")
    body += [f"# {c}" for c in _stop_comments(a)]
    if a.time_exit is not None:
        node_id, bars = a.time_exit
        body.append(f"# Node {_q(node_id)} (time_exit): a position still open {bars} bars after its entry bar is closed at that bar's close.")
    if multi:
        plan_lines = [
            "plans = {symbol: plan_trades(ohlc[symbol], sig[symbol], RULES, frozenset(no_cash[symbol])) for symbol in symbols}",
            _order_arrays_line(a),
        ]
    else:
        plan_lines = [
            f"plan = plan_trades(ohlc, sig, RULES, frozenset(no_cash[{json.dumps(p.symbols[0])}]))",
            f"plans = {{{json.dumps(p.symbols[0])}: plan}}",
        ]
    body += [
        "# An entry the portfolio cannot pay for is skipped (reason no_cash) and its symbol stays flat: each pass",
        "# finds the earliest such entry, re-plans without it and simulates again (one pass per skipped entry).",
        'no_cash = {symbol: set() for symbol in PARAMS["symbols"]}',
        "while True:",
        *[INDENT + line for line in plan_lines + _portfolio_call(a, multi)],
        "    missing = unfilled(pf, plans)",
        "    if missing is None:",
        "        break",
        "    no_cash[missing[0]].add(missing[1])",
    ]
    body += [
        "",
        *_benchmark_lines(a),
        'report(pf, benchmark_pf, PARAMS["initial_capital"], symbols=PARAMS["symbols"], plans=plans)',
        "return pf",
    ]
    return ["def main(argv=None):", *[(INDENT + line) if line else "" for line in body]]


def _params_literal(a: Analysis) -> list[str]:
    p = a.params
    values = {
        "symbols": list(p.symbols),
        "benchmark": p.benchmark,
        "timeframe": p.timeframe,
        "start_date": p.start_date,
        "end_date": p.end_date,
        "initial_capital": p.initial_capital,
        "fees": p.fees,
        "slippage": p.slippage,
        "position_sizing": a.sizing,
        "exposure": a.exposure,
        "risk_per_trade": a.risk_per_trade,
        "warmup_bars": a.warmup_bars,
        "prices": p.prices,
        "direction": p.direction,
    }
    return ["PARAMS = {", *[f"    {json.dumps(k)}: {json.dumps(v)}," for k, v in values.items()], "}"]


def _docstring(a: Analysis) -> list[str]:
    summary = a.summary.replace("\\", "/").replace('"""', "'''")
    wrapped = textwrap.wrap("Strategy: " + summary, width=100, break_long_words=False, break_on_hyphens=False)
    return [
        '"""Backtest generated by stratexec codegen.',
        "",
        *wrapped,
        "",
        "Run it yourself:  python strategy.py --data prices.csv   (a CSV file, or a directory of <SYMBOL>.csv)",
        "Without --data the prices are downloaded with yfinance.",
        '"""',
    ]


def emit(a: Analysis) -> str:
    signals = _signals_function(a)
    uses_numpy = any("np." in line for line in signals)
    imports = ["import argparse", ""]
    if uses_numpy:
        imports.append("import numpy as np")
    runtime = ["load_prices", *(["order_arrays"] if len(a.params.symbols) > 1 else []), "plan_trades", "report",
               *(["target_percents"] if a.sizing in EQUITY_SIZINGS else []), "unfilled"]
    imports += ["import pandas as pd", "import vectorbt as vbt", "", f"from stratexec_runtime import {', '.join(runtime)}"]
    lines = [
        "#!/usr/bin/env python3",
        *_docstring(a),
        *imports,
        "",
        *_params_literal(a),
        "",
        *_rules_literal(a),
        "",
        "",
        *signals,
        "",
        "",
        *_main_function(a),
        "",
        "",
        'if __name__ == "__main__":',
        "    main()",
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"
