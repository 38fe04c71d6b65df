"""Indicator series with TA-Lib's definitions and the pandas code that computes
each one (the recursive ones seeded differently: see each note, and
tests/codegen/test_talib_oracle.py).

Every indicator is a trailing computation: its value at bar t uses bars up
to t only. Warm-up bars (before a full window exists) are NaN, and a
comparison with NaN is False, so no signal fires during the warm-up.
"""
from __future__ import annotations

from services.codegen.grammar.ir import Series, num

FIELDS = ("open", "high", "low", "close", "volume")

SMA_NOTE = "SMA: simple rolling mean, as TA-Lib."
EMA_NOTE = "EMA: ewm(span=n, adjust=False), alpha = 2 / (n + 1) as TA-Lib, seeded with the first value (TA-Lib seeds with an SMA; after the warm-up the two differ by < 0.05% of the close)."
WMA_NOTE = "WMA: linearly weighted mean, weights 1..n with the newest bar weighted n, as TA-Lib."
RSI_NOTE = "RSI: Wilder's smoothing, ewm(alpha=1/n, adjust=False) of gains and losses (not vectorbt's default simple average), seeded with the first change where TA-Lib seeds with the mean of the first n: within 0.5 points of TA-Lib after the warm-up."
MACD_NOTE = "MACD: EMA(fast) - EMA(slow), signal = EMA of the MACD line, histogram = MACD - signal; EMAs are ewm(span=n, adjust=False) (not vectorbt's default simple averages), seeded with the first value: within 0.05% of the close of TA-Lib after the warm-up."
BB_NOTE = "Bollinger Bands: SMA(n) +/- k * population standard deviation (ddof=0) over n bars, as TA-Lib."
ATR_NOTE = "ATR: Wilder's smoothing, ewm(alpha=1/n, adjust=False), of the true range max(high - low, |high - previous close|, |low - previous close|), seeded with the first true range where TA-Lib seeds with the mean of the first n: within 0.05% of the close of TA-Lib after the warm-up."
CHANNEL_NOTE = "Breakout levels use the previous n bars only (bar t excluded), so a close above the level is a new n-bar high."
ROC_NOTE = "ROC: rate of change in percent, 100 * (close / close n bars earlier - 1), as TA-Lib."

# Recursive smoothing (EMA, Wilder) never forgets its seed entirely: after k bars the seed still weighs
# (1 - alpha)^k ~ exp(-alpha * k). The warm-up gives it SETTLE_TIME_CONSTANTS time constants (1 / alpha
# bars), exp(-6) ~ 0.25%: 3 * (n + 1) bars for an EMA(n) (alpha = 2 / (n + 1)), 6 * n for Wilder's
# average (alpha = 1 / n). Rolling windows (SMA, BB, WMA, channels) are exact after their window.
SETTLE_TIME_CONSTANTS = 6


def ema_settle(span: int) -> int:
    return SETTLE_TIME_CONSTANTS * (span + 1) // 2


def wilder_settle(window: int) -> int:
    return SETTLE_TIME_CONSTANTS * window


WORDS = {"close": "the close", "open": "the open", "high": "the high", "low": "the low", "volume": "the volume"}


def field(name: str) -> Series:
    if name == "close":
        return Series(key="close", var="close", label="close", words=WORDS["close"], is_indicator=False)
    var = "open_" if name == "open" else name  # open is a builtin the code policy refuses to see bound
    return Series(
        key=name, var=var, label=name, words=WORDS[name], lines=(f'{var} = ohlc["{name}"]',), is_indicator=False
    )


def _src(source: str) -> tuple[Series, str]:
    """The source series and the suffix its variables get ("" for close)."""
    return field(source), ("" if source == "close" else f"{source}_")


def sma(window: int, source: str = "close") -> Series:
    src, prefix = _src(source)
    var = f"{prefix}sma_{window}"
    return Series(
        key=f"sma({source},{window})", var=var, label=f"SMA({source}, {window})",
        words=f"the {window}-bar simple moving average of {WORDS[source]}",
        lines=(f"{var} = {src.var}.rolling({window}).mean()",), note=SMA_NOTE, deps=(src,), warmup=window - 1,
    )


def ema(window: int, source: str = "close") -> Series:
    src, prefix = _src(source)
    var = f"{prefix}ema_{window}"
    return Series(
        key=f"ema({source},{window})", var=var, label=f"EMA({source}, {window})",
        words=f"the {window}-bar exponential moving average of {WORDS[source]}",
        lines=(f"{var} = {src.var}.ewm(span={window}, adjust=False, min_periods={window}).mean()",),
        note=EMA_NOTE, deps=(src,), warmup=window - 1, settle=ema_settle(window),
    )


def wma(window: int, source: str = "close") -> Series:
    src, prefix = _src(source)
    var = f"{prefix}wma_{window}"
    total = window * (window + 1) // 2
    return Series(
        key=f"wma({source},{window})", var=var, label=f"WMA({source}, {window})",
        words=f"the {window}-bar weighted moving average of {WORDS[source]}",
        lines=(
            f"{var} = {src.var}.rolling({window}).apply(lambda window: np.dot(window, np.arange(1, {window + 1})) / {total}, raw=True)",
        ),
        note=WMA_NOTE, deps=(src,), warmup=window - 1,
    )


MOVING_AVERAGES = {"sma": sma, "ema": ema, "wma": wma}


def rsi(window: int = 14) -> Series:
    close = field("close")
    var = f"rsi_{window}"
    change = Series(
        key="change(close)", var="close_change", label="close - close[t-1]", words="the bar-to-bar change of the close",
        lines=("close_change = close.diff()",), deps=(close,), warmup=1, is_indicator=False,
    )
    return Series(
        key=f"rsi({window})", var=var, label=f"RSI(close, {window})",
        words=f"the {window}-bar RSI (Wilder) of the close",
        lines=(
            f"{var}_avg_gain = close_change.clip(lower=0).ewm(alpha=1 / {window}, adjust=False, min_periods={window}).mean()",
            f"{var}_avg_loss = (-close_change).clip(lower=0).ewm(alpha=1 / {window}, adjust=False, min_periods={window}).mean()",
            f"{var} = 100 - 100 / (1 + {var}_avg_gain / {var}_avg_loss)",
        ),
        note=RSI_NOTE, deps=(change,), warmup=window, settle=1 + wilder_settle(window),
    )


def _macd_suffix(fast: int, slow: int, signal: int) -> str:
    return "" if (fast, slow, signal) == (12, 26, 9) else f"_{fast}_{slow}_{signal}"


def macd_line(fast: int = 12, slow: int = 26, signal: int = 9) -> Series:
    suffix = _macd_suffix(fast, slow, signal)
    var = f"macd_line{suffix}"
    return Series(
        key=f"macd({fast},{slow})", var=var, label=f"MACD({fast}, {slow})",
        words=f"the MACD line (EMA {fast} - EMA {slow} of the close)",
        lines=(
            f"{var} = close.ewm(span={fast}, adjust=False, min_periods={fast}).mean() - close.ewm(span={slow}, adjust=False, min_periods={slow}).mean()",
        ),
        note=MACD_NOTE, deps=(field("close"),), warmup=slow - 1, settle=ema_settle(max(fast, slow)),
    )


def macd_signal(fast: int = 12, slow: int = 26, signal: int = 9) -> Series:
    line = macd_line(fast, slow, signal)
    var = f"macd_signal{_macd_suffix(fast, slow, signal)}"
    return Series(
        key=f"macd_signal({fast},{slow},{signal})", var=var, label=f"MACD signal({fast}, {slow}, {signal})",
        words=f"the MACD signal line (EMA {signal} of the MACD line)",
        lines=(f"{var} = {line.var}.ewm(span={signal}, adjust=False, min_periods={signal}).mean()",),
        note=MACD_NOTE, deps=(line,), warmup=slow + signal - 2, settle=line.settled_after + ema_settle(signal),
    )


def macd_hist(fast: int = 12, slow: int = 26, signal: int = 9) -> Series:
    line = macd_line(fast, slow, signal)
    sig = macd_signal(fast, slow, signal)
    var = f"macd_hist{_macd_suffix(fast, slow, signal)}"
    return Series(
        key=f"macd_hist({fast},{slow},{signal})", var=var, label=f"MACD histogram({fast}, {slow}, {signal})",
        words="the MACD histogram (MACD line - signal line)",
        lines=(f"{var} = {line.var} - {sig.var}",), note=MACD_NOTE, deps=(line, sig), warmup=slow + signal - 2,
        settle=sig.settled_after,
    )


def _bb_tag(window: int, k: str) -> str:
    return f"{window}_{k.replace('.', '_')}"


def bb_std(window: int) -> Series:
    var = f"close_std_{window}"
    return Series(
        key=f"std({window})", var=var, label=f"STD(close, {window})",
        words=f"the {window}-bar population standard deviation of the close",
        lines=(f"{var} = close.rolling({window}).std(ddof=0)",), note=BB_NOTE, deps=(field("close"),),
        warmup=window - 1, is_indicator=False,
    )


def bb_band(side: str, window: int = 20, k=2) -> Series:
    """side: upper | lower | middle."""
    if side == "middle":
        return sma(window)
    k = num(k)
    mid, std = sma(window), bb_std(window)
    var = f"bb_{side}_{_bb_tag(window, k)}"
    sign = "+" if side == "upper" else "-"
    return Series(
        key=f"bb_{side}({window},{k})", var=var, label=f"BB {side}(close, {window}, {k})",
        words=f"the {side} Bollinger Band ({window} bars, {k} standard deviations)",
        lines=(f"{var} = {mid.var} {sign} {k} * {std.var}",), note=BB_NOTE, deps=(mid, std), warmup=window - 1,
    )


def true_range() -> Series:
    high, low, close = field("high"), field("low"), field("close")
    return Series(
        key="true_range", var="true_range", label="TR", words="the true range",
        lines=(
            "previous_close = close.shift(1)",
            "true_range = pd.concat([high - low, (high - previous_close).abs(), (low - previous_close).abs()], axis=1).max(axis=1, skipna=False)",
        ),
        note=ATR_NOTE, deps=(high, low, close), warmup=1, is_indicator=False,
    )


def atr(window: int = 14) -> Series:
    tr = true_range()
    var = f"atr_{window}"
    return Series(
        key=f"atr({window})", var=var, label=f"ATR({window})", words=f"the {window}-bar ATR (Wilder)",
        lines=(f"{var} = true_range.ewm(alpha=1 / {window}, adjust=False, min_periods={window}).mean()",),
        note=ATR_NOTE, deps=(tr,), warmup=window, settle=1 + wilder_settle(window),
    )


def highest_high(window: int) -> Series:
    high = field("high")
    var = f"highest_high_{window}"
    return Series(
        key=f"hh({window})", var=var, label=f"max(high[t-{window}..t-1])",
        words=f"the highest high of the previous {window} bars",
        lines=(f"{var} = high.rolling({window}).max().shift(1)",), note=CHANNEL_NOTE, deps=(high,), warmup=window,
    )


def lowest_low(window: int) -> Series:
    low = field("low")
    var = f"lowest_low_{window}"
    return Series(
        key=f"ll({window})", var=var, label=f"min(low[t-{window}..t-1])",
        words=f"the lowest low of the previous {window} bars",
        lines=(f"{var} = low.rolling({window}).min().shift(1)",), note=CHANNEL_NOTE, deps=(low,), warmup=window,
    )


def roc(window: int) -> Series:
    var = f"roc_{window}"
    return Series(
        key=f"roc({window})", var=var, label=f"ROC(close, {window})",
        words=f"the {window}-bar rate of change of the close (in percent)",
        lines=(f"{var} = 100 * (close / close.shift({window}) - 1)",), note=ROC_NOTE, deps=(field("close"),),
        warmup=window,
    )


def lagged(source: str, bars: int) -> Series:
    src = field(source)
    var = f"{source}_{bars}_bars_ago"
    return Series(
        key=f"lag({source},{bars})", var=var, label=f"{source}[t-{bars}]",
        words=f"{WORDS[source]} {bars} bars earlier",
        lines=(f"{var} = {src.var}.shift({bars})",), deps=(src,), warmup=bars, is_indicator=False,
    )


def _extreme(kind: str, source: str, window: int) -> Series:
    """Highest/lowest value of a field over the previous ``window`` bars (bar t excluded)."""
    if source == "high" and kind == "max":
        return highest_high(window)
    if source == "low" and kind == "min":
        return lowest_low(window)
    src = field(source)
    word = "highest" if kind == "max" else "lowest"
    var = f"{word}_{source}_{window}"
    return Series(
        key=f"{kind}({source},{window})", var=var, label=f"{kind}({source}[t-{window}..t-1])",
        words=f"the {word} {source} of the previous {window} bars",
        lines=(f"{var} = {src.var}.rolling({window}).{kind}().shift(1)",), note=CHANNEL_NOTE, deps=(src,), warmup=window,
    )


def highest(source: str, window: int) -> Series:
    return _extreme("max", source, window)


def lowest(source: str, window: int) -> Series:
    return _extreme("min", source, window)


YEAR_NOTE = "52-week high/low: the highest high (lowest low) of the last 52 weeks (364 calendar days), bar t included."


def year_extreme(side: str) -> Series:
    """side: high | low. A calendar window, so it means 52 weeks on daily and weekly bars alike."""
    src = field(side)
    kind = "max" if side == "high" else "min"
    var = f"{side}_52_weeks"
    return Series(
        key=f"52w_{side}", var=var, label=f"52-week {side}",
        words=f"the 52-week {side} ({'highest high' if side == 'high' else 'lowest low'} of the last 364 days)",
        lines=(f'{var} = {src.var}.rolling("364D").{kind}()',), note=YEAR_NOTE, deps=(src,), warmup=252,
    )


def shifted(series: Series, bars: int) -> Series:
    """``series`` ``bars`` bars earlier."""
    if not series.is_indicator and series.key in FIELDS:
        return lagged(series.key, bars)
    var = f"{series.var}_{bars}_bars_ago"
    return Series(
        key=f"lag({series.key},{bars})", var=var, label=f"{series.label}[t-{bars}]",
        words=f"{series.words} {bars} bars earlier", lines=(f"{var} = {series.var}.shift({bars})",),
        deps=(series,), warmup=series.warmup + bars, is_indicator=False,
    )


def average_of(kind: str, window: int, series: Series) -> Series:
    """A moving average (sma, ema, wma) of any series: "RSI above its 20-day average"."""
    var = f"{kind}_{window}_of_{series.var}"
    total = window * (window + 1) // 2
    code = {
        "sma": f"{series.var}.rolling({window}).mean()",
        "ema": f"{series.var}.ewm(span={window}, adjust=False, min_periods={window}).mean()",
        "wma": f"{series.var}.rolling({window}).apply(lambda window: np.dot(window, np.arange(1, {window + 1})) / {total}, raw=True)",
    }[kind]
    note = {"sma": SMA_NOTE, "ema": EMA_NOTE, "wma": WMA_NOTE}[kind]
    return Series(
        key=f"{kind}({series.key},{window})", var=var, label=f"{kind.upper()}({series.label}, {window})",
        words=f"the {window}-bar {kind.upper()} of {series.words}", lines=(f"{var} = {code}",), note=note,
        deps=(series,), warmup=series.warmup + window - 1,
    )


def bar_range() -> Series:
    high, low = field("high"), field("low")
    return Series(
        key="range", var="bar_range", label="(high - low)", words="the bar's range (high - low)",
        lines=("bar_range = high - low",), deps=(high, low), is_indicator=False,
    )
