"""Table-driven corpus: how each phrasing is read, and which phrasings are rejected."""
from __future__ import annotations

import pytest

from services.codegen.grammar import RuleError, parse_rule

SMA20_DROP = "close <= 0.95 * SMA(close, 20)"


def cross(a: str, direction: str, b: str) -> str:
    now, before = (">", "<=") if direction == "above" else ("<", ">=")
    b_t, b_t1 = (b, b) if b.replace(".", "").isdigit() else (f"{b}[t]", f"{b}[t-1]")
    return f"{a} crosses {direction} {b}: {a}[t] {now} {b_t} and {a}[t-1] {before} {b_t1}"


MACD, SIGNAL, HIST = "MACD(12, 26)", "MACD signal(12, 26, 9)", "MACD histogram(12, 26, 9)"

# (node side, rule as a user writes it, expected formula)
CORPUS = [
    # price against a moving average by a percentage
    ("entry", "Enter on a 5% price drop from the 20-day moving average", SMA20_DROP),
    ("entry", "Buy when price drops 5% from the 20 day MA", SMA20_DROP),
    ("entry", "Buy when price falls 5 percent below the 20-period SMA", SMA20_DROP),
    ("entry", "Buy when the close is 5% below MA(20)", SMA20_DROP),
    ("entry", "Buy when price is at least 5% under the SMA 20", SMA20_DROP),
    ("entry", "Buy when price dips 5% below the moving average of 20 days", SMA20_DROP),
    ("entry", "buy on a 3% pullback to the 50-day EMA", "close <= 0.97 * EMA(close, 50)"),
    ("entry", "Buy when price is 2.5% above the 10-day WMA", "close >= 1.025 * WMA(close, 10)"),
    ("exit", "Sell when price is 10% above the 50-day exponential moving average", "close >= 1.1 * EMA(close, 50)"),
    ("exit", "Exit when price rises 10% above the 50-day EMA", "close >= 1.1 * EMA(close, 50)"),
    ("entry", "Buy if price >= 1.02 * SMA(20)", "close >= 1.02 * SMA(close, 20)"),
    # price against a moving average
    ("entry", "Buy when price closes above the 200-day moving average", "close > SMA(close, 200)"),
    ("entry", "Buy when the close is above SMA(200)", "close > SMA(close, 200)"),
    ("entry", "Go long when price trades above the 50 EMA", "close > EMA(close, 50)"),
    ("exit", "Exit when the close is under the 20-day EMA", "close < EMA(close, 20)"),
    ("exit", "Sell if close < 20-day SMA", "close < SMA(close, 20)"),
    ("entry", "Buy when close is at or above the 20-day SMA", "close >= SMA(close, 20)"),
    ("entry", "Buy when price touches the 50-day moving average", "(low <= SMA(close, 50)) and (high >= SMA(close, 50))"),
    # price crossing a moving average
    ("entry", "Enter on 20-day MA crossover", cross("close", "above", "SMA(close, 20)")),
    ("entry", "Buy when price crosses above the 50-day SMA", cross("close", "above", "SMA(close, 50)")),
    ("entry", "Buy when price crosses over the 20-day moving average", cross("close", "above", "SMA(close, 20)")),
    ("entry", "Buy when price breaks above the 100-day EMA", cross("close", "above", "EMA(close, 100)")),
    ("entry", "Buy when price crosses over MA(20)", cross("close", "above", "SMA(close, 20)")),
    ("entry", "Buy when price breaks above SMA 20", cross("close", "above", "SMA(close, 20)")),
    ("exit", "Exit when price crosses below the 20-day WMA", cross("close", "below", "WMA(close, 20)")),
    ("exit", "Sell when the close falls below the 50 day moving average", cross("close", "below", "SMA(close, 50)")),
    # moving average crossing moving average
    ("entry", "Buy when the 20-day SMA crosses above the 50-day SMA", cross("SMA(close, 20)", "above", "SMA(close, 50)")),
    ("entry", "Buy when SMA(20) crosses over SMA(50)", cross("SMA(close, 20)", "above", "SMA(close, 50)")),
    ("entry", "Buy on a 20/50 SMA crossover", cross("SMA(close, 20)", "above", "SMA(close, 50)")),
    ("entry", "Buy when the 20-period EMA crosses above the 50 period EMA", cross("EMA(close, 20)", "above", "EMA(close, 50)")),
    ("entry", "Enter on a bullish 10/30 EMA crossover", cross("EMA(close, 10)", "above", "EMA(close, 30)")),
    ("exit", "Exit when the 10-day EMA crosses below the 30-day EMA", cross("EMA(close, 10)", "below", "EMA(close, 30)")),
    ("exit", "Exit on a bearish 20/50 moving average crossover", cross("SMA(close, 20)", "below", "SMA(close, 50)")),
    ("entry", "Enter on a golden cross", cross("SMA(close, 50)", "above", "SMA(close, 200)")),
    ("exit", "Exit on a death cross", cross("SMA(close, 50)", "below", "SMA(close, 200)")),
    # RSI levels and crossings
    ("entry", "Buy when RSI(14) is below 30", "RSI(close, 14) < 30"),
    ("entry", "Buy when RSI is under 30", "RSI(close, 14) < 30"),
    ("entry", "Buy when the 14-day RSI < 30", "RSI(close, 14) < 30"),
    ("entry", "Buy when RSI 7 is below 20", "RSI(close, 7) < 20"),
    ("exit", "Sell when RSI is above 70", "RSI(close, 14) > 70"),
    ("exit", "Sell when RSI(14) is over 70", "RSI(close, 14) > 70"),
    ("entry", "Enter when the 14-day RSI crosses above 30", cross("RSI(close, 14)", "above", "30")),
    ("exit", "Exit when RSI crosses below 70", cross("RSI(close, 14)", "below", "70")),
    ("entry", "Buy when RSI is oversold", "RSI(close, 14) < 30"),
    ("exit", "Sell when RSI is overbought", "RSI(close, 14) > 70"),
    ("entry", "Buy when RSI is below 30 or above 70", "(RSI(close, 14) < 30) or (RSI(close, 14) > 70)"),
    # MACD against its signal line, histogram sign
    ("entry", "Buy when MACD crosses above the signal line", cross(MACD, "above", SIGNAL)),
    ("entry", "Buy when the MACD line crosses over its signal line", cross(MACD, "above", SIGNAL)),
    ("entry", "Enter on a bullish MACD crossover", cross(MACD, "above", SIGNAL)),
    ("exit", "Sell when the MACD line is below its signal line", f"{MACD} < {SIGNAL}"),
    ("exit", "Exit when MACD crosses below signal", cross(MACD, "below", SIGNAL)),
    ("entry", "Enter when the MACD histogram turns positive", cross(HIST, "above", "0")),
    ("entry", "Buy when the MACD histogram is above zero", f"{HIST} > 0"),
    ("exit", "Exit when the MACD histogram is negative", f"{HIST} < 0"),
    ("entry", "Buy when MACD(8, 21, 5) crosses above its signal line", cross("MACD(8, 21)", "above", "MACD signal(8, 21, 5)")),
    ("entry", "Buy when MACD is above 0", f"{MACD} > 0"),
    # Bollinger Bands
    ("entry", "Buy when price closes below the lower Bollinger Band", "close < BB lower(close, 20, 2)"),
    ("entry", "Buy when the close is outside the lower Bollinger Band", "close < BB lower(close, 20, 2)"),
    ("entry", "Buy when price touches the lower Bollinger Band", "low <= BB lower(close, 20, 2)"),
    ("exit", "Sell when price touches the upper Bollinger Band", "high >= BB upper(close, 20, 2)"),
    ("exit", "Sell when the close is above the upper Bollinger Band (20, 2.5)", "close > BB upper(close, 20, 2.5)"),
    ("entry", "Buy when price closes outside the Bollinger Bands", "(close > BB upper(close, 20, 2)) or (close < BB lower(close, 20, 2))"),
    ("entry", "Buy when price crosses above the middle Bollinger Band", cross("close", "above", "SMA(close, 20)")),
    # N-day high and low breakouts
    ("entry", "Buy when the close breaks above the 20-day high", "close > max(high[t-20..t-1])"),
    ("entry", "Buy on a new 55-day high", "close > max(high[t-55..t-1])"),
    ("entry", "Buy on a 20-day high breakout", "close > max(high[t-20..t-1])"),
    ("exit", "Exit when the close breaks below the 10-day low", "close < min(low[t-10..t-1])"),
    ("exit", "Sell when price closes below the lowest low of the last 20 days", "close < min(low[t-20..t-1])"),
    # rate of change / percentage move over N days
    ("entry", "Buy when price rises 10% in 5 days", "close >= 1.1 * close[t-5]"),
    ("entry", "Buy when price is up 10% over the last 5 days", "close >= 1.1 * close[t-5]"),
    ("exit", "Exit when price falls 5% over 3 days", "close <= 0.95 * close[t-3]"),
    ("entry", "Buy after a 15% drop in 10 days", "close <= 0.85 * close[t-10]"),
    ("entry", "Enter when the 10-day rate of change is above 5%", "ROC(close, 10) > 5"),
    ("entry", "Buy when ROC(10) > 5%", "ROC(close, 10) > 5"),
    ("exit", "Exit when the 5-day return is negative", "ROC(close, 5) < 0"),
    # volume against its average
    ("entry", "Buy when volume is above its 20-day average", "volume > SMA(volume, 20)"),
    ("entry", "Enter when volume is 2x the 20-day average volume", "volume >= 2 * SMA(volume, 20)"),
    ("entry", "Buy when volume is twice its 50-day average", "volume >= 2 * SMA(volume, 50)"),
    ("entry", "Buy when volume is 50% above the 20-day average volume", "volume >= 1.5 * SMA(volume, 20)"),
    ("entry", "Buy when volume above 1.5x its 20-day average", "volume > 1.5 * SMA(volume, 20)"),
    ("entry", "Buy when volume crosses above its 20-day moving average", cross("volume", "above", "SMA(volume, 20)")),
    # filters and combinations
    ("filter", "Only when price is above the 200-day moving average", "close > SMA(close, 200)"),
    ("filter", "Only trade when the 50-day SMA is above the 200-day SMA", "SMA(close, 50) > SMA(close, 200)"),
    ("filter", "RSI below 70", "RSI(close, 14) < 70"),
    ("entry", "Buy when RSI is under 30 and price is above the 200-day SMA", "(RSI(close, 14) < 30) and (close > SMA(close, 200))"),
    ("entry", "Buy when close is above the 20-day SMA and above the 50-day SMA", "(close > SMA(close, 20)) and (close > SMA(close, 50))"),
    ("entry", "Buy when RSI is below 30 or price touches the lower Bollinger Band", "(RSI(close, 14) < 30) or (low <= BB lower(close, 20, 2))"),
    ("entry", "Buy when the price is above 50000", "close > 50000"),
    # ranges and persistence
    ("entry", "Buy when RSI is between 40 and 60", "(RSI(close, 14) >= 40) and (RSI(close, 14) <= 60)"),
    ("filter", "Only when the 10-day rate of change is between -5% and 5%", "(ROC(close, 10) >= -5) and (ROC(close, 10) <= 5)"),
    ("entry", "Buy when price closes above the 20-day SMA for 3 consecutive days", "(close > SMA(close, 20)) on each of bars t-2..t"),
    ("entry", "Buy when RSI is below 30 for 2 days in a row", "(RSI(close, 14) < 30) on each of bars t-1..t"),
    ("exit", "Exit when the 1-day rate of change is below -10%", "ROC(close, 1) < -10"),
    # N-bar extremes of any field, gaps, consecutive bars, N bars ago, 52-week extremes, own averages, windows
    ("entry", "Buy when the close is above the highest close of the last 20 days", "close > max(close[t-20..t-1])"),
    ("entry", "Buy on a 20-day closing high", "close > max(close[t-20..t-1])"),
    ("exit", "Sell when the close is below the lowest open of the past 5 bars", "close < min(open[t-5..t-1])"),
    ("entry", "Buy when price gaps up 1.5%", "open >= 1.015 * close[t-1]"),
    ("entry", "Buy on a gap down of 2%", "open <= 0.98 * close[t-1]"),
    ("entry", "Buy after four lower closes in a row", "(close < close[t-1]) on each of bars t-3..t"),
    ("entry", "Buy when the close is above yesterday's high", "close > high[t-1]"),
    ("entry", "Buy when RSI 2 bars ago was below 20", "RSI(close, 14)[t-2] < 20"),
    ("entry", "Buy when the close is within 2% of the 52-week high", "close >= 0.98 * 52-week high"),
    ("entry", "Buy on a new 52-week low", "close < 52-week low[t-1]"),
    ("filter", "Only when RSI is above its 10-day average", "RSI(close, 14) > SMA(RSI(close, 14), 10)"),
    ("entry", "Buy when volume is 300% of its 50-day average", "volume >= 3 * SMA(volume, 50)"),
    ("entry", "Buy when the 20 crosses above the 100", cross("SMA(close, 20)", "above", "SMA(close, 100)")),
    ("entry", "Buy when RSI crossed above 30 within the last three bars",
     "(RSI(close, 14) crosses above 30) on at least one of bars t-2..t"),
    ("entry", "Buy when RSI falls under 30 and then climbs back above it", cross("RSI(close, 14)", "above", "30")),
    ("entry", "Buy when the range is more than 1.5 times the 14-day ATR", "(high - low) >= 1.5 * ATR(14)"),
]


def test_corpus_is_large_and_covers_every_form():
    assert len(CORPUS) >= 60
    assert len({rule for _, rule, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("side,rule,formula", CORPUS, ids=[r for _, r, _ in CORPUS])
def test_phrasing(side, rule, formula):
    condition, _ = parse_rule(rule, side)
    assert condition.formula() == formula
    assert condition.full_formula() == formula + ", evaluated at bar close"
    assert condition.words()  # every condition explains itself in words


# (node side, rule, words the reason must contain)
REJECTED = [
    ("entry", "Buy when the moon is full", "does not match any supported rule form"),
    ("entry", "Buy when Stochastic %K is below 20", "does not match"),
    ("entry", "Buy when price is above the moving average", "has no window"),
    ("exit", "Exit on 20-day MA crossover", "ambiguous"),
    ("entry", "Buy when the 20-day MA crosses the 50-day MA", "needs a direction"),
    ("entry", "Buy when RSI is below 130", "between 0 and 100"),
    ("entry", "Buy when RSI crosses above the 20-day SMA", "different scales"),
    ("entry", "Sell when RSI above 70", "entry_condition"),
    ("exit", "Buy when RSI above 70", "exit_condition"),
    ("entry", "Buy when price is above the 10-week moving average", "counts weeks but the bars are daily"),
    ("entry", "Buy when price is above 5%", "percentage"),
    ("entry", "Buy when RSI < 30 and MACD > 0 or volume above its 20-day average", "mixes 'and' with 'or'"),
    ("entry", "Buy when price rises 5% below the 20-day SMA", "mixes directions"),
    ("entry", "Buy when price crosses above the 20-day SMA and the moon is full", "rejected as a whole"),
    ("entry", "Buy when price is above the Bollinger Band", "which Bollinger Band"),
    ("entry", "Buy when price crosses below the 20-day high", "broken above"),
    ("entry", "   ", "empty"),
    ("entry", "Buy when price is above the 20-day SMA for 1 day", "at least 2 bars"),
    ("entry", "Buy when price is between 100 and 5%", "percentage"),
]


@pytest.mark.parametrize("side,rule,reason", REJECTED, ids=[r for _, r, _ in REJECTED])
def test_rejected(side, rule, reason):
    with pytest.raises(RuleError) as caught:
        parse_rule(rule, side)
    assert reason in caught.value.reason
    assert caught.value.suggestion  # always the closest supported phrasing


def test_suggestion_is_the_closest_example():
    with pytest.raises(RuleError) as caught:
        parse_rule("Buy when the RSI(14) goes under 30 points", "entry")
    assert caught.value.suggestion == "Buy when RSI(14) is below 30"


def test_units_must_match_the_bars():
    condition, _ = parse_rule("Buy when price crosses above the 10-week SMA", "entry", timeframe="1w")
    assert condition.formula().startswith("close crosses above SMA(close, 10)")
    with pytest.raises(RuleError) as caught:
        parse_rule("Enter on a 5% price drop from the 20-day moving average", "entry", timeframe="1w")
    assert caught.value.suggestion == "Enter on a 5% price drop from the 20-bar moving average"


def test_every_suggested_phrasing_is_itself_supported():
    from services.codegen.grammar.examples import EXAMPLES

    for _form, side, example in EXAMPLES:
        condition, _ = parse_rule(example, side if side != "any" else "filter")
        assert condition.formula()


def test_three_closest_phrasings_for_a_rule_not_understood():
    with pytest.raises(RuleError) as caught:
        parse_rule("Buy when the stock gaps upward by 2 percent", "entry")
    assert len(caught.value.suggestions) == 3 and len(set(caught.value.suggestions)) == 3
    assert caught.value.suggestions[0] == caught.value.suggestion == "Buy when price gaps up 2%"
    for example in caught.value.suggestions:
        parse_rule(example, "entry")  # every suggestion is itself understood


@pytest.mark.parametrize("text", [
    "9" * 10_000,
    ("Buy when RSI is below 30 and " * 400)[:10_000],
    ("x " * 5_000),
    ("Buy when the 20-day SMA crosses above the 50-day SMA within the last 5 bars " * 150)[:10_000],
    "(" * 10_000,
], ids=["digits", "and-chain", "short-words", "long-phrasing", "parentheses"])
def test_a_10000_character_rule_answers_within_50_ms(text):
    """The one timing-bounded test the issue allows: best of three, on a shared 2-core machine."""
    import time

    parse_rule("Buy when RSI is below 30", "entry")  # patterns compiled once per process, not per rule
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        with pytest.raises(RuleError) as caught:
            parse_rule(text, "entry")
        best = min(best, time.perf_counter() - start)
    assert "at most 300" in caught.value.reason and len(caught.value.suggestions) == 3
    assert best < 0.050, f"{best * 1000:.1f} ms"


@pytest.mark.parametrize("sentence", [
    " and ".join(["#t0 below 30"] * 700)[:10_000].rsplit(" and ", 1)[0],
    " and ".join([f"#t0 below {30 + i / 100:.2f}" for i in range(1_000)])[:10_000].rsplit(" and ", 1)[0],
    ("#t0 crosses above #t1 " * 500)[:10_000],
    " ".join(["above"] * 1_700)[:10_000],
    "9" * 10_000,
    ("#t0 " * 2_500)[:10_000],
    ("#t0 below 30 or " * 700)[:10_000],
], ids=["588-clause-and", "500-distinct-clause-and", "repeated-clause", "repeated-word", "digits", "placeholders", "or-chain"])
def test_the_grammar_reads_a_10000_character_sentence_within_50_ms(sentence):
    """The grammar's own step (LALR, one token per word), without the rule's size budget: linear in the length.
    Best of three, on a shared 2-core machine (the one timing-bounded test the issue asks for, with the one above)."""
    import time

    from services.codegen.grammar import rules
    from services.codegen.grammar.forms import Context, Matcher, Tok

    assert len(sentence) > 9_000
    best = float("inf")
    for _ in range(3):
        matcher = Matcher([Tok("rsi", 14, text="RSI"), Tok("ma", 20, text="20-day SMA")], Context(side="entry"))
        rules._parse.cache_clear()  # each run parses afresh
        start = time.perf_counter()
        try:
            condition = rules.read(sentence, matcher)
        except RuleError as exc:
            condition = exc
        best = min(best, time.perf_counter() - start)
    if sentence.startswith(("#t0 below 30 and", "#t0 below 30.00 and")):
        assert condition.formula().count("RSI(close, 14) < 3") >= 500  # understood, every clause
    else:
        assert isinstance(condition, RuleError)
    assert best < 0.050, f"{best * 1000:.1f} ms"


def test_a_near_miss_carries_the_structured_condition_it_would_have_meant():
    from services.codegen import compiler
    from services.codegen.grammar.structured import parse_condition
    from services.common import errors

    with pytest.raises(RuleError) as caught:
        parse_rule("Buy when the RSI(14) goes under 30 points", "entry")
    assert caught.value.near_miss == {"indicator": "rsi", "params": {"window": 14}, "op": "<", "ref": 30}
    assert parse_condition(caught.value.near_miss).formula() == "RSI(close, 14) < 30"  # resubmittable as is
    with pytest.raises(RuleError) as far:
        parse_rule("Buy when the moon is full", "entry")
    assert far.value.near_miss is None  # not a near miss: no guess
    doc = {"nodes": [{"id": "e", "type": "entry_condition", "meta": {"rules": ["Buy when the RSI(14) goes under 30 points"]}}]}
    with pytest.raises(errors.ApiError) as api:
        compiler.analyze(doc, None)
    assert 'resubmit it as meta.conditions: [{"indicator": "rsi", "op": "<", "params": {"window": 14}, "ref": 30}]' in api.value.message
    assert api.value.metadata["structured"] == '{"indicator": "rsi", "op": "<", "params": {"window": 14}, "ref": 30}'


def test_the_grammar_takes_its_words_from_the_lexicon():
    from services.codegen.grammar import lexicon, rules

    literals = {t.pattern.value for t in rules.PARSER.terminals if t.pattern.type == "str"}
    tables = (lexicon.UP_VERBS, lexicon.DOWN_VERBS, lexicon.NEUTRAL_VERBS, lexicon.STATE_VERBS, lexicon.UP_MOVE,
              lexicon.DOWN_MOVE, lexicon.UP_NOUN, lexicon.DOWN_NOUN, tuple(lexicon.CMP), lexicon.ABOVE, lexicon.BELOW,
              lexicon.UNIT_WORDS)
    missing = {w for table in tables for phrase in table for w in phrase.split() if w not in lexicon.FILLER_WORDS} - literals
    assert not missing


def test_a_synonym_is_one_entry_in_the_lexicon(monkeypatch):
    from services.codegen.grammar import lexicon, rules

    with pytest.raises(RuleError):
        parse_rule("Buy when RSI soars above 30", "entry")
    monkeypatch.setattr(lexicon, "UP_VERBS", lexicon.UP_VERBS + ("soars",))
    monkeypatch.setattr(rules, "PARSER", rules.build_parser())
    rules._parse.cache_clear()
    try:
        condition, _ = parse_rule("Buy when RSI soars above 30", "entry")
        assert condition.formula() == cross("RSI(close, 14)", "above", "30")
        with pytest.raises(RuleError, match="mixes directions"):
            parse_rule("Buy when RSI soars below 30", "entry")  # an up verb: the semantic check knows it too
    finally:
        rules._parse.cache_clear()
