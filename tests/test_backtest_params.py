"""One home for backtest parameters: the orchestrator, codegen and the sandbox
accept the same values with the same defaults (services.common.backtest_params)."""
from __future__ import annotations

import pathlib
import re

import pytest

from services.common import backtest_params as bp
from stratexec.backtest.v1 import backtest_pb2

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_defaults_fill_every_unset_field_and_the_benchmark_follows_the_first_symbol():
    p, problems = bp.check(backtest_pb2.BacktestParams())
    assert problems == []
    assert p.to_proto() == backtest_pb2.BacktestParams(
        symbols=["BTC-USD"], benchmark="BTC-USD", timeframe="1d", start_date="2024-01-01", end_date="2024-12-31",
        initial_capital=10000.0, fees=0.001, slippage=0.0005, position_sizing="percent", exposure=1.0,
        fill_at="close", stop_target_order="stop_first", reentry="skip", prices="raw", direction="long", risk_per_trade=0.01)
    q = bp.resolve(backtest_pb2.BacktestParams(symbols=["eth", "GC=F"], timeframe="Weekly"))
    assert q.symbols == ("ETH-USD", "GC=F") and q.timeframe == "1w" and q.freq == "7D"
    assert q.benchmark == "portfolio"  # several symbols: compared with the same symbols bought and held
    assert bp.resolve(backtest_pb2.BacktestParams(symbols=["eth", "GC=F"], benchmark="spy")).benchmark == "SPY"
    _, problems = bp.check(backtest_pb2.BacktestParams(symbols=["eth", "GC=F", "ETH-USD"]))
    assert problems == [("params.symbols[2]", "ETH-USD is listed twice ('eth' and 'ETH-USD')")]


def test_explicit_zero_is_kept_where_the_field_has_presence():
    p = bp.resolve(backtest_pb2.BacktestParams(fees=0.0, slippage=0.0))
    assert (p.fees, p.slippage) == (0.0, 0.0)


@pytest.mark.parametrize("raw", ["GC=F", "^GSPC", "BRK.B", "aapl", "btc"])
def test_exchange_symbols_are_accepted(raw):
    assert bp.check(backtest_pb2.BacktestParams(symbols=[raw]))[1] == []


def test_every_bad_field_is_reported_at_once_with_the_accepted_values():
    _, problems = bp.check(backtest_pb2.BacktestParams(
        symbols=["a b"], timeframe="5m", start_date="yesterday", fees=1.5, slippage=-0.1, initial_capital=0,
        exposure=1.5, position_sizing="kelly", benchmark="$$$"))
    got = dict(problems)
    assert set(got) == {"params.symbols[0]", "params.timeframe", "params.start_date", "params.fees", "params.slippage",
                        "params.initial_capital", "params.exposure", "params.position_sizing", "params.benchmark"}
    assert got["params.timeframe"] == "'5m' is not supported; use one of 1d, 1w"
    assert got["params.position_sizing"] == "'kelly' is not supported; use one of percent, equal, equity, risk, fixed"
    assert got["params.fees"].startswith("must be in [0, 1)") and got["params.exposure"].startswith("must be in (0, 1]")


def test_too_many_symbols_and_reversed_dates():
    _, problems = bp.check(backtest_pb2.BacktestParams(symbols=[f"S{i}" for i in range(21)]))
    assert problems == [("params.symbols", "at most 20 symbols, got 21")]
    _, problems = bp.check(backtest_pb2.BacktestParams(start_date="2024-06-01", end_date="2024-01-01"))
    assert problems == [("params.end_date", "end_date 2024-01-01 is before start_date 2024-06-01")]


def test_non_finite_numbers_are_refused():
    _, problems = bp.check(backtest_pb2.BacktestParams(initial_capital=float("inf"), fees=float("nan")))
    assert {f for f, _ in problems} == {"params.initial_capital", "params.fees"}


def test_every_proto_field_has_one_entry_and_says_what_it_accepts():
    proto_fields = [f.name for f in backtest_pb2.BacktestParams.DESCRIPTOR.fields]
    assert sorted(bp.accepted_values()) == sorted(proto_fields)
    assert bp.accepted_values()["timeframe"] == "one of 1d, 1w (default 1d)"


DEFAULT_LITERALS = re.compile(r"""["']2024-12-31["']\s*[,)}]|\b0\.0005\b|["']position_sizing["']\s*:\s*["']""")


def test_a_grep_finds_one_definition_of_the_defaults():
    """The defaults' literals live in services/common/backtest_params.py only, and
    the three services that read parameters import it."""
    sources = {p.relative_to(ROOT).as_posix(): p.read_text() for p in (ROOT / "services").rglob("*.py")}
    defining = {name for name, text in sources.items() if DEFAULT_LITERALS.search(text)}
    assert defining - {"services/sandbox/warm_parent.py"} == {"services/common/backtest_params.py"}
    for service in ("orchestrator", "codegen", "sandbox"):
        assert any(name.startswith(f"services/{service}/") and "backtest_params" in text
                   for name, text in sources.items()), service


def test_reversed_dates_are_reported_beside_other_problems():
    _, problems = bp.check(backtest_pb2.BacktestParams(start_date="2024-06-01", end_date="2024-01-01", initial_capital=-5))
    assert {f for f, _ in problems} == {"params.end_date", "params.initial_capital"}
