"""The sweep's fast path (stratexec_runtime.sweep) gives exactly vectorbt's own numbers: the equity kernel
equals Portfolio.value(), the trade counts equal Portfolio.trades, and a column's metrics do not depend on
the chunk (or thread) it ran in."""
from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

from stratexec_runtime import load_prices

sweep_runtime = importlib.import_module("stratexec_runtime.sweep")  # the package exports the function sweep
DATA = "data/ohlcv"


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return load_prices(DATA, ["BTC-USD"], "2019-01-01", "2024-12-31", warmup_bars=60)["BTC-USD"]


def simulate(ohlc, entries, exits, stops):
    """The form of the generated sweep script's simulate()."""
    return vbt.Portfolio.from_signals(
        ohlc["close"], entries, exits, open=ohlc["open"], high=ohlc["high"], low=ohlc["low"], price=ohlc["close"],
        stop_entry_price="close", stop_exit_price="stopmarket", direction="longonly", accumulate=False,
        upon_long_conflict="exit", size=1.0, size_type="percent", init_cash=10000.0, fees=0.001, slippage=0.0005,
        freq="1D", **stops)


def signals(bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    close = bars["close"]
    columns = [close <= (1 - d / 100) * close.rolling(w).mean() for w in (10, 20, 40) for d in (1, 3, 5, 8)]
    entries = np.column_stack([c.to_numpy() for c in columns])
    exits = np.column_stack([(close > close.rolling(50).mean() * (1 + k / 10)).to_numpy() for k in range(entries.shape[1])])
    return entries, exits


@pytest.mark.parametrize("stops", [{"tp_stop": 0.07, "sl_stop": 0.05}, {"sl_stop": 0.08, "sl_trail": True}, {}])
def test_the_equity_kernel_and_trade_counts_equal_vectorbts_own(bars, stops):
    entries, exits = signals(bars)
    n = entries.shape[1]
    arrays = {k: (np.linspace(v / 2, v * 2, n) if isinstance(v, float) else v) for k, v in stops.items()}
    pf = simulate(bars, entries, exits, arrays)
    close = np.ascontiguousarray(bars["close"].to_numpy(dtype=float))
    v, (closed, wins, open_) = sweep_runtime._equity_and_trades(pf, close, 10000.0, n)
    assert np.array_equal(v[:, 1:], pf.value().to_numpy().T)  # bit for bit
    assert (v[:, 0] == 10000.0).all()
    rec = pf.trades.records_arr
    for col in range(n):
        mine = rec[rec["col"] == col]
        assert closed[col] == (mine["status"] == 1).sum() and open_[col] == (mine["status"] == 0).sum()
        assert wins[col] == ((mine["status"] == 1) & (mine["pnl"] > 0)).sum()


def test_a_columns_metrics_do_not_depend_on_its_chunk_or_thread(bars, monkeypatch):
    entries, exits = signals(bars)
    config = {"grid": {"tp": [2.0, 5.0, 9.0], "sl": [3.0, 6.0]}, "signal_parameters": [],
              "stop_arguments": {"tp_stop": "tp", "sl_stop": "sl"}, "signal_columns": entries.shape[1]}
    columns = np.arange(entries.shape[1] * 6)
    runs = []
    for threads, chunk, smallest in ((1, 10_000, 250), (2, 7, 1), (3, 5, 1)):
        monkeypatch.setattr(sweep_runtime, "MAX_THREADS", threads)
        monkeypatch.setattr(sweep_runtime, "MIN_CHUNK", smallest)
        runs.append(sweep_runtime.run_columns(bars, entries, exits, simulate, {**config, "chunk_columns": chunk}, 10000.0,
                                              columns, blocks=True))
    first = runs[0]
    for other in runs[1:]:
        for key in first:
            if key == "_blocks":
                assert first[key][0] == other[key][0]
                assert np.array_equal(first[key][1], other[key][1]) and np.array_equal(first[key][2], other[key][2])
            else:
                assert np.array_equal(first[key], other[key], equal_nan=True), key


def test_chunks_are_equal_and_a_multiple_of_the_threads():
    assert sweep_runtime._chunks(10_000, 2000, 2) == [(0, 1667), (1667, 3334), (3334, 5001), (5001, 6668),
                                                       (6668, 8335), (8335, 10_000)]
    assert sweep_runtime._chunks(1_000, 2000, 2) == [(0, 500), (500, 1000)]
    assert sweep_runtime._chunks(300, 2000, 4) == [(0, 300)]  # smaller than two MIN_CHUNKs: one chunk
    assert sweep_runtime._chunks(100_000, 2000, 1) == [(a, a + 2000) for a in range(0, 100_000, 2000)]
