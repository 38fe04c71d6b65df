"""Exit nodes in the generated script: time exits, trailing and ATR stops, and
a multi-symbol portfolio checked against a hand computation."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest

from tests.codegen import indicators_reference as ref
from tests.codegen.conftest import BTC_CSV, generate, load_script, params
from stratexec_runtime import load_prices
from stratexec_runtime.report import build_result

SLIP = 0.0005
START, END = "2019-01-01", "2024-12-31"


def run(doc, tmp_path, data=BTC_CSV, **p):
    code, analysis = generate(doc, params(**({"start_date": START, "end_date": END} | p)))
    module = load_script(code, tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        pf = module.main(["--data", str(data)])
    return pf, analysis, out.getvalue()


@pytest.fixture(scope="module")
def bars():
    return load_prices(str(BTC_CSV), ["BTC-USD"], START, END)["BTC-USD"]


def test_time_exit_closes_after_exactly_n_bars(tmp_path):
    doc = {"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when price is above the 20-day SMA"]}},
        {"id": "hold", "type": "time_exit", "meta": {"max_bars": 5}},
    ]}
    pf, _, _ = run(doc, tmp_path)
    trades = pf.trades.records_arr
    closed = trades[trades["status"] == 1]
    assert len(closed) > 20
    assert set((closed["exit_idx"] - closed["entry_idx"]).tolist()) == {5}


def test_time_exit_with_stops_never_holds_longer(tmp_path):
    doc = {"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when RSI is below 45"]}},
        {"id": "tp", "type": "take_profit", "meta": {"target_pct": 4}},
        {"id": "sl", "type": "stop_loss", "meta": {"stop_pct": 3}},
        {"id": "hold", "type": "time_exit", "meta": {"max_bars": 7}},
    ]}
    pf, _, _ = run(doc, tmp_path)
    trades = pf.trades.records_arr
    durations = trades["exit_idx"] - trades["entry_idx"]
    assert len(trades) > 20 and durations.max() == 7 and (durations < 7).any()


def test_trailing_stop_trails_the_highest_completed_high(tmp_path, bars):
    doc = {"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter on 20-day MA crossover"]}},
        {"id": "trail", "type": "trailing_stop", "meta": {"trail_pct": 8}},
    ]}
    pf, analysis, _ = run(doc, tmp_path)
    assert analysis.rules[1].formula == "exit when low[t] <= max(entry_close, high[entry+1..t-1]) * 0.92"
    trades = pf.trades.records_arr
    closed = trades[trades["status"] == 1]
    assert len(closed) > 20
    for t in closed:
        e, x = int(t["entry_idx"]), int(t["exit_idx"])
        peak = max([bars.close.iloc[e], *bars.high.iloc[e + 1 : x]])
        level = peak * 0.92
        raw = t["exit_price"] / (1 - SLIP)
        assert bars.low.iloc[x] <= level
        assert np.isclose(raw, level) or (np.isclose(raw, bars.open.iloc[x]) and bars.open.iloc[x] < level)


def test_atr_stop_is_fixed_at_the_entry_bar(tmp_path, bars):
    doc = {"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter on 20-day MA crossover"]}},
        {"id": "out", "type": "exit_condition", "meta": {"rules": ["Exit when price crosses below the 20-day SMA"]}},
        {"id": "sl", "type": "stop_loss", "meta": {"atr_multiple": 1.5}},
    ]}
    pf, analysis, _ = run(doc, tmp_path)
    # The script's ATR starts on the warm-up bars before START: so does the reference.
    history = load_prices(str(BTC_CSV), ["BTC-USD"], START, END, warmup_bars=analysis.warmup_bars)["BTC-USD"]
    atr = ref.atr(history, 14).loc[START:]
    assert analysis.warmup_bars > 0 and len(atr) == len(bars)
    trades = pf.trades.records_arr
    closed = trades[trades["status"] == 1]
    stopped = 0
    for t in closed:
        e, x = int(t["entry_idx"]), int(t["exit_idx"])
        level = bars.close.iloc[e] - 1.5 * atr.iloc[e]
        raw = t["exit_price"] / (1 - SLIP)
        if np.isclose(raw, bars.close.iloc[x], rtol=1e-12) and bars.low.iloc[x] > level:
            continue  # the exit signal at the bar's close
        stopped += 1
        assert np.isclose(raw, level, rtol=1e-9) or (np.isclose(raw, bars.open.iloc[x]) and bars.open.iloc[x] < level)
    assert stopped > 10


def test_stop_loss_with_a_wider_or_tighter_trailing_stop_keeps_both_live():
    """Once rejected unless the trail was tighter; test_execution_rules checks the fills against a reference."""
    for trail in (10, 4):
        doc = {"nodes": [
            {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter on 20-day MA crossover"]}},
            {"id": "sl", "type": "stop_loss", "meta": {"stop_pct": 5}},
            {"id": "trail", "type": "trailing_stop", "meta": {"trail_pct": trail}},
        ]}
        code, analysis = generate(doc)
        assert f'"stop_loss": 0.05,' in code and f'"trailing_stop": {trail / 100},' in code
        assert any("higher of the two levels" in r.interpretation for r in analysis.rules)


def _write(directory, symbol, closes):
    index = pd.date_range("2024-01-01", periods=len(closes), freq="D")
    frame = pd.DataFrame({"date": index.strftime("%Y-%m-%d"), "open": closes, "high": closes, "low": closes,
                          "close": closes, "adj_close": closes, "volume": 1000.0})
    frame.to_csv(directory / f"{symbol}.csv", index=False)


def test_multi_symbol_equal_weights_match_a_hand_computation(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write(data, "AAA", [100.0, 110.0, 120.0, 90.0, 95.0, 100.0])
    _write(data, "BBB", [50.0, 55.0, 60.0, 66.0, 40.0, 44.0])
    doc = {"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter when the 1-day rate of change is above 5%"]}},
        {"id": "exit", "type": "exit_condition", "meta": {"rules": ["Exit when the 1-day rate of change is below -10%"]}},
        {"id": "size", "type": "position_sizing", "meta": {"method": "equal"}},
    ]}
    pf, analysis, printed = run(doc, tmp_path, data=data, symbols=["AAA", "BBB"], start_date="2024-01-01",
                                end_date="2024-01-06", fees=0.0, slippage=0.0)
    # By hand: day 1 both enter with 10000 / 2 = 5000 each (45.4545 AAA @110, 90.9091 BBB @55).
    # Day 3 AAA exits @90 -> cash 4090.91. Day 4 BBB exits @40 first (sells before buys) -> cash 7727.27,
    # AAA re-enters with 5000 @95 (52.6316). Day 5 BBB re-enters with the 2727.27 left @44 (61.9835).
    aaa1, bbb1 = 5000 / 110, 5000 / 55
    cash3 = aaa1 * 90
    cash4 = cash3 + bbb1 * 40 - 5000
    aaa2, bbb2 = 5000 / 95, cash4 / 44
    final = aaa2 * 100 + bbb2 * 44
    equity = [10000, 10000, aaa1 * 120 + bbb1 * 60, cash3 + bbb1 * 66, 5000 + aaa2 * 0 + aaa2 * 95 - 5000 + cash4 + 0 * bbb1, final]
    equity[4] = aaa2 * 95 + cash4
    result = build_result(pf, None, 10000.0)
    np.testing.assert_allclose([v for _, v in result["equity"]], equity, rtol=1e-9)
    m = result["metrics"]
    assert m["total_return"] == pytest.approx((final / 10000 - 1) * 100, rel=1e-9)
    assert (m["trades"], m["open_trades"], m["win_rate"]) == (2, 2, 0.0)
    by_symbol = {}
    for t in result["trades"]:
        by_symbol.setdefault(t["symbol"], []).append(t)
    assert [round(t["pnl"], 6) for t in by_symbol["AAA"]] == [round(aaa1 * (90 - 110), 6), round(aaa2 * (100 - 95), 6)]
    assert [round(t["pnl"], 6) for t in by_symbol["BBB"]] == [round(bbb1 * (40 - 55), 6), 0.0]
    # The benchmark, by default the portfolio's symbols in equal parts bought at the first close and held:
    # 5000 in AAA at 100 (ends at 100) and 5000 in BBB at 50 (ends at 44) -> 9400, -6.00%.
    bench = (5000 / 100 * 100 + 5000 / 50 * 44) / 10000 - 1
    assert f"Benchmark return  {bench * 100:,.2f}%" in printed
    assert f"{((final / 10000 - 1) - bench) * 100:+,.2f} pp" in printed


def test_multi_symbol_percent_sizing_shares_cash(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write(data, "AAA", [100.0, 110.0, 120.0, 90.0])
    _write(data, "BBB", [50.0, 55.0, 60.0, 66.0])
    doc = {"nodes": [{"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter when the 1-day rate of change is above 5%"]}}]}
    pf, analysis, _ = run(doc, tmp_path, data=data, symbols=["AAA", "BBB"], start_date="2024-01-01", end_date="2024-01-04",
                          fees=0.0, slippage=0.0, exposure=0.5)
    result = build_result(pf, None, 10000.0)
    # Day 1: AAA takes 50% of 10000, then BBB 50% of the 5000 left.
    sizes = {t["symbol"]: t["size"] for t in result["trades"]}
    assert sizes["AAA"] == pytest.approx(5000 / 110) and sizes["BBB"] == pytest.approx(2500 / 55)


def test_weekly_bars_and_mixed_calendars(tmp_path):
    from tests.codegen.conftest import DATA_DIR

    doc = {"nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when price crosses above the 10-bar EMA"]}},
        {"id": "exit", "type": "exit_condition", "meta": {"rules": ["Sell when price crosses below the 10-bar EMA"]}},
    ]}
    pf, analysis, printed = run(doc, tmp_path, timeframe="1w", start_date="2020-01-01")
    assert analysis.params.freq == "7D" and pf.wrapper.freq == pd.Timedelta(days=7)
    gaps = pf.wrapper.index[1:] - pf.wrapper.index[:-1]
    assert gaps[:-1].min() == pd.Timedelta(days=7) and pf.wrapper.index[-1] <= pd.Timestamp(analysis.params.end_date)
    assert pf.trades.count() > 5 and "Total return" in printed

    pf, _, printed = run(doc, tmp_path, data=DATA_DIR, symbols=["BTC", "SPY"], benchmark="SPY", start_date="2023-01-01")
    trades = pf.trades.records_readable
    spy = trades[trades["Column"] == "SPY"]
    assert len(spy) > 0 and spy["Entry Timestamp"].dt.day_of_week.max() <= 4  # SPY never trades on a weekend
    assert not pf.value().isna().any()
    assert set(trades["Column"]) == {"BTC-USD", "SPY"}
