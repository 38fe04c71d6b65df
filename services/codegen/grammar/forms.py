"""The rule forms' meaning and their semantic checks, in Python: scales
(dimensions), windows, look-back, units against the bar size, directions.

rules.py parses a rule with the grammar (rules.lark) and calls one builder
below per form with the parts the grammar found (``g``: role -> words).
"""
from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

from services.codegen.grammar import indicators as ind
from services.codegen.grammar import lexicon as lex
from services.codegen.grammar.errors import RuleError
from services.codegen.grammar.ir import Combined, Compare, Condition, Cross, Operand, Series

# A token kind -> the dimension it lives in; comparisons need matching dimensions.
PRICE, VOLUME, RSI, MACD, ROC, ATR = "price", "volume", "rsi", "macd", "roc", "atr"


@dataclasses.dataclass
class Tok:
    kind: str  # field, ma, avg, rsi, macd_line, macd_signal, macd_hist, bb_upper, bb_lower, bb_both, atr, hh, ll, roc
    window: int = 0
    ma: str = "sma"
    source: str = "close"
    explicit_source: bool = True
    params: tuple = ()
    text: str = ""
    lag: int = 0  # "yesterday's high", "RSI 3 bars ago": the value this many bars earlier
    own: bool = False  # "its 20-day average": an average of the other side's series
    of: "Tok | None" = None  # the series an own average is taken of

    @property
    def dimension(self) -> str:
        if self.of is not None:
            return self.of.dimension
        if self.kind in ("field", "ma", "avg", "hh", "ll"):
            return VOLUME if self.source == "volume" else PRICE
        if self.kind == "range":
            return ATR  # a price distance, like the ATR
        if self.kind == "custom":
            return "custom indicator " + self.params[0].label  # compares with numbers and with itself only
        return {"rsi": RSI, "macd_line": MACD, "macd_signal": MACD, "macd_hist": MACD, "roc": ROC, "atr": ATR}.get(
            self.kind, PRICE
        )


@dataclasses.dataclass
class Context:
    side: str  # entry | exit | filter
    timeframe: str = "1d"
    rule: str = ""
    warnings: list[str] = dataclasses.field(default_factory=list)
    custom: dict = dataclasses.field(default_factory=dict)  # custom indicator name -> Series
    subject: "Subject | None" = None  # the series "it" (or an omitted subject) binds to, from the strategy's other rules
    level_subject: "Tok | None" = None  # the series this rule compares with a number, offered to the others
    position: str | None = None  # "short" when the wording says so ("Sell short when", "Cover when"), else None


class NeedsSubject(RuleError):
    """ "Sell when it is above 70": a level compared with no named series."""


@dataclasses.dataclass(frozen=True)
class Subject:
    """A series another rule of the strategy names (its token), to bind a pronoun to."""

    tok: "Tok"
    label: str
    key: str


@dataclasses.dataclass(frozen=True)
class Parsed:
    condition: Condition
    warnings: list[str]
    subject: Subject | None  # the non-price series this rule compares with a level, if any
    position: str | None = None  # "short" when the rule's wording opens or closes a short position


CALENDAR_UNIT = re.compile(
    r"(\d+)\s*-?\s*(?:" + "|".join(sorted(lex.DAILY_UNITS + lex.WEEKLY_UNITS, key=len, reverse=True)) + r")\b", re.IGNORECASE
)


def unit_bars(unit: str | None, ctx: Context, text: str) -> None:
    """Windows count bars; a unit that contradicts the bar size is ambiguous."""
    if not unit:
        return
    unit = unit.lower()
    daily_unit, weekly_unit = unit in lex.DAILY_UNITS, unit in lex.WEEKLY_UNITS
    fix = CALENDAR_UNIT.sub(r"\1-bar", ctx.rule)
    if daily_unit and ctx.timeframe == "1w":
        raise RuleError(f"'{text}' counts days but the bars are weekly; count bars (weeks) instead", fix)
    if weekly_unit and ctx.timeframe != "1w":
        raise RuleError(f"'{text}' counts weeks but the bars are daily; count bars (days) instead", fix)


def check_window(value: str, text: str) -> int:
    n = int(value)
    if n < 1 or n > 5000:
        raise RuleError(f"'{text}' has a window of {n} bars; windows must be between 1 and 5000")
    return n


def source_of(raw: str | None) -> tuple[str, bool]:
    if not raw:
        return "close", False
    raw = raw.rstrip("s") if raw.endswith(("highs", "lows", "opens")) else raw
    if raw.startswith(("clos", "price")):
        return "close", True
    return raw, True


# ---------------------------------------------------------------- step 3


def series_of(tok: Tok, other: Tok | None = None) -> Series:
    """The series of a token, ``lag`` bars earlier when it has one."""
    base = _base_series(tok)
    return ind.shifted(base, tok.lag) if tok.lag else base


def _base_series(tok: Tok) -> Series:
    if tok.kind == "custom":
        return tok.params[0]
    if tok.of is not None:
        return ind.average_of(tok.ma, tok.window, series_of(tok.of))
    if tok.kind == "yh":
        return ind.year_extreme("high")
    if tok.kind == "yl":
        return ind.year_extreme("low")
    if tok.kind == "range":
        return ind.bar_range()
    if tok.kind == "field":
        return ind.field(tok.source)
    if tok.kind in ("ma", "avg"):
        return ind.MOVING_AVERAGES[tok.ma](tok.window, tok.source)
    if tok.kind == "rsi":
        return ind.rsi(tok.window)
    if tok.kind == "macd_line":
        return ind.macd_line(*tok.params)
    if tok.kind == "macd_signal":
        return ind.macd_signal(*tok.params)
    if tok.kind == "macd_hist":
        return ind.macd_hist(*tok.params)
    if tok.kind in ("bb_upper", "bb_lower"):
        return ind.bb_band(tok.kind[3:], tok.params[0], tok.params[1])
    if tok.kind == "atr":
        return ind.atr(tok.window)
    if tok.kind == "hh":
        return ind.highest(tok.source, tok.window)
    if tok.kind == "ll":
        return ind.lowest(tok.source, tok.window)
    if tok.kind == "roc":
        return ind.roc(tok.window)
    raise RuleError(f"'{tok.text}' cannot be used here")


class Matcher:
    def __init__(self, toks: list[Tok], ctx: Context):
        self.toks = toks
        self.ctx = ctx

    def tok(self, ref: str | None) -> Tok:
        if ref is None:
            return Tok("field", source="close", text="price")
        return self.toks[int(ref[2:])]

    def operand(self, tok: Tok, other: Tok | None = None, factor: Decimal = Decimal(1)) -> Operand:
        if tok.kind == "bb_both":
            raise RuleError("say which Bollinger Band: the upper or the lower one")
        return Operand.of(series_of(tok, other), factor)

    def value(self, raw: str, left: Tok) -> Operand:
        """A constant on the right-hand side: a level (RSI 30) or a percentage (ROC 5%)."""
        pct = raw.endswith("%")
        value = Decimal(raw.rstrip("%"))
        if pct and left.kind != "roc":
            raise RuleError(f"'{raw}' is a percentage, but {left.text or 'the price'} is not measured in percent")
        if left.kind == "rsi" and not 0 <= value <= 100:
            raise RuleError(f"RSI lies between 0 and 100; {raw} is outside")
        return Operand.constant(value, "%" if left.kind == "roc" else "")

    def check_dims(self, a: Tok, b: Tok) -> None:
        # "volume above its 20-day average": an average without a source takes the other side's.
        for x, y in ((a, b), (b, a)):
            if x.kind in ("ma", "avg") and not x.explicit_source and y.kind in ("field", "ma", "avg") and y.source == "volume":
                x.source = "volume"
            elif x.kind in ("ma", "avg") and x.own and not x.explicit_source and y.kind not in ("field", "bb_both"):
                x.of = y  # "RSI above its 20-day average": the average of the RSI
        if a.kind == "macd_signal" and b.kind == "macd_signal":
            raise RuleError("compares the signal line with itself")
        da, db = a.dimension, b.dimension
        if da != db:
            raise RuleError(
                f"compares {a.text or 'the price'} with {b.text or 'the price'}, which are on different scales ({da} vs {db})"
            )
        if a.kind == b.kind == "field" and a.source == b.source and a.lag == b.lag:
            raise RuleError(f"compares {a.text or 'the price'} with itself")

    def level_subject(self, a_ref: str | None, level: str) -> Tok:
        """The series compared with a number: named, or bound from the strategy's other rules, never silently the price."""
        if a_ref is not None:
            a = self.tok(a_ref)
            if not (a.kind == "field" and a.source == "close"):
                self.ctx.level_subject = a
            return a
        if self.ctx.subject is None:
            raise NeedsSubject(
                f"it does not say what is compared with {level} ('it' or a missing subject would be read as the price); "
                f"name the series, such as 'RSI is above {level}'"
            )
        bound = self.ctx.subject
        self.ctx.warnings.append(
            f"rule \"{self.ctx.rule}\" names no series before {level}: read as {bound.label}, the series the strategy's other rules compare with a level"
        )
        return dataclasses.replace(bound.tok)

    def pair(self, a_ref: str | None, b: str, k: str | None = None) -> tuple[Tok, Operand, Operand]:
        a = self.tok(a_ref) if b.startswith("#") else self.level_subject(a_ref, b)
        if b.startswith("#"):
            bt = self.tok(b)
            self.check_dims(a, bt)
            factor = Decimal(k) if k else Decimal(1)
            return a, self.operand(a, bt), self.operand(bt, a, factor)
        if k:
            raise RuleError(f"'{k}x' needs a series to multiply, not a number")
        if a.kind in ("field", "ma", "avg", "bb_upper", "bb_lower", "hh", "ll") and b.endswith("%"):
            raise RuleError(f"'{b}' is a percentage: say of what, such as '5% below the 20-day SMA'")
        return a, self.operand(a), self.value(b, a)


def _pct(raw: str) -> Decimal:
    p = Decimal(raw)
    if p <= 0 or p >= 100:
        raise RuleError(f"{raw}% must be between 0% and 100%")
    return p / 100



def _cross_or_breakout(m: Matcher, a: Tok, a_op: Operand, direction: str, b_op: Operand, b: Tok | None) -> Condition:
    if b is not None and b.kind in ("hh", "ll"):
        # A breakout of the previous N bars' range: the level excludes bar t.
        if (b.kind == "hh") != (direction == "above"):
            raise RuleError(f"'{b.text}' is broken {'above' if b.kind == 'hh' else 'below'}, not {direction}")
        return Compare(a_op, ">" if direction == "above" else "<", b_op)
    return Cross(a_op, direction, b_op)


def build_cross(m: Matcher, g: dict) -> Condition:
    verb, direction = g["verb"], "above" if g["dir"] in ("above", "over", "past") else "below"
    if verb in lex.UP_VERBS and direction == "below":
        raise RuleError(f"'{verb} below' mixes directions; write 'crosses below' or 'falls below'")
    if verb in lex.DOWN_VERBS and direction == "above":
        raise RuleError(f"'{verb} above' mixes directions; write 'crosses above' or 'rises above'")
    a, a_op, b_op = m.pair(g.get("a"), g["b"], g.get("k"))
    b = m.tok(g["b"]) if g["b"].startswith("#") else None
    return _cross_or_breakout(m, a, a_op, direction, b_op, b)


def build_no_direction(m: Matcher, g: dict) -> Condition:
    raise RuleError(f"'{g['verb']}' needs a direction: say 'crosses above' or 'crosses below'")


def build_between(m: Matcher, g: dict) -> Condition:
    a = m.level_subject(g.get("a"), g["lo"])
    low, high = sorted((m.value(g["lo"], a), m.value(g["hi"], a)), key=lambda v: v.const)
    op = m.operand(a)
    return Combined("all", (Compare(op, ">=", low), Compare(op, "<=", high)))


def build_state(m: Matcher, g: dict) -> Condition:
    op = lex.CMP[g["cmp"]]
    a, a_op, b_op = m.pair(g.get("a"), g["b"], g.get("k"))
    return Compare(a_op, op, b_op)


def _pct_side(m: Matcher, g: dict, direction: str) -> Condition:
    a, bt = m.tok(g.get("a")), m.tok(g["b"])
    m.check_dims(a, bt)
    if a.dimension not in (PRICE, VOLUME):
        raise RuleError(f"a percentage distance needs prices or volumes, not {a.text}")
    p = _pct(g["pct"])
    if direction == "below":
        return Compare(m.operand(a, bt), "<=", m.operand(bt, a, 1 - p))
    return Compare(m.operand(a, bt), ">=", m.operand(bt, a, 1 + p))


def build_pct_distance(m: Matcher, g: dict) -> Condition:
    return _pct_side(m, g, "above" if g["dir"] in ("above", "over", "higher than", "greater than") else "below")


def build_within_pct(m: Matcher, g: dict) -> Condition:
    """ "within 1% of the 52-week high": at most 1% below a high, above a low, or on either side of a line."""
    a, bt = m.tok(g.get("a")), m.tok(g["b"])
    m.check_dims(a, bt)
    if a.dimension not in (PRICE, VOLUME):
        raise RuleError(f"a percentage distance needs prices or volumes, not {a.text}")
    p = _pct(g["pct"])
    left, low, high = m.operand(a, bt), m.operand(bt, a, 1 - p), m.operand(bt, a, 1 + p)
    if bt.kind in ("yh", "hh"):
        return Compare(left, ">=", low)
    if bt.kind in ("yl", "ll"):
        return Compare(left, "<=", high)
    return Combined("all", (Compare(left, ">=", low), Compare(left, "<=", high)))


def build_gap(m: Matcher, g: dict) -> Condition:
    """ "gaps up 2%": the open is at least 2% above the previous close."""
    a = m.tok(g.get("a"))
    if not (a.kind == "field" and a.source == "close" and not a.lag):
        raise RuleError(f"only the price gaps, not {a.text}")
    p = _pct(g["pct"])
    up = g["dir"] == "up"
    previous = Operand.of(ind.lagged("close", 1), 1 + p if up else 1 - p)
    return Compare(Operand.of(ind.field("open")), ">=" if up else "<=", previous)


def _move_direction(word: str, prep: str | None) -> str:
    down = word in lex.DOWN_MOVE or word in lex.DOWN_NOUN
    direction = "below" if down else "above"
    if prep in ("below", "under", "beneath") and not down:
        raise RuleError(f"'{word} ... {prep}' mixes directions")
    if prep in ("above", "over") and down:
        raise RuleError(f"'{word} ... {prep}' mixes directions")
    return direction


def build_pct_move_from(m: Matcher, g: dict) -> Condition:
    return _pct_side(m, g, _move_direction(g["verb"], g.get("prep")))


def build_roc_move(m: Matcher, g: dict) -> Condition:
    a = m.tok(g.get("a"))
    if a.kind != "field":
        raise RuleError(f"a move over N bars applies to a price or the volume, not to {a.text}")
    unit_bars(g.get("unit"), m.ctx, f"{g['n']} {g.get('unit') or ''}".strip())
    n = check_window(g["n"], g["n"])
    p = _pct(g["pct"])
    direction = _move_direction(g["verb"], None)
    past = Operand.of(ind.lagged(a.source, n), 1 - p if direction == "below" else 1 + p)
    return Compare(m.operand(a), "<=" if direction == "below" else ">=", past)


def build_multiple(m: Matcher, g: dict) -> Condition:
    a, bt = m.tok(g.get("a")), m.tok(g["b"])
    m.check_dims(a, bt)
    k = Decimal(g["k"])
    if k <= 0:
        raise RuleError("the multiple must be positive")
    return Compare(m.operand(a, bt), ">=", m.operand(bt, a, k))


def build_crossover(m: Matcher, g: dict) -> Condition:
    bias = g.get("bias") or g.get("bias2")
    dirword = g.get("dir")
    if dirword:
        direction = "above" if dirword in ("up", "above") else "below"
    elif bias:
        direction = "above" if bias == "bullish" else "below"
    elif m.ctx.side == "exit":
        raise RuleError("'crossover' in an exit rule is ambiguous: say 'crosses below' (or 'bearish crossover')")
    else:
        direction = "above"
    a = m.tok(g["a"])
    if g.get("b"):
        b = m.tok(g["b"])
        if a.kind == b.kind == "ma" and b.window < a.window:
            a, b = b, a  # the faster average crosses the slower one
        m.check_dims(a, b)
        return Cross(m.operand(a, b), direction, m.operand(b, a))
    if a.kind in ("macd_line", "macd_signal"):
        return Cross(Operand.of(ind.macd_line(*a.params)), direction, Operand.of(ind.macd_signal(*a.params)))
    if a.kind in ("ma", "avg", "bb_upper", "bb_lower"):
        price = Tok("field", source=a.source if a.source == "volume" else "close", text="price")
        return Cross(m.operand(price), direction, m.operand(a, price))
    raise RuleError(f"a crossover of '{a.text}' needs a second series, such as 'crosses above the signal line'")


def build_named_cross(m: Matcher, g: dict) -> Condition:
    direction = "above" if g["name"] == "golden" else "below"
    m.ctx.warnings.append(f"'{g['name']} cross' read as the 50-day SMA crossing {direction} the 200-day SMA")
    return Cross(Operand.of(ind.sma(50)), direction, Operand.of(ind.sma(200)))


def build_zone(m: Matcher, g: dict) -> Condition:
    a = m.tok(g["a"])
    if a.kind != "rsi":
        raise RuleError(f"'{g['zone']}' is defined for RSI only")
    level = 30 if g["zone"] == "oversold" else 70
    m.ctx.warnings.append(f"'{g['zone']}' read as RSI {'<' if level == 30 else '>'} {level}")
    return Compare(m.operand(a), "<" if level == 30 else ">", Operand.constant(level))


def build_sign(m: Matcher, g: dict) -> Condition:
    a = m.tok(g["a"])
    if a.kind not in ("macd_line", "macd_hist", "roc"):
        raise RuleError(f"'{g['sign']}' applies to the MACD line, the MACD histogram or a rate of change, not to {a.text}")
    zero = Operand.constant(0)
    up = g["sign"] == "positive"
    if g.get("turn"):
        return Cross(m.operand(a), "above" if up else "below", zero)
    return Compare(m.operand(a), ">" if up else "<", zero)


def build_touch(m: Matcher, g: dict) -> Condition:
    a, b = m.tok(g.get("a")), m.tok(g["b"])
    if a.kind == "field" and a.source in ("low", "high") and not a.lag and b.dimension == PRICE:
        # "the low touches the 50-day MA": the low reaches down to it (the high up to it)
        return Compare(m.operand(a), "<=" if a.source == "low" else ">=", m.operand(b))
    if not (a.kind == "field" and a.source == "close"):
        raise RuleError("only the price can touch a level")
    if b.dimension != PRICE:
        raise RuleError(f"the price cannot touch {b.text}")
    low, high = Operand.of(ind.field("low")), Operand.of(ind.field("high"))
    level = m.operand(b)
    if b.kind in ("bb_lower", "ll"):
        return Compare(low, "<=", level)
    if b.kind in ("bb_upper", "hh"):
        return Compare(high, ">=", level)
    return Combined("all", (Compare(low, "<=", level), Compare(high, ">=", level)))


def build_outside(m: Matcher, g: dict) -> Condition:
    a, b = m.tok(g.get("a")), m.tok(g["b"])
    if not (a.kind == "field" and a.source == "close"):
        raise RuleError("only the close can be outside the Bollinger Bands")
    close = m.operand(a)
    if b.kind == "bb_upper":
        return Compare(close, ">", m.operand(b))
    if b.kind == "bb_lower":
        return Compare(close, "<", m.operand(b))
    if b.kind == "bb_both":
        window, k = b.params
        upper, lower = ind.bb_band("upper", window, k), ind.bb_band("lower", window, k)
        return Combined("any", (Compare(close, ">", Operand.of(upper)), Compare(close, "<", Operand.of(lower))))
    raise RuleError(f"'outside' applies to Bollinger Bands, not to {b.text}")


def build_new_extreme(m: Matcher, g: dict) -> Condition:
    a, b = m.tok(g.get("a")), m.tok(g["b"])
    if b.kind in ("yh", "yl"):
        # the 52-week high includes bar t: a new one is above the previous bar's
        if a.kind != "field":
            raise RuleError("only a price can make a new high or low")
        return Compare(m.operand(a), ">" if b.kind == "yh" else "<", Operand.of(ind.shifted(series_of(b), 1)))
    if b.kind not in ("hh", "ll"):
        raise RuleError(f"'new {b.text}' needs an N-day high or low")
    if a.kind != "field":
        raise RuleError("only a price can make a new high or low")
    return Compare(m.operand(a), ">" if b.kind == "hh" else "<", m.operand(b))


def build_breakout_noun(m: Matcher, g: dict) -> Condition:
    b = m.tok(g["b"])
    if b.kind not in ("hh", "ll"):
        raise RuleError(f"a breakout needs an N-day high or low, not {b.text}")
    word = g["word"]
    if (word == "breakdown") != (b.kind == "ll"):
        raise RuleError(f"'{b.text} {word}' mixes directions")
    close = Operand.of(ind.field("close"))
    return Compare(close, ">" if b.kind == "hh" else "<", m.operand(b))


