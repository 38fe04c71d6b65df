"""Every execution rule of the generated script against the independent loop in
reference_sim.py: the same trades (bars, fill prices, exit reasons) and the same
final equity, for one symbol and a portfolio."""
from __future__ import annotations

import contextlib
import importlib
import io

import numpy as np
import pandas as pd
import pytest

from services.common.errors import ApiError
from stratexec_runtime.execution import OPTIONS
from stratexec_runtime.data import read_price_csv
from stratexec_runtime.report import build_result
from tests.codegen import reference_sim
from tests.codegen.conftest import DATA_DIR, generate, load_script, params

START, END = "2021-01-01", "2024-12-31"
ENTRY = {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter on 20-day MA crossover"]}}
EXIT = {"id": "below50", "type": "exit_condition", "meta": {"rules": ["Exit when price is below the 50-day SMA"]}}


def stops(tp=None, sl=None, trail=None, max_bars=None):
    nodes = []
    if tp is not None:
        nodes.append({"id": "tp", "type": "take_profit", "meta": {"target_pct": tp}})
    if sl is not None:
        nodes.append({"id": "sl", "type": "stop_loss", "meta": {"stop_pct": sl}})
    if trail is not None:
        nodes.append({"id": "trail", "type": "trailing_stop", "meta": {"trail_pct": trail}})
    if max_bars is not None:
        nodes.append({"id": "hold", "type": "time_exit", "meta": {"max_bars": max_bars}})
    return nodes


def reference_signals(symbol: str):
    """Bars of the window and the signals, computed here with pandas on the whole file."""
    full = read_price_csv(DATA_DIR / f"{symbol}.csv").loc[:END]
    close = full["close"]
    sma20, sma50 = close.rolling(20).mean(), close.rolling(50).mean()
    entries = (close > sma20) & (close.shift(1) <= sma20.shift(1))
    exits = close < sma50
    window = full.loc[START:]
    return window, entries.loc[START:].tolist(), exits.loc[START:].tolist()


def run_script(doc, tmp_path, symbols, **p):
    code, analysis = generate(doc, params(symbols=symbols, start_date=START, end_date=END, **p))
    module = load_script(code, tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        pf = module.main(["--data", str(DATA_DIR)])
    return code, analysis, pf


def check_against_reference(pf, symbols, plans_result, ref_trades, ref_equity):
    trades = plans_result["trades"]
    index = pf.wrapper.index
    got = [(t["symbol"], index.get_loc(pd.Timestamp(t["entry_time"])),
            None if t["status"] == "open" else index.get_loc(pd.Timestamp(t["exit_time"])), t["exit_reason"])
           for t in trades]
    want = [(t.symbol, t.entry_bar, t.exit_bar, t.reason) for t in ref_trades]
    assert sorted(got, key=str) == sorted(want, key=str)
    by_key = {(t.symbol, t.entry_bar): t for t in ref_trades}
    for t in trades:
        ref = by_key[(t["symbol"], index.get_loc(pd.Timestamp(t["entry_time"])))]
        if t["status"] == "closed":
            slipped = 1 - 0.0005 if t["direction"] == "long" else 1 + 0.0005  # a sale fills lower, a buy-back higher
            assert t["exit_price"] == pytest.approx(ref.exit_fill * slipped, rel=1e-9)
            assert t["pnl"] == pytest.approx(ref.pnl, rel=1e-7, abs=1e-6)
    assert float(pf.value().iloc[-1]) == pytest.approx(ref_equity, rel=1e-9)


CASES = {
    # name: (stop nodes, params, reference options)
    "stop5_trail10": (stops(sl=5, trail=10), {}, dict(sl=0.05, trail=0.10)),
    "stop10_trail5": (stops(sl=10, trail=5), {}, dict(sl=0.10, trail=0.05)),
    "tp_stop_trail_target_first": (stops(tp=8, sl=4, trail=6), {"stop_target_order": "target_first"},
                                   dict(tp=0.08, sl=0.04, trail=0.06, order="target_first")),
    "tp_stop_stop_first": (stops(tp=8, sl=4), {}, dict(tp=0.08, sl=0.04)),
    "next_open": (stops(tp=15, sl=6, trail=12), {"fill_at": "next_open"},
                  dict(tp=0.15, sl=0.06, trail=0.12, fill_at="next_open")),
    "reentry_next_bar": (stops(sl=3), {"reentry": "next_bar"}, dict(sl=0.03, reentry="next_bar")),
    "time_exit_next_open": (stops(sl=5, max_bars=10), {"fill_at": "next_open", "reentry": "next_bar"},
                            dict(sl=0.05, max_bars=10, fill_at="next_open", reentry="next_bar")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_one_symbol_rules_match_the_reference_loop(name, tmp_path):
    nodes, extra, ref_opts = CASES[name]
    _, analysis, pf = run_script({"nodes": [ENTRY, EXIT, *nodes]}, tmp_path, ["BTC-USD"], **extra)
    window, entries, exits = reference_signals("BTC-USD")
    ref_trades, ref_equity, ref_skipped = reference_sim.simulate(
        {"BTC-USD": window}, {"BTC-USD": entries}, {"BTC-USD": exits}, exit_name="below50", **ref_opts)
    assert len(ref_trades) > 15
    result = build_result(pf, None, 10_000.0, ["BTC-USD"], LAST_PLANS["plans"])
    check_against_reference(pf, ["BTC-USD"], result, ref_trades, ref_equity)
    assert [(s["time"], s["reason"]) for s in result["skipped_signals"]] == [
        (window.index[bar].strftime("%Y-%m-%d"), reason) for _, bar, reason in ref_skipped]
    stated = {r.node_id: r.interpretation for r in analysis.rules if r.node_type == "execution_rule"}
    assert {"fill_at", "stop_target_order", "reentry", "exit_reason"} <= set(stated)


LAST_PLANS: dict = {}


@pytest.fixture(autouse=True)
def capture_plans(monkeypatch):
    """Keep the plans the script passes to report() (its result, as the sandbox would get it)."""
    report_mod = importlib.import_module("stratexec_runtime.report")

    real = report_mod.build_result

    def spy(pf, benchmark_pf, initial_value, symbols=None, plans=None):
        LAST_PLANS["plans"] = plans
        return real(pf, benchmark_pf, initial_value, symbols, plans)

    monkeypatch.setattr(report_mod, "build_result", spy)


def test_a_stop_and_a_wider_trailing_stop_both_fire(tmp_path):
    """The old compiler rejected 'stop 5%, trail 10%'; now each stop closes some trades."""
    _, _, pf = run_script({"nodes": [ENTRY, *stops(sl=5, trail=10)]}, tmp_path, ["BTC-USD"])
    reasons = {t["exit_reason"] for t in build_result(pf, None, 10_000.0, ["BTC-USD"], LAST_PLANS["plans"])["trades"]}
    assert {"sl", "trail"} <= reasons


def test_a_portfolio_with_equal_slots_matches_the_reference(tmp_path):
    symbols = ["BTC-USD", "ETH-USD"]
    nodes = [ENTRY, EXIT, *stops(sl=8)]
    _, _, pf = run_script({"nodes": nodes}, tmp_path, symbols, position_sizing="equal")
    frames = {s: reference_signals(s) for s in symbols}
    ref_trades, ref_equity, _ = reference_sim.simulate(
        {s: f[0] for s, f in frames.items()}, {s: f[1] for s, f in frames.items()}, {s: f[2] for s, f in frames.items()},
        sl=0.08, exit_name="below50", sizing="equal")
    assert {t.symbol for t in ref_trades} == set(symbols)
    result = build_result(pf, None, 10_000.0, symbols, LAST_PLANS["plans"])
    check_against_reference(pf, symbols, result, ref_trades, ref_equity)


@pytest.mark.parametrize("field,value", [("fill_at", "open"), ("stop_target_order", "tp_first"), ("reentry", "always")])
def test_unknown_rule_values_name_the_field_and_the_accepted_values(field, value):
    with pytest.raises(ApiError) as caught:
        generate({"nodes": [ENTRY]}, params(**{field: value}))
    assert caught.value.code.name == "INVALID_ARGUMENT"
    description = dict(caught.value.violations)[f"params.{field}"]
    assert value in description and all(option in description for option in OPTIONS[field])


def test_shared_cash_percent_sizing_counts_every_entry_without_cash(tmp_path):
    """The issue's case: BTC+ETH, 20/50 crossover in and out, stop 8%, 2021-2024, all cash per entry."""
    doc = {"nodes": [
        {"id": "in", "type": "entry_condition", "meta": {"rules": ["Buy when the 20-day SMA crosses above the 50-day SMA"]}},
        {"id": "out", "type": "exit_condition", "meta": {"rules": ["Sell when the 20-day SMA crosses below the 50-day SMA"]}},
        *stops(sl=8),
    ]}
    symbols = ["BTC-USD", "ETH-USD"]
    _, _, pf = run_script(doc, tmp_path, symbols)
    frames, entries, exits = {}, {}, {}
    for s in symbols:
        full = read_price_csv(DATA_DIR / f"{s}.csv").loc[:END]
        fast, slow = full["close"].rolling(20).mean(), full["close"].rolling(50).mean()
        frames[s] = full.loc[START:]
        entries[s] = ((fast > slow) & (fast.shift(1) <= slow.shift(1))).loc[START:].tolist()
        exits[s] = ((fast < slow) & (fast.shift(1) >= slow.shift(1))).loc[START:].tolist()
    ref_trades, ref_equity, ref_skipped = reference_sim.simulate(frames, entries, exits, sl=0.08, exit_name="out")
    result = build_result(pf, None, 10_000.0, symbols, LAST_PLANS["plans"])
    check_against_reference(pf, symbols, result, ref_trades, ref_equity)
    skipped = [(s["symbol"], s["reason"]) for s in result["skipped_signals"]]
    assert sorted(skipped) == sorted((s, reason) for s, _, reason in ref_skipped)
    eth_signals = sum(entries["ETH-USD"])
    eth_no_cash = skipped.count(("ETH-USD", "no_cash"))
    print(f"ETH entry signals {eth_signals}, skipped for no cash {eth_no_cash}, ETH trades "
          f"{sum(t['symbol'] == 'ETH-USD' for t in result['trades'])}")
    assert eth_no_cash > 0 and eth_signals == eth_no_cash + sum(t["symbol"] == "ETH-USD" for t in result["trades"])


SHORT_IN = {"id": "short", "type": "entry_condition", "meta": {"rules": ["Sell short when price crosses below the 20-day SMA"]}}
COVER = {"id": "cover", "type": "exit_condition", "meta": {"rules": ["Cover when price is above the 50-day SMA"]}}


def reference_short_signals(symbol: str):
    """The mirror of reference_signals: close crosses below its SMA(20) to sell short, above its SMA(50) to cover."""
    full = read_price_csv(DATA_DIR / f"{symbol}.csv").loc[:END]
    close = full["close"]
    sma20, sma50 = close.rolling(20).mean(), close.rolling(50).mean()
    entries = (close < sma20) & (close.shift(1) >= sma20.shift(1))
    return entries.loc[START:].tolist(), (close > sma50).loc[START:].tolist()


SHORT_CASES = {
    # name: (direction, stop nodes, params, reference options)
    "short_stop5_trail10_tp8": ("short", stops(tp=8, sl=5, trail=10), {}, dict(tp=0.08, sl=0.05, trail=0.10)),
    "short_target_first_next_open": ("short", stops(tp=6, sl=4), {"stop_target_order": "target_first", "fill_at": "next_open"},
                                     dict(tp=0.06, sl=0.04, order="target_first", fill_at="next_open")),
    "both_trail_reentry_next_bar": ("both", stops(sl=6, trail=4), {"reentry": "next_bar"},
                                    dict(sl=0.06, trail=0.04, reentry="next_bar")),
    "both_time_exit_next_open": ("both", stops(sl=5, max_bars=12), {"fill_at": "next_open"},
                                 dict(sl=0.05, max_bars=12, fill_at="next_open")),
}


@pytest.mark.parametrize("name", list(SHORT_CASES))
def test_short_and_both_directions_match_the_reference_loop(name, tmp_path):
    direction, nodes, extra, ref_opts = SHORT_CASES[name]
    long_nodes = [ENTRY, EXIT] if direction == "both" else []
    _, analysis, pf = run_script({"nodes": [*long_nodes, SHORT_IN, COVER, *nodes]}, tmp_path, ["BTC-USD"],
                                 direction=direction, **extra)
    window, entries, exits = reference_signals("BTC-USD")
    short_entries, short_exits = reference_short_signals("BTC-USD")
    no = [False] * len(window)
    ref_trades, ref_equity, ref_skipped = reference_sim.simulate(
        {"BTC-USD": window}, {"BTC-USD": entries if direction == "both" else no},
        {"BTC-USD": exits if direction == "both" else no}, exit_name="below50",
        short_entries={"BTC-USD": short_entries}, short_exits={"BTC-USD": short_exits}, short_exit_name="cover", **ref_opts)
    shorts = [t for t in ref_trades if t.side == "short"]
    assert len(shorts) > 10 and (direction == "short") == (len(shorts) == len(ref_trades))
    result = build_result(pf, None, 10_000.0, ["BTC-USD"], LAST_PLANS["plans"])
    check_against_reference(pf, ["BTC-USD"], result, ref_trades, ref_equity)
    assert sorted((t["entry_time"], t["direction"]) for t in result["trades"]) == sorted(
        (window.index[t.entry_bar].strftime("%Y-%m-%d"), t.side) for t in ref_trades)
    assert [(s["time"], s["reason"]) for s in result["skipped_signals"]] == [
        (window.index[bar].strftime("%Y-%m-%d"), reason) for _, bar, reason in ref_skipped]
    stated = {r.node_id: r.interpretation for r in analysis.rules if r.node_type == "execution_rule"}
    assert stated["direction"].startswith(f"Direction: {direction}") and "No margin model" in stated["direction"]


def test_a_long_and_short_portfolio_with_equal_slots_matches_the_reference(tmp_path):
    symbols = ["BTC-USD", "ETH-USD"]
    _, _, pf = run_script({"nodes": [ENTRY, EXIT, SHORT_IN, COVER, *stops(sl=8, tp=12)]}, tmp_path, symbols,
                          direction="both", position_sizing="equal")
    long_frames = {s: reference_signals(s) for s in symbols}
    short_frames = {s: reference_short_signals(s) for s in symbols}
    ref_trades, ref_equity, _ = reference_sim.simulate(
        {s: f[0] for s, f in long_frames.items()}, {s: f[1] for s, f in long_frames.items()},
        {s: f[2] for s, f in long_frames.items()}, sl=0.08, tp=0.12, exit_name="below50", sizing="equal",
        short_entries={s: f[0] for s, f in short_frames.items()}, short_exits={s: f[1] for s, f in short_frames.items()})
    assert {(t.symbol, t.side) for t in ref_trades} == {(s, side) for s in symbols for side in ("long", "short")}
    result = build_result(pf, None, 10_000.0, symbols, LAST_PLANS["plans"])
    check_against_reference(pf, symbols, result, ref_trades, ref_equity)


@pytest.mark.parametrize("nodes,direction,field,words", [
    ([SHORT_IN], "long", "params.direction", "node 'short' is for short positions but params.direction is long"),
    ([ENTRY], "short", "nodes[0].meta.rules[0]", None),  # written for longs: read as a short entry, no problem
    ([{**ENTRY, "meta": {**ENTRY["meta"], "side": "long"}}], "short", "params.direction", "set it to long or both"),
    ([{**SHORT_IN, "meta": {**SHORT_IN["meta"], "side": "long"}}], "both", "nodes[0].meta.side", "its rule is about a short"),
    ([{**ENTRY, "meta": {**ENTRY["meta"], "side": "both"}}], "both", "nodes[0].meta.side", "opens one side"),
    ([SHORT_IN, {"id": "tp", "type": "take_profit", "meta": {"target_pct": 100}}], "short", "nodes[1].meta.target_pct",
     "needs the price to fall to 0 or below"),
    ([ENTRY], "sideways", "params.direction", "'sideways' is not supported; use one of long, short, both"),
])
def test_a_side_that_does_not_fit_is_refused_naming_the_field(nodes, direction, field, words):
    if words is None:
        _, analysis = generate({"nodes": nodes}, params(direction=direction))
        assert analysis.nodes_of("entry_condition")[0].side == "short"
        return
    with pytest.raises(ApiError) as caught:
        generate({"nodes": nodes}, params(direction=direction))
    assert caught.value.code.name == "INVALID_ARGUMENT"
    assert words in dict(caught.value.violations)[field]


def test_a_short_strategy_reads_its_rules_as_shorts_in_the_analysis_and_the_script():
    code, analysis = generate({"nodes": [SHORT_IN, COVER, *stops(sl=5)]}, params(direction="short"))
    said = {r.node_id: r.interpretation for r in analysis.rules}
    assert said["short"].startswith("Sell short when the close crosses below the 20-bar simple moving average")
    assert said["cover"].startswith("Buy back (cover the short position) when the close is above the 50-bar")
    assert said["sl"].startswith("Short position: stop loss 5% above the entry price, checked on each later bar's high")
    assert "sell short when" in analysis.summary and "cover when" in analysis.summary
    assert "short_entries=plan.short_entries, short_exits=plan.short_exits," in code and "lock_cash=True" in code
    assert '"direction": "short",' in code and "# - Direction: short: short positions only" in code


SIZING_CASES = {
    # name: (symbols, direction, params, stop nodes, reference options)
    "fixed_one_symbol": (["BTC-USD"], "long", {"position_sizing": "fixed", "exposure": 0.3}, stops(sl=6),
                         dict(sizing="fixed", exposure=0.3, sl=0.06)),
    "fixed_portfolio_both": (["BTC-USD", "ETH-USD"], "both", {"position_sizing": "fixed", "exposure": 0.4}, stops(sl=6, tp=10),
                             dict(sizing="fixed", exposure=0.4, sl=0.06, tp=0.10)),
    "equity_one_symbol_both": (["BTC-USD"], "both", {"position_sizing": "equity", "exposure": 0.8}, stops(sl=7),
                               dict(sizing="equity", exposure=0.8, sl=0.07)),
    "equity_portfolio": (["BTC-USD", "ETH-USD"], "long", {"position_sizing": "equity", "exposure": 0.5}, stops(trail=9),
                         dict(sizing="equity", exposure=0.5, trail=0.09)),
    "risk_one_symbol_next_open": (["BTC-USD"], "long", {"position_sizing": "risk", "risk_per_trade": 0.02, "fill_at": "next_open"},
                                  stops(sl=5), dict(sizing="risk", risk=0.02, sl=0.05, fill_at="next_open")),
    "risk_portfolio_both_stop_and_trail": (["BTC-USD", "ETH-USD"], "both", {"position_sizing": "risk", "risk_per_trade": 0.03},
                                           stops(sl=8, trail=6), dict(sizing="risk", risk=0.03, sl=0.08, trail=0.06)),
}


@pytest.mark.parametrize("name", list(SIZING_CASES))
def test_each_allocation_matches_the_reference_loop(name, tmp_path):
    symbols, direction, extra, nodes, ref_opts = SIZING_CASES[name]
    shorts = [SHORT_IN, COVER] if direction == "both" else []
    _, analysis, pf = run_script({"nodes": [ENTRY, EXIT, *shorts, *nodes]}, tmp_path, symbols, direction=direction, **extra)
    long_frames = {s: reference_signals(s) for s in symbols}
    short_frames = {s: reference_short_signals(s) for s in symbols} if shorts else None
    ref_trades, ref_equity, ref_skipped = reference_sim.simulate(
        {s: f[0] for s, f in long_frames.items()}, {s: f[1] for s, f in long_frames.items()},
        {s: f[2] for s, f in long_frames.items()}, exit_name="below50",
        short_entries=short_frames and {s: f[0] for s, f in short_frames.items()},
        short_exits=short_frames and {s: f[1] for s, f in short_frames.items()}, **ref_opts)
    assert len(ref_trades) > 15
    result = build_result(pf, None, 10_000.0, symbols, LAST_PLANS["plans"])
    check_against_reference(pf, symbols, result, ref_trades, ref_equity)
    assert sorted((s["symbol"], s["reason"]) for s in result["skipped_signals"]) == sorted((s, r) for s, _, r in ref_skipped)
    said = {r.node_id: r.interpretation for r in analysis.rules}
    assert said["position_sizing"].startswith("Position sizing:")


def test_the_script_sends_each_indicator_and_the_stop_and_target_levels_as_chart_lines(tmp_path):
    """The report draws these: SMA(20) and SMA(50) as pandas computes them on the CSV, and on each bar
    of each trade (after its entry bar, to its exit) the levels the reference loop checked."""
    _, _, pf = run_script({"nodes": [ENTRY, EXIT, *stops(tp=8, sl=5)]}, tmp_path, ["BTC-USD"])
    result = build_result(pf, None, 10_000.0, ["BTC-USD"], LAST_PLANS["plans"])
    lines = {line["name"]: line for line in result["lines"]}
    assert [(name, line["kind"]) for name, line in lines.items()] == [
        ("SMA(close, 20)", "indicator"), ("SMA(close, 50)", "indicator"), ("stop", "stop"), ("target", "target")]

    close = read_price_csv(DATA_DIR / "BTC-USD.csv")["close"].loc[:END]
    for window in (20, 50):
        want = close.rolling(window).mean().loc[START:]
        got = pd.Series(dict(lines[f"SMA(close, {window})"]["points"]))
        assert list(got.index) == [t.strftime("%Y-%m-%d") for t in want.index]
        assert got.to_numpy() == pytest.approx(want.to_numpy(), rel=1e-12)

    window, entries, exits = reference_signals("BTC-USD")
    ref_trades, _, _ = reference_sim.simulate({"BTC-USD": window}, {"BTC-USD": entries}, {"BTC-USD": exits},
                                              exit_name="below50", tp=0.08, sl=0.05)
    day = [t.strftime("%Y-%m-%d") for t in window.index]
    want_stop, want_target = {}, {}
    for t in ref_trades:
        for bar in range(t.entry_bar + 1, (len(day) - 1 if t.exit_bar is None else t.exit_bar) + 1):
            want_stop[day[bar]], want_target[day[bar]] = t.entry_fill * 0.95, t.entry_fill * 1.08
    assert dict(lines["stop"]["points"]) == pytest.approx(want_stop, rel=1e-12)
    assert dict(lines["target"]["points"]) == pytest.approx(want_target, rel=1e-12)
