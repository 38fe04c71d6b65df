"""Strategy + grid -> the text of one sweep script.

The script computes every distinct indicator once (a series is defined once
per key, so SMA(close, 20) is computed once however many combinations use
it), builds one boolean column of entries and exits per distinct
combination of the signal parameters, and hands them to
``stratexec_runtime.sweep``, which simulates all combinations as columns of
vectorbt portfolios in chunks of bounded memory, with the stop and target
levels broadcast per column. No Python loop runs over combinations: the
signal columns are straight-line numpy/pandas statements and the
simulation is vectorbt's own column loop in compiled code.

Each combination compiles through the same analysis as a standalone
backtest, so its signals and portfolio arguments are those of the script
GenerateCode writes for the same values.
"""
from __future__ import annotations

import itertools
import json

from services.codegen import compiler, emit, parameters as parameters_mod
from services.codegen.grid import Grid
from services.common import errors

STOP_ARGS = {"take_profit": "tp_stop", "stop_loss": "sl_stop", "trailing_stop": "sl_stop"}
MAX_SIGNAL_COMBINATIONS = 2_000  # distinct signal columns; each one is a line of the script
CHUNK_COLUMNS = 2_000  # columns per vectorbt simulation: bounds memory (about bars x chunk x 8 bytes per array)
TP_SWEPT, SL_SWEPT = 'stops["tp_stop"]', 'stops["sl_stop"]'  # a swept level: one value per column


def _unsupported(a: compiler.Analysis, grid: Grid) -> list[tuple[str, str]]:
    problems = []
    if len(a.params.symbols) > 1:
        problems.append(("params.symbols", "a sweep runs on one symbol; give one symbol"))
    if a.time_exit is not None:
        problems.append(("schema", f"node '{a.time_exit[0]}' (time_exit) is not supported in sweeps yet"))
    if emit._atr_stops(a):
        problems.append(("schema", "ATR stops are not supported in sweeps yet"))
    if a.stop_loss is not None and a.trailing_stop is not None:
        problems.append(("schema", "a stop loss together with a trailing stop is not supported in sweeps yet"))
    p = a.params
    for field, default in (("fill_at", "close"), ("stop_target_order", "stop_first"), ("reentry", "skip")):
        if getattr(p, field, default) != default:
            problems.append((f"params.{field}", f"sweeps support only {field}={default} yet"))
    return problems


def _entries_exits(a: compiler.Analysis) -> tuple[str, str]:
    """The entry and exit expressions of one analysis, over series defined by name."""
    def node_expr(node) -> str:
        if len(node.rules) == 1:
            return f"({node.rules[0].condition.expr()})"
        joiner = " & " if node.combine == "all" else " | "
        return "(" + joiner.join(f"({r.condition.expr()})" for r in node.rules) + ")"

    entries = " | ".join(node_expr(n) for n in a.nodes_of("entry_condition"))
    filters = a.nodes_of("filter")
    if filters:
        entries = f"({entries}) & " + " & ".join(node_expr(f) for f in filters)
    exits = " | ".join(node_expr(n) for n in a.nodes_of("exit_condition"))
    return entries, exits


def _stop_arg_lines(a: compiler.Analysis, grid: Grid) -> tuple[list[str], dict[str, str]]:
    """from_signals stop arguments (swept ones read from ``stops``) and {vectorbt argument: parameter name}.

    vectorbt's own stops, with the rules of the standalone script: measured from the entry bar's close,
    checked on later bars' highs and lows with the stop first, filled at the level (at the open on a gap)."""
    swept = {p.node_id: p.name for p in grid.parameters if not parameters_mod.is_signal(p)}
    lines, args = [], {}
    if a.take_profit is not None:
        name = swept.get(a.take_profit.node_id)
        lines.append(f"tp_stop={TP_SWEPT if name else a.take_profit.fraction},")
        if name:
            args["tp_stop"] = name
    stop = a.trailing_stop or a.stop_loss
    if stop is not None:
        name = swept.get(stop.node_id)
        lines.append(f"sl_stop={SL_SWEPT if name else stop.fraction}, sl_trail={stop.node_type == 'trailing_stop'},")
        if name:
            args["sl_stop"] = name
    if lines:
        lines += ['stop_entry_price="close",  # stops are measured from the entry bar\'s close',
                  'stop_exit_price="stopmarket",  # a stop fills at its level (at the open if the bar gaps past it), with slippage']
    return lines, args


def emit_sweep(doc: dict, params, all_parameters: list, grid: Grid, walk_forward: dict | None = None) -> tuple[str, int]:
    """(script, longest warm-up in bars) of a sweep of ``grid`` over the strategy ``doc``."""
    signal = [p for p in grid.parameters if parameters_mod.is_signal(p)]
    signal_values = [grid.values[i] for i, p in enumerate(grid.parameters) if parameters_mod.is_signal(p)]
    combos = list(itertools.product(*signal_values)) if signal else [()]
    if len(combos) > MAX_SIGNAL_COMBINATIONS:
        raise errors.invalid_argument(
            f"{len(combos):,} distinct combinations of signal parameters is more than {MAX_SIGNAL_COMBINATIONS:,} per sweep",
            [("ranges", f"at most {MAX_SIGNAL_COMBINATIONS:,} combinations of {', '.join(p.name for p in signal)}; "
                        f"stop and target levels may add any number of combinations on top")],
            reason="TOO_MANY_SIGNAL_COMBINATIONS")
    stop_only = {p.name: v[0] for p, v in zip(grid.parameters, grid.values) if not parameters_mod.is_signal(p)}
    block = emit.Block()
    block.code('close = ohlc["close"]')
    columns: list[str] = []
    base = None
    warmup = 0
    for k, combo in enumerate(combos):
        values = dict(zip((p.name for p in signal), combo), **stop_only)
        a = compiler.analyze(parameters_mod.substitute(doc, all_parameters, values), params)
        if base is None:
            base = a
            problems = _unsupported(a, grid)
            if problems:
                raise errors.invalid_argument(problems[0][1], problems, reason="SWEEP_UNSUPPORTED")
        warmup = max(warmup, a.warmup_bars)
        entries, exits = _entries_exits(a)
        series = []
        for node in a.condition_nodes:
            for rule in node.rules:
                series.extend(rule.condition.series_needed())
        block.define(series)
        words = ", ".join(f"{n}={v:g}" for n, v in zip((p.name for p in signal), combo)) or "the schema's values"
        columns.append(f"# signal column {k}: {words}")
        columns.append(f"entries[:, {k}] = {entries}")
        if exits:
            columns.append(f"exits[:, {k}] = {exits}")
    stop_lines, stop_args = _stop_arg_lines(base, grid)
    return _script(base, grid, block, columns, len(combos), stop_lines, stop_args, walk_forward or {}, warmup), warmup


def _script(a, grid: Grid, block, columns, signal_count, stop_lines, stop_args, walk_forward, warmup: int) -> str:
    p = a.params
    sweep = {
        "grid": {name: list(values) for name, values in zip(grid.names, grid.values)},
        "signal_parameters": [q.name for q in grid.parameters if parameters_mod.is_signal(q)],
        "stop_arguments": stop_args,  # vectorbt argument -> parameter name; values are percent, passed as fractions
        "signal_columns": signal_count,
        "chunk_columns": CHUNK_COLUMNS,
        "walk_forward": walk_forward,
    }
    params_lines = emit._params_literal(a)
    params_lines[-1:-1] = [f'    "warmup_bars_sweep": {json.dumps(warmup)},  # the longest warm-up of any combination']
    sizing = 'size=PARAMS["exposure"], size_type="percent",  # each entry invests this fraction of the cash available'
    body = [
        "def signals(ohlc):",
        f'{emit.INDENT}"""One boolean column of entries and of exits per distinct combination of signal parameters."""',
        *block.lines,
        f"{emit.INDENT}entries = np.zeros((len(close), {signal_count}), dtype=bool)",
        f"{emit.INDENT}exits = np.zeros((len(close), {signal_count}), dtype=bool)",
        *[emit.INDENT + line for line in columns],
        f"{emit.INDENT}return entries, exits",
        "",
        "",
        "def simulate(ohlc, entries, exits, stops):",
        f'{emit.INDENT}"""One portfolio column per combination, with the arguments of the standalone script."""',
        f"{emit.INDENT}return vbt.Portfolio.from_signals(",
        f'{emit.INDENT}    ohlc["close"], entries, exits,',
        f'{emit.INDENT}    open=ohlc["open"], high=ohlc["high"], low=ohlc["low"],  # stops trigger on intrabar prices',
        f'{emit.INDENT}    price=ohlc["close"],  # orders fill at the close of the signal bar, plus slippage',
        *[f"{emit.INDENT}    {line}" for line in stop_lines],
        f'{emit.INDENT}    direction="longonly", accumulate=False,',
        f'{emit.INDENT}    upon_long_conflict="exit",  # a bar with both an entry and an exit signal exits',
        f"{emit.INDENT}    {sizing}",
        f'{emit.INDENT}    init_cash=PARAMS["initial_capital"], fees=PARAMS["fees"], slippage=PARAMS["slippage"], freq="{p.freq}",',
        f"{emit.INDENT})",
        "",
        "",
        "def main(argv=None):",
        f"{emit.INDENT}parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)",
        f'{emit.INDENT}parser.add_argument("--data", help="CSV file or directory of <SYMBOL>.csv; omit to download with yfinance")',
        f"{emit.INDENT}args = parser.parse_args(argv)",
        f'{emit.INDENT}prices = load_prices(args.data, {emit._price_symbols(a.params)}, PARAMS["start_date"], PARAMS["end_date"],',
        f'{emit.INDENT}                     PARAMS["timeframe"], warmup_bars=PARAMS["warmup_bars_sweep"], prices=PARAMS["prices"])',
        f'{emit.INDENT}bars = prices[PARAMS["symbols"][0]]',
        f"{emit.INDENT}entries, exits = signals(bars)",
        f"{emit.INDENT}return sweep(bars, entries, exits, simulate, PARAMS, SWEEP)",
    ]
    names = ", ".join(f"{n} ({len(v)} values)" for n, v in zip(grid.names, grid.values))
    return "\n".join(line.rstrip() for line in [
        "#!/usr/bin/env python3",
        '"""Parameter sweep generated by stratexec codegen.',
        "",
        f"Strategy (first combination): {a.summary}".replace('"""', "'''").replace("\\", "/"),
        f"Sweeps {names}: {grid.combinations} combinations, one portfolio column each.",
        "",
        "Run it yourself:  python sweep.py --data prices.csv",
        '"""',
        "import argparse",
        "",
        "import numpy as np",
        "import pandas as pd",
        "import vectorbt as vbt",
        "",
        "from stratexec_runtime import load_prices, sweep",
        "",
        *params_lines,
        "SWEEP = " + json.dumps(sweep, sort_keys=True),
        "",
        "",
        *body,
        "",
        "",
        'if __name__ == "__main__":',
        "    main()",
    ]) + "\n"
