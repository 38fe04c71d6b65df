"""Weekly bars of stratexec_runtime.load_prices against a plain loop over the daily rows."""
import pandas as pd
import pytest

from services.common.config import project_root
from stratexec_runtime import load_prices

DATA = project_root() / "data" / "ohlcv"


def weekly_by_hand(daily: pd.DataFrame, first: str, last: str) -> pd.DataFrame:
    """One bar per ISO week of the days in [first, last]: open of its first day, high/low over its
    days, close of its last day, summed volume, dated by its last day."""
    weeks: dict[tuple[int, int], list] = {}
    for day, row in daily.loc[first:last].iterrows():
        iso = day.isocalendar()
        weeks.setdefault((iso[0], iso[1]), []).append((day, row))
    rows = []
    for days in weeks.values():
        rows.append({"date": days[-1][0], "open": days[0][1]["open"], "high": max(r["high"] for _, r in days),
                     "low": min(r["low"] for _, r in days), "close": days[-1][1]["close"],
                     "volume": sum(r["volume"] for _, r in days)})
    return pd.DataFrame(rows).set_index("date")[["open", "high", "low", "close", "volume"]]


@pytest.mark.parametrize("symbol, start, end", [
    ("BTC-USD", "2024-01-03", "2024-12-31"),  # crypto: weeks end on Sunday; start on a Wednesday, end on a Tuesday
    ("SPY", "2024-01-03", "2024-12-31"),  # an exchange: weeks end on Friday, or earlier around a holiday
])
def test_weekly_bars_are_dated_by_their_last_trading_day_and_stay_inside_the_window(symbol, start, end):
    daily = pd.read_csv(DATA / f"{symbol}.csv", index_col="date", parse_dates=True)
    bars = load_prices(str(DATA / f"{symbol}.csv"), [symbol], start, end, "1w", warmup_bars=8)[symbol]
    traded = bars.loc[start:]

    expected = weekly_by_hand(daily, start, end)
    pd.testing.assert_frame_equal(traded, expected, check_names=False, check_freq=False)
    assert traded.index[-1] == pd.Timestamp("2024-12-31")  # not the Sunday after end_date
    assert traded.index[0] >= pd.Timestamp(start)

    # The warm-up bars come from days before start_date only: the week cut by start ends the day before it.
    warmup = bars.loc[: pd.Timestamp(start) - pd.Timedelta(days=1)]
    assert len(warmup) == 8
    day_before = daily.loc[: pd.Timestamp(start) - pd.Timedelta(days=1)].index[-1]
    pd.testing.assert_frame_equal(warmup, weekly_by_hand(daily, "2023-10-01", day_before).iloc[-8:],
                                  check_names=False, check_freq=False)


def test_daily_bars_are_the_rows_of_the_window_and_the_warmup():
    daily = pd.read_csv(DATA / "BTC-USD.csv", index_col="date", parse_dates=True)
    bars = load_prices(str(DATA / "BTC-USD.csv"), ["BTC"], "2024-03-01", "2024-03-31", warmup_bars=10)["BTC-USD"]
    pd.testing.assert_frame_equal(bars, daily.loc["2024-02-20":"2024-03-31", bars.columns].astype(float), check_freq=False)
