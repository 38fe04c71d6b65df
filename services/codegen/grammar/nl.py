"""Natural-language rules -> condition IR.

Three steps, each exact:

1. normalise the text (case, operators, "percent" -> "%", "twice" -> "2x")
   and strip the action ("Enter on", "Buy when", "Sell if"), checking that
   it agrees with the node (an entry node may not say "sell");
2. replace every indicator mention ("20-day moving average", "MA(20)",
   "RSI", "the lower Bollinger Band") by a placeholder ``#k`` bound to a
   typed token;
3. match the remaining sentence, as a whole, against the rule forms. Any
   word left over means the rule is not understood: it is rejected with the
   closest supported phrasing, never half-applied.

The grammar is documented in docs/strategy-schema.md.
"""
from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

from services.codegen.grammar import indicators as ind
from services.codegen.grammar.errors import RuleError
from services.codegen.grammar.examples import closest_n
from services.codegen.grammar import lexicon as lex
from services.codegen.grammar.lexicon import (
    ABOVE, BELOW, CMP, DOWN_MOVE, DOWN_NOUN, DOWN_VERBS, MA_NAMES, NEUTRAL_VERBS, NUM, STATE_VERBS, UNIT, UP_MOVE, UP_NOUN,
    UP_VERBS,
)
from services.codegen.grammar.ir import Within, Combined, Compare, Condition, Cross, Operand, Persist, Series, combine

MA = "(?P<ma>" + "|".join(re.escape(k) for k in MA_NAMES) + ")s?"
SRC = r"(?:\s+of\s+(?:the\s+)?(?P<src>closing prices?|close prices?|closes|close|prices?|volume|highs?|lows?|opens?))?"
BB = r"(?:bollinger\s+bands?|bollinger|bbands?|bb)"
BB_PARAMS = r"(?:\s*\(\s*(?P<bn>\d+)\s*,?\s*(?P<bk>" + NUM + r")\s*\))?"
LOOKBACK = r"(?:the\s+)?(?:last\s+|past\s+|previous\s+|prior\s+)?"

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


# ---------------------------------------------------------------- step 1


ENTRY_ACTION = re.compile(
    r"^(?:enter|buy|go|open|take|initiate|start)(?:\s+(?:a|the|new))?(?:\s+long)?(?:\s+(?:position|trade))?"
    r"(?:\s+(?:on|when(?:ever)?|if|once|after|at|as\s+soon\s+as|upon))?\b\s*"
)
EXIT_ACTION = re.compile(
    r"^(?:exit|sell|get\s+out|close\s+(?:the\s+|a\s+)?(?:position|trade|long)|take\s+profits?|stop\s+out|flatten)"
    r"(?:\s+(?:the|a))?(?:\s+(?:position|trade|long))?"
    r"(?:\s+(?:on|when(?:ever)?|if|once|after|at|as\s+soon\s+as|upon))?\b\s*"
)
_WHEN = r"(?:\s+(?:on|when(?:ever)?|if|once|after|at|as\s+soon\s+as|upon))?\b\s*"
SHORT_ENTRY_ACTION = re.compile(
    r"^(?:sell\s+short|short\s+sell|short|go\s+short|open\s+(?:a\s+)?short|enter\s+(?:a\s+)?short)"
    r"(?:\s+(?:position|trade))?" + _WHEN
)
COVER_ACTION = re.compile(
    r"^(?:cover(?:\s+the\s+short)?|buy\s+to\s+cover|buy\s+back|close\s+(?:the\s+|a\s+)?short|exit\s+(?:the\s+|a\s+)?short)"
    r"(?:\s+(?:position|trade))?" + _WHEN
)
FILTER_ACTION = re.compile(
    r"^(?:(?:trade\s+|enter\s+|buy\s+)?only\s+(?:trade\s+|enter\s+|buy\s+)?(?:when|if|while)|when|if|while|whenever|as\s+long\s+as|provided)\b\s*"
)
PLAIN_LEAD = re.compile(r"^(?:when(?:ever)?|if|once|on|upon|as\s+soon\s+as)\b\s*")


def _basic(text: str) -> str:
    t = text.lower().strip()
    t = t.replace("\u2013", "-").replace("\u2014", "-").replace("\u2019", "'").replace("\u2265", ">=").replace("\u2264", "<=")
    t = re.sub(r"[.!;:]+$", "", t).strip()
    t = re.sub(r",", " ", t)
    t = re.sub(r">=|=>", " at-or-above ", t)
    t = re.sub(r"<=|=<", " at-or-below ", t)
    t = re.sub(r"(" + NUM + r")\s*\*\s*", r"\1x ", t)
    t = t.replace(">", " above ")
    t = re.sub(r"<", " below ", t)
    t = re.sub(r"(" + NUM + r")\s*(?:%|percent\b|per\s+cent\b|pct\b)", r"\1%", t)
    t = _number_words(t)
    t = re.sub(r"\bzero\b", "0", t)
    t = re.sub(r"\b(?:twice|double)\b", "2x", t)
    t = re.sub(r"\bthree times\b", "3x", t)
    t = re.sub(r"(" + NUM + r")\s*(?:x|times)\b", r"\1x", t)
    t = re.sub(r"\s+", " ", t).strip()
    t = re.sub(r"\bbetween (" + NUM + r"%?) and (" + NUM + r"%?)", r"between \1 to \2", t)
    # Two-word comparisons become one word, so that " or " / " and " only ever join rules.
    t = re.sub(r"\b(at|above|below) or (above|below|at)\b", r"\1-or-\2", t)
    t = _phrases(t)
    t = re.sub(r"\b(greater|less) than or equal to\b", lambda m: "at-or-above" if m.group(1) == "greater" else "at-or-below", t)
    return t


def _number_words(t: str) -> str:
    """ "fifty-day" -> "50-day", "two hundred" -> "200", "three days" -> "3 days"."""
    words = "|".join(list(lex.NUMBER_WORDS) + list(lex.NUMBER_SCALES))

    def value(m: re.Match) -> str:
        total, current = 0, 0
        for w in re.split(r"[\s-]+", m.group(0)):
            if w in lex.NUMBER_WORDS:
                current += lex.NUMBER_WORDS[w]
            elif w == "hundred":
                current = max(current, 1) * 100
            elif w == "thousand":
                total, current = total + max(current, 1) * 1000, 0
        return str(total + current)

    return re.sub(r"\b(?:" + words + r")(?:[\s-]+(?:" + words + r"))*\b", value, t)


PHRASES = [
    # Rewrites of whole phrasings to the form the rules read; each is one line and one meaning.
    (r"\btoday's\s+", ""),
    (r"\b(?:the\s+)?(?:stock|shares|security)\b", "price"),
    (r"\b(?:fast|slow|faster|slower)\s+(?=(?:ma|sma|ema|wma|moving average)\b)", ""),
    (r"\bvolume spike of\b", "volume"),
    (r"(?<!within )\b(" + NUM + r")% of\b", lambda m: f"{num_text(Decimal(m.group(1)) / 100)}x of"),
    (r"\b(upper|lower|middle) band of (?:the )?(\d+)[\s-]*(?:day|bar|period|session)s? bollinger bands?\b", r"\2-bar \1 bollinger band"),
    (r"\b(upper|lower|middle) band of (?:the )?bollinger bands?\b", r"\1 bollinger band"),
    (r"\b(\d+)\s*/\s*(\d+)\s+golden\s+cross(?:over)?\b", r"bullish \1/\2 sma crossover"),
    (r"\b(\d+)\s*/\s*(\d+)\s+death\s+cross(?:over)?\b", r"bearish \1/\2 sma crossover"),
    (r"\b(cross(?:es|ed)?)\s+(.+?)\s+from\s+below$", r"crosses above \2"),
    (r"\b(cross(?:es|ed)?)\s+(.+?)\s+from\s+above$", r"crosses below \2"),
    (r"\b(?:dips|dipped|falls|fell|drops|dropped|goes|moves|slips) (?:under|below) (" + NUM + r") and (?:then )?"
     r"(?:goes|comes|moves|crosses|gets|climbs|rises) back (?:over|above) (?:it|that|that level|\1)$", r"crosses back above \1"),
    (r"\b(?:rises|rose|goes|moves|climbs|jumps) (?:over|above) (" + NUM + r") and (?:then )?"
     r"(?:goes|comes|moves|crosses|gets|falls|drops) back (?:under|below) (?:it|that|that level|\1)$", r"crosses back below \1"),
    # Consecutive bars: "three higher closes in a row", "4 consecutive up days".
    (r"\b(?:there (?:are|were|have been) )?(\d+) (?:consecutive |straight |successive )?(?:higher|up) (?:closes|days|bars|sessions|candles)(?: in a row)?",
     r"close above previous close for \1 bars"),
    (r"\b(?:there (?:are|were|have been) )?(\d+) (?:consecutive |straight |successive )?(?:lower|down) (?:closes|days|bars|sessions|candles)(?: in a row)?",
     r"close below previous close for \1 bars"),
]
PHRASE_RES = [(re.compile(pattern), repl) for pattern, repl in PHRASES]


def _phrases(t: str) -> str:
    for pattern, repl in PHRASE_RES:
        t = pattern.sub(repl, t)
    return t


def num_text(value: Decimal) -> str:
    from services.codegen.grammar.ir import num

    return num(value)


# "the 50 crosses above the 200": bare windows are simple moving averages of the close.
SHORTHAND_MA = re.compile(
    r"(^|\b(?:and|or) )(?:the )?(\d+)(?:[\s-]*(?:day|bar|period|session)s?)? (cross(?:es|ed)?(?: over| above| under| below)?) "
    r"(?:the )?(\d+)(?:[\s-]*(?:day|bar|period|session)s?)?(?=$| and | or )"
)


def _shorthand(t: str) -> str:
    return SHORTHAND_MA.sub(r"\1the \2-bar sma \3 the \4-bar sma", t)


def _strip_action(t: str, ctx: Context) -> str:
    short_in, cover = SHORT_ENTRY_ACTION.match(t), COVER_ACTION.match(t)
    if short_in and short_in.end() > 0:
        if ctx.side == "exit":
            raise RuleError(f"it says to sell short ('{short_in.group(0).strip()}') but the node is an exit_condition")
        ctx.position = "short"
        return t[short_in.end():]
    if cover and cover.end() > 0:
        if ctx.side != "exit":
            raise RuleError(f"it says to cover a short ('{cover.group(0).strip()}') but the node is an {ctx.side}"
                            + ("_condition" if ctx.side == "entry" else ""))
        ctx.position = "short"
        return t[cover.end():]
    entry, exit_ = ENTRY_ACTION.match(t), EXIT_ACTION.match(t)
    if ctx.side == "entry":
        if exit_ and exit_.end() > 0 and not entry:
            raise RuleError(f"it says to exit ('{exit_.group(0).strip()}') but the node is an entry_condition")
        if entry and entry.end() > 0:
            return t[entry.end():]
    elif ctx.side == "exit":
        if entry and entry.end() > 0 and not exit_ and not t.startswith("close "):
            raise RuleError(f"it says to enter ('{entry.group(0).strip()}') but the node is an exit_condition")
        if exit_ and exit_.end() > 0:
            return t[exit_.end():]
    else:
        m = FILTER_ACTION.match(t)
        if m and m.end() > 0:
            return t[m.end():]
    m = PLAIN_LEAD.match(t)
    return t[m.end():] if m else t


# ---------------------------------------------------------------- step 2


def _unit_bars(unit: str | None, ctx: Context, text: str) -> None:
    """Windows count bars; a unit that contradicts the bar size is ambiguous."""
    if not unit:
        return
    unit = unit.lower()
    daily_unit = unit in ("day", "days", "d", "session", "sessions")
    weekly_unit = unit in ("week", "weeks", "w")
    fix = re.sub(r"(\d+)\s*-?\s*(?:days?|d|sessions?|weeks?|w)\b", r"\1-bar", ctx.rule, flags=re.IGNORECASE)
    if daily_unit and ctx.timeframe == "1w":
        raise RuleError(f"'{text}' counts days but the bars are weekly; count bars (weeks) instead", fix)
    if weekly_unit and ctx.timeframe != "1w":
        raise RuleError(f"'{text}' counts weeks but the bars are daily; count bars (days) instead", fix)


def _window(value: str, text: str) -> int:
    n = int(value)
    if n < 1 or n > 5000:
        raise RuleError(f"'{text}' has a window of {n} bars; windows must be between 1 and 5000")
    return n


def _source(raw: str | None) -> tuple[str, bool]:
    if not raw:
        return "close", False
    raw = raw.rstrip("s") if raw.endswith(("highs", "lows", "opens")) else raw
    if raw.startswith(("clos", "price")):
        return "close", True
    return raw, True


class Tokens:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.items: list[Tok] = []

    def add(self, tok: Tok) -> str:
        self.items.append(tok)
        return f" #t{len(self.items) - 1} "

    def sub(self, pattern: str, text: str, make) -> str:
        def repl(m: re.Match) -> str:
            tok = make(m)
            tok.text = m.group(0).strip()
            return self.add(tok)

        return re.sub(pattern, repl, text)


def _ma_tok(m: re.Match, ctx: Context, n_group: str = "n") -> Tok:
    gd = m.groupdict()
    _unit_bars(gd.get("unit"), ctx, m.group(0).strip())
    source, explicit = _source(gd.get("src"))
    return Tok("ma", _window(gd[n_group], m.group(0)), ma=MA_NAMES[gd["ma"]], source=source, explicit_source=explicit)


def _tokenize(t: str, ctx: Context) -> tuple[str, list[Tok]]:
    toks = Tokens(ctx)
    t = " " + t + " "
    # Custom indicators by name (defined by indicator nodes), before any built-in word.
    for name, series in ctx.custom.items():
        t = toks.sub(r"(?<![\w])" + re.escape(name) + r"(?![\w])", t, lambda m, s=series: Tok("custom", params=(s,)))

    # MACD: parameters anywhere in the rule apply to its line, signal and histogram.
    params = (12, 26, 9)
    pm = re.search(r"macd\s*\(\s*(\d+)\s*,?\s*(\d+)\s*,?\s*(\d+)\s*\)", t)
    if pm:
        params = tuple(int(x) for x in pm.groups())
        if not params[0] < params[1]:
            raise RuleError(f"MACD({params[0]}, {params[1]}, {params[2]}): the fast EMA must be shorter than the slow one")
        t = t[: pm.start()] + "macd" + t[pm.end():]
    t = toks.sub(r"\b(?:macd\s+)?(?:histogram|hist)\b", t, lambda m: Tok("macd_hist", params=params))
    t = toks.sub(r"\b(?:macd\s+)?signal(?:\s+line)?\b", t, lambda m: Tok("macd_signal", params=params))
    t = toks.sub(r"\bmacd(?:\s+line)?\b", t, lambda m: Tok("macd_line", params=params))

    # Bollinger Bands.
    def bb(side_group: str):
        def make(m: re.Match) -> Tok:
            gd = m.groupdict()
            side = {"top": "upper", "bottom": "lower"}.get(gd[side_group], gd[side_group]) if gd.get(side_group) else None
            window = _window(gd["bn"], m.group(0)) if gd.get("bn") else (_window(gd["pn"], m.group(0)) if gd.get("pn") else 20)
            if gd.get("unit"):
                _unit_bars(gd["unit"], ctx, m.group(0).strip())
            k = Decimal(gd["bk"]) if gd.get("bk") else Decimal(2)
            kind = {"upper": "bb_upper", "lower": "bb_lower", "middle": "ma", None: "bb_both"}[side]
            tok = Tok(kind, window, params=(window, k))
            return tok

        return make

    pre = r"(?:(?P<pn>\d+)\s*-?\s*(?:(?P<unit>" + UNIT + r")\s*-?\s*)?)?"
    t = toks.sub(r"\b" + pre + r"(?P<side>upper|lower|middle|top|bottom)\s+" + BB + BB_PARAMS + r"(?:\s+band)?(?!\w)", t, bb("side"))
    t = toks.sub(r"\b" + pre + BB + BB_PARAMS + r"\s+(?P<side>upper|lower|middle|top|bottom)(?:\s+band)?(?!\w)", t, bb("side"))
    t = toks.sub(r"\b" + pre + BB + BB_PARAMS + r"(?=\s|$)", t, bb("noside"))

    # RSI.
    def rsi(m: re.Match) -> Tok:
        gd = m.groupdict()
        if gd.get("unit"):
            _unit_bars(gd["unit"], ctx, m.group(0).strip())
        raw = gd.get("n") or gd.get("n2") or gd.get("n3")
        return Tok("rsi", _window(raw, m.group(0)) if raw else 14)

    t = toks.sub(
        r"\b(?:(?P<n>\d+)\s*-?\s*(?:(?P<unit>" + UNIT + r")\s*-?\s*)?)?(?:rsi|relative strength index)"
        r"(?:\s*\(\s*(?P<n2>\d+)\s*\)|\s*-?\s*(?P<n3>\d+)\b(?!\s*(?:%|\.\d|" + UNIT + r"\s+ago\b)))?",
        t, rsi,
    )

    # ATR.
    def atr(m: re.Match) -> Tok:
        gd = m.groupdict()
        if gd.get("unit"):
            _unit_bars(gd["unit"], ctx, m.group(0).strip())
        raw = gd.get("n") or gd.get("n2")
        return Tok("atr", _window(raw, m.group(0)) if raw else 14)

    t = toks.sub(
        r"\b(?:(?P<n>\d+)\s*-?\s*(?:(?P<unit>" + UNIT + r")\s*-?\s*)?)?(?:atr|average true range)(?:\s*\(\s*(?P<n2>\d+)\s*\))?",
        t, atr,
    )

    # Rate of change.
    def roc(m: re.Match) -> Tok:
        gd = m.groupdict()
        if gd.get("unit"):
            _unit_bars(gd["unit"], ctx, m.group(0).strip())
        return Tok("roc", _window(gd.get("n") or gd.get("n2"), m.group(0)))

    t = toks.sub(
        r"\b(?P<n>\d+)\s*-?\s*(?:(?P<unit>" + UNIT + r")\s*-?\s*)?(?:rate of change|roc|return|price change)\b", t, roc
    )
    t = toks.sub(r"\b(?:rate of change|roc)\s*\(\s*(?P<n2>\d+)\s*\)", t, roc)

    # 52-week highs and lows (a calendar window, bar t included).
    t = toks.sub(r"\b(?:" + lex.YEAR_EXTREME + r")\s+(?P<hl>high|low)s?\b", t,
                 lambda m: Tok("yh" if m.group("hl") == "high" else "yl"))
    # "the 50-day closing high", "the highest close of the past 30 days": extremes of any field.
    def extreme(m: re.Match) -> Tok:
        gd = m.groupdict()
        _unit_bars(gd.get("unit"), ctx, m.group(0).strip())
        source = "close" if gd["f"].startswith("clos") else gd["f"]
        return Tok("hh" if gd["ext"] in ("highest", "high") else "ll", _window(gd["n"], m.group(0)), source=source)

    t = toks.sub(r"\b(?P<n>\d+)\s*-?\s*(?P<unit>" + UNIT + r")\s+(?P<f>closing|volume)\s+(?P<ext>high|low)s?\b", t, extreme)
    t = toks.sub(
        r"\b(?P<ext>highest|lowest)\s+(?P<f>closing price|close|high|low|open|volume)s?\s+(?:of|in|over|during)\s+"
        + LOOKBACK + r"(?P<n>\d+)\s*(?P<unit>" + UNIT + r")?", t, extreme,
    )

    # N-bar highs and lows (breakout levels over the previous N bars).
    def channel(m: re.Match) -> Tok:
        gd = m.groupdict()
        _unit_bars(gd.get("unit"), ctx, m.group(0).strip())
        high = gd["hl"].startswith("high")
        return Tok("hh" if high else "ll", _window(gd["n"], m.group(0)), source="high" if high else "low")

    t = toks.sub(r"\b(?P<n>\d+)\s*-?\s*(?P<unit>" + UNIT + r")\s+(?:highest\s+)?(?:lowest\s+)?(?P<hl>highs?|lows?)\b", t, channel)
    t = toks.sub(
        r"\b(?P<hl>high|low)\s+of\s+" + LOOKBACK + r"(?P<n>\d+)\s*(?P<unit>" + UNIT + r")\b(?!\s+ago)", t, channel
    )

    # Volume averages.
    def volavg(m: re.Match) -> Tok:
        gd = m.groupdict()
        _unit_bars(gd.get("unit"), ctx, m.group(0).strip())
        return Tok("ma", _window(gd["n"], m.group(0)), ma="sma", source="volume")

    avg = r"(?:average|avg|mean|moving average|ma|sma)"
    t = toks.sub(r"\b(?P<n>\d+)\s*-?\s*(?:(?P<unit>" + UNIT + r")\s*-?\s*)?" + avg + r"\s+(?:of\s+)?(?:the\s+)?volume\b", t, volavg)
    t = toks.sub(r"\b(?P<n>\d+)\s*-?\s*(?:(?P<unit>" + UNIT + r")\s*-?\s*)?volume\s+" + avg + r"\b", t, volavg)
    t = toks.sub(r"\b(?:average|avg|mean)\s+volume\s+(?:of|over|for)\s+" + LOOKBACK + r"(?P<n>\d+)\s*(?P<unit>" + UNIT + r")?", t, volavg)
    t = toks.sub(r"\bvolume\s+(?:sma|ma|moving average)\s*\(?\s*(?P<n>\d+)\s*\)?", t, volavg)

    # Moving averages: "20/50 MA", "20-day moving average", "MA(20)", "moving average of 20 days", "SMA 20".
    def pair(m: re.Match) -> str:
        gd = m.groupdict()
        _unit_bars(gd.get("unit"), ctx, m.group(0).strip())
        kind = MA_NAMES[gd["ma"]]
        a = toks.add(Tok("ma", _window(gd["n"], m.group(0)), ma=kind, text=m.group(0).strip()))
        b = toks.add(Tok("ma", _window(gd["n2"], m.group(0)), ma=kind, text=m.group(0).strip()))
        return f"{a} / {b}"

    t = re.sub(r"\b(?P<n>\d+)\s*(?:/|and|&)\s*(?P<n2>\d+)(?:\s*-?\s*(?P<unit>" + UNIT + r"))?\s*-?\s*" + MA + r"\b", pair, t)
    t = toks.sub(r"\b" + MA + r"\s+(?:of|over)\s+" + LOOKBACK + r"(?P<n>\d+)\s*(?P<unit>" + UNIT + r")?\b" + SRC, t, lambda m: _ma_tok(m, ctx))
    t = toks.sub(r"\b(?P<n>\d+)\s*-?\s*(?:(?P<unit>" + UNIT + r")\s*-?\s*)?" + MA + r"\b" + SRC, t, lambda m: _ma_tok(m, ctx))
    t = toks.sub(r"\b" + MA + r"\s*\(\s*(?P<n>\d+)\s*\)" + SRC, t, lambda m: _ma_tok(m, ctx))
    t = toks.sub(
        r"\b" + MA + r"\s*-?\s*(?P<n>\d+)\b(?!\s*(?:%|x\b|\.\d))(?:\s*-?\s*(?P<unit>" + UNIT + r")\b)?" + SRC,
        t, lambda m: _ma_tok(m, ctx),
    )
    # "its 20-day average" (the source follows from the other side: price or volume).
    t = toks.sub(
        r"\b(?P<n>\d+)\s*-?\s*(?:(?P<unit>" + UNIT + r")\s*-?\s*)?(?:average|avg|mean)\b" + SRC,
        t, lambda m: _avg_tok(m, ctx),
    )
    leftover = re.search(r"\b(?:" + "|".join(re.escape(k) for k in MA_NAMES) + r"|average|avg|mean)s?\b", t)
    if leftover:
        raise RuleError(f"'{leftover.group(0)}' has no window; say which, such as '20-day {leftover.group(0)}' or '{leftover.group(0)}(20)'")

    # The previous bar's fields: "yesterday's high", "the previous close".
    t = toks.sub(r"\b(?:" + lex.PREVIOUS + r")\s+(?P<f>" + lex.FIELD_WORDS + r")\b", t,
                 lambda m: Tok("field", source="close" if m.group("f").startswith("clos") else m.group("f"), lag=1))
    t = toks.sub(r"\b(?P<f>" + lex.FIELD_WORDS + r")\s+(?:of\s+)?(?P<n>\d+)\s+(?P<unit>" + UNIT + r")\s+ago\b", t,
                 lambda m: _lag_field(m, ctx))
    t = toks.sub(r"\b(?:daily\s+|day's\s+|bar's\s+|intraday\s+|trading\s+)?range\b", t, lambda m: Tok("range"))
    # Price fields.
    t = toks.sub(r"\b(?:closing\s+prices?|close\s+prices?|share\s+price|prices?|close)\b(?!\s+of\b)", t, lambda m: Tok("field", source="close"))
    t = toks.sub(r"\b(?:trading\s+)?volume\b", t, lambda m: Tok("field", source="volume"))
    t = toks.sub(r"\b(?:daily\s+|bar's\s+|intraday\s+)?(?P<f>high|low|open)\b(?!\s+of\b)", t, lambda m: Tok("field", source=m.group("f")))
    t = _lags_and_owners(t, toks.items, ctx)
    return re.sub(r"\s+", " ", t).strip(), toks.items


def _lag_field(m: re.Match, ctx: Context) -> Tok:
    _unit_bars(m.group("unit"), ctx, m.group(0).strip())
    source = "close" if m.group("f").startswith("clos") else m.group("f")
    return Tok("field", source=source, lag=_window(m.group("n"), m.group(0)))


def _lags_and_owners(t: str, items: list[Tok], ctx: Context) -> str:
    """ "#t0 3 bars ago" -> #t0 with lag 3; "its #t1" marks #t1 as the other side's own average."""
    def lag(m: re.Match) -> str:
        _unit_bars(m.group("unit"), ctx, m.group(0).strip())
        items[int(m.group("k"))].lag = _window(m.group("n"), m.group(0))
        return f"#t{m.group('k')}"

    t = re.sub(r"#t(?P<k>\d+)\s+(?:of\s+)?(?P<n>\d+)\s+(?P<unit>" + UNIT + r")\s+ago\b", lag, t)
    for m in re.finditer(r"\bits\s+#t(\d+)", t):
        items[int(m.group(1))].own = True
    return t


def _avg_tok(m: re.Match, ctx: Context) -> Tok:
    tok = _ma_tok_from(m, ctx)
    tok.kind = "avg"
    return tok


def _ma_tok_from(m: re.Match, ctx: Context) -> Tok:
    gd = m.groupdict()
    _unit_bars(gd.get("unit"), ctx, m.group(0).strip())
    source, explicit = _source(gd.get("src"))
    return Tok("ma", _window(gd["n"], m.group(0)), ma="sma", source=source, explicit_source=explicit)


FILLER = re.compile(
    r"\b(?:the|a|an|its|their|it|is|are|was|has|have|been|currently|level|value|reading|line|price's|bar's)\b"
)
_RUN = r"(?P<n>\d+)\s+(?:consecutive\s+|straight\s+|successive\s+)?(?P<unit>" + UNIT + r")"
PERSIST_FORMS = (
    re.compile(r"\s+for\s+(?:at\s+least\s+)?(?:the\s+last\s+)?" + _RUN + r"(?:\s+in\s+(?:a\s+)?row)?$"),
    re.compile(r"\s+" + _RUN + r"\s+in\s+(?:a\s+)?row$"),
)
AT_CLOSE_SUFFIX = re.compile(r"\s+(?:at|on)\s+(?:the\s+)?(?:bar\s+|daily\s+|a\s+)?(?:close|closing\s+basis)$")


# ---------------------------------------------------------------- step 3


def _series(tok: Tok, other: Tok | None = None) -> Series:
    """The series of a token, ``lag`` bars earlier when it has one."""
    base = _base_series(tok)
    return ind.shifted(base, tok.lag) if tok.lag else base


def _base_series(tok: Tok) -> Series:
    if tok.kind == "custom":
        return tok.params[0]
    if tok.of is not None:
        return ind.average_of(tok.ma, tok.window, _series(tok.of))
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
        return Operand.of(_series(tok, other), factor)

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


P = r"#t\d+"
B = r"(?:(?P<k>" + NUM + r")x (?:of |above |over )?)?(?P<b>" + P + "|" + NUM + r"%?)"
CMP_RE = "|".join(sorted((re.escape(k) for k in CMP), key=len, reverse=True))
class Rule:
    """The parsed form: a regular expression and the builder of its condition."""

    def __init__(self, pattern: str, build):
        self.pattern = re.compile("^" + pattern + "$")
        self.build = build


def _cross_or_breakout(m: Matcher, a: Tok, a_op: Operand, direction: str, b_op: Operand, b: Tok | None) -> Condition:
    if b is not None and b.kind in ("hh", "ll"):
        # A breakout of the previous N bars' range: the level excludes bar t.
        if (b.kind == "hh") != (direction == "above"):
            raise RuleError(f"'{b.text}' is broken {'above' if b.kind == 'hh' else 'below'}, not {direction}")
        return Compare(a_op, ">" if direction == "above" else "<", b_op)
    return Cross(a_op, direction, b_op)


def _build_cross(m: Matcher, g: dict) -> Condition:
    verb, direction = g["verb"], "above" if g["dir"] in ("above", "over", "past") else "below"
    if re.fullmatch(UP_VERBS, verb) and direction == "below":
        raise RuleError(f"'{verb} below' mixes directions; write 'crosses below' or 'falls below'")
    if re.fullmatch(DOWN_VERBS, verb) and direction == "above":
        raise RuleError(f"'{verb} above' mixes directions; write 'crosses above' or 'rises above'")
    a, a_op, b_op = m.pair(g.get("a"), g["b"], g.get("k"))
    b = m.tok(g["b"]) if g["b"].startswith("#") else None
    return _cross_or_breakout(m, a, a_op, direction, b_op, b)


def _build_no_direction(m: Matcher, g: dict) -> Condition:
    raise RuleError(f"'{g['verb']}' needs a direction: say 'crosses above' or 'crosses below'")


def _build_between(m: Matcher, g: dict) -> Condition:
    a = m.level_subject(g.get("a"), g["lo"])
    low, high = sorted((m.value(g["lo"], a), m.value(g["hi"], a)), key=lambda v: v.const)
    op = m.operand(a)
    return Combined("all", (Compare(op, ">=", low), Compare(op, "<=", high)))


def _build_state(m: Matcher, g: dict) -> Condition:
    op = CMP[g["cmp"]]
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


def _build_pct_distance(m: Matcher, g: dict) -> Condition:
    return _pct_side(m, g, "above" if g["dir"] in ("above", "over", "higher than", "greater than") else "below")


def _build_within_pct(m: Matcher, g: dict) -> Condition:
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


def _build_gap(m: Matcher, g: dict) -> Condition:
    """ "gaps up 2%": the open is at least 2% above the previous close."""
    a = m.tok(g.get("a"))
    if not (a.kind == "field" and a.source == "close" and not a.lag):
        raise RuleError(f"only the price gaps, not {a.text}")
    p = _pct(g["pct"])
    up = g["dir"] == "up"
    previous = Operand.of(ind.lagged("close", 1), 1 + p if up else 1 - p)
    return Compare(Operand.of(ind.field("open")), ">=" if up else "<=", previous)


def _move_direction(word: str, prep: str | None) -> str:
    down = bool(re.fullmatch(DOWN_MOVE + "|" + DOWN_NOUN, word))
    direction = "below" if down else "above"
    if prep in ("below", "under", "beneath") and not down:
        raise RuleError(f"'{word} ... {prep}' mixes directions")
    if prep in ("above", "over") and down:
        raise RuleError(f"'{word} ... {prep}' mixes directions")
    return direction


def _build_pct_move_from(m: Matcher, g: dict) -> Condition:
    return _pct_side(m, g, _move_direction(g["verb"], g.get("prep")))


def _build_roc_move(m: Matcher, g: dict) -> Condition:
    a = m.tok(g.get("a"))
    if a.kind != "field":
        raise RuleError(f"a move over N bars applies to a price or the volume, not to {a.text}")
    _unit_bars(g.get("unit"), m.ctx, f"{g['n']} {g.get('unit') or ''}".strip())
    n = _window(g["n"], g["n"])
    p = _pct(g["pct"])
    direction = _move_direction(g["verb"], None)
    past = Operand.of(ind.lagged(a.source, n), 1 - p if direction == "below" else 1 + p)
    return Compare(m.operand(a), "<=" if direction == "below" else ">=", past)


def _build_multiple(m: Matcher, g: dict) -> Condition:
    a, bt = m.tok(g.get("a")), m.tok(g["b"])
    m.check_dims(a, bt)
    k = Decimal(g["k"])
    if k <= 0:
        raise RuleError("the multiple must be positive")
    return Compare(m.operand(a, bt), ">=", m.operand(bt, a, k))


def _build_crossover(m: Matcher, g: dict) -> Condition:
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


def _build_named_cross(m: Matcher, g: dict) -> Condition:
    direction = "above" if g["name"] == "golden" else "below"
    m.ctx.warnings.append(f"'{g['name']} cross' read as the 50-day SMA crossing {direction} the 200-day SMA")
    return Cross(Operand.of(ind.sma(50)), direction, Operand.of(ind.sma(200)))


def _build_zone(m: Matcher, g: dict) -> Condition:
    a = m.tok(g["a"])
    if a.kind != "rsi":
        raise RuleError(f"'{g['zone']}' is defined for RSI only")
    level = 30 if g["zone"] == "oversold" else 70
    m.ctx.warnings.append(f"'{g['zone']}' read as RSI {'<' if level == 30 else '>'} {level}")
    return Compare(m.operand(a), "<" if level == 30 else ">", Operand.constant(level))


def _build_sign(m: Matcher, g: dict) -> Condition:
    a = m.tok(g["a"])
    if a.kind not in ("macd_line", "macd_hist", "roc"):
        raise RuleError(f"'{g['sign']}' applies to the MACD line, the MACD histogram or a rate of change, not to {a.text}")
    zero = Operand.constant(0)
    up = g["sign"] == "positive"
    if g.get("turn"):
        return Cross(m.operand(a), "above" if up else "below", zero)
    return Compare(m.operand(a), ">" if up else "<", zero)


def _build_touch(m: Matcher, g: dict) -> Condition:
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


def _build_outside(m: Matcher, g: dict) -> Condition:
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


def _build_new_extreme(m: Matcher, g: dict) -> Condition:
    a, b = m.tok(g.get("a")), m.tok(g["b"])
    if b.kind in ("yh", "yl"):
        # the 52-week high includes bar t: a new one is above the previous bar's
        if a.kind != "field":
            raise RuleError("only a price can make a new high or low")
        return Compare(m.operand(a), ">" if b.kind == "yh" else "<", Operand.of(ind.shifted(_series(b), 1)))
    if b.kind not in ("hh", "ll"):
        raise RuleError(f"'new {b.text}' needs an N-day high or low")
    if a.kind != "field":
        raise RuleError("only a price can make a new high or low")
    return Compare(m.operand(a), ">" if b.kind == "hh" else "<", m.operand(b))


def _build_breakout_noun(m: Matcher, g: dict) -> Condition:
    b = m.tok(g["b"])
    if b.kind not in ("hh", "ll"):
        raise RuleError(f"a breakout needs an N-day high or low, not {b.text}")
    word = g["word"]
    if (word == "breakdown") != (b.kind == "ll"):
        raise RuleError(f"'{b.text} {word}' mixes directions")
    close = Operand.of(ind.field("close"))
    return Compare(close, ">" if b.kind == "hh" else "<", m.operand(b))


A = r"(?:(?P<a>" + P + r") )?"
RULES = [
    Rule(r"(?:a )?(?P<name>golden|death) cross(?:over)?", _build_named_cross),
    Rule(r"(?P<a>" + P + r") (?:in |enters |enter |reaches |hits |is )?(?P<zone>oversold|overbought)(?: territory| zone| region| area)?", _build_zone),
    Rule(r"(?P<a>" + P + r") (?P<turn>turns |flips |becomes |goes |crosses |moves |turned |flipped )?(?:to )?(?P<sign>positive|negative)", _build_sign),
    Rule(
        r"(?:(?P<bias>bullish|bearish) )?(?P<a>" + P + r")(?: ?(?:/|and|over|vs\.?|versus) ?(?P<b>" + P + r"))? (?:(?P<bias2>bullish|bearish) )?"
        r"(?:crossover|cross over|cross|crossing)(?: (?P<dir>up|down|above|below))?",
        _build_crossover,
    ),
    Rule(r"(?:(?P<bias>bullish|bearish) )?(?:crossover|cross) (?:of )?(?P<a>" + P + r")(?: (?:and|over|above|with) (?P<b>" + P + r"))?", _build_crossover),
    Rule(A + r"(?:touches|touched|touch|tags|tag|hits|hit|reaches|reach|tests|test)(?: or (?:crosses|breaks|goes) (?:below|above|through))? (?P<b>" + P + ")", _build_touch),
    Rule(A + r"(?:(?:" + STATE_VERBS + r") )?(?:outside|beyond)(?: of)? (?P<b>" + P + ")", _build_outside),
    Rule(A + r"(?:(?:makes|made|hits|sets|reaches|prints|closes at|at) )?(?:a )?new (?P<b>" + P + ")", _build_new_extreme),
    Rule(r"(?P<b>" + P + r") (?P<word>breakout|break out|breakdown)", _build_breakout_noun),
    Rule(r"(?:new )?(?P<b>" + P + r")", _build_new_extreme),
    Rule(
        A + r"(?P<verb>" + NEUTRAL_VERBS + "|" + UP_VERBS + "|" + DOWN_VERBS + r")(?: back| out| decisively| clearly)? (?P<dir>" + ABOVE + "|" + BELOW + r") " + B,
        _build_cross,
    ),
    Rule(A + r"(?P<verb>crosses|crossed|cross|crossing|breaks|breaks through|crosses through) (?P<b>" + P + "|" + NUM + ")", _build_no_direction),
    Rule(A + r"(?:(?:" + STATE_VERBS + r") )?(?:at least |more than |over )?(?P<pct>" + NUM + r")% (?:or more )?(?P<dir>above|over|below|under|beneath|higher than|lower than|greater than|less than) (?P<b>" + P + ")", _build_pct_distance),
    Rule(A + r"(?:(?:" + STATE_VERBS + r") )?within (?P<pct>" + NUM + r")% of (?P<b>" + P + ")", _build_within_pct),
    Rule(A + r"(?:gaps|gap|gapped|gapping) (?P<dir>up|down)(?: by)? (?:at least |more than |over )?(?P<pct>" + NUM + r")%(?: or more)?", _build_gap),
    Rule(r"(?:(?P<a>" + P + r") )?gap (?P<dir>up|down) (?:of |by )?(?:at least |more than |over )?(?P<pct>" + NUM + r")%(?: or more)?", _build_gap),
    Rule(
        A + r"(?P<verb>" + DOWN_MOVE + "|" + UP_MOVE + r")(?: by)? (?:at least |more than |over )?(?P<pct>" + NUM + r")%(?: or more)? "
        r"(?P<prep>from|below|under|beneath|above|over|off|relative to|versus|vs) (?P<b>" + P + ")",
        _build_pct_move_from,
    ),
    Rule(
        r"(?:at least |more than )?(?P<pct>" + NUM + r")% (?:or more )?(?:(?P<a>" + P + r") )?(?P<verb>" + DOWN_NOUN + "|" + UP_NOUN + r")"
        r"(?: in (?P<a2>" + P + r"))? (?P<prep>from|below|under|above|over|off|relative to|versus|vs|to) (?P<b>" + P + ")",
        _build_pct_move_from,
    ),
    Rule(
        A + r"(?P<verb>" + DOWN_MOVE + "|" + UP_MOVE + r")(?: by)? (?:at least |more than |over )?(?P<pct>" + NUM + r")%(?: or more)? "
        r"(?:in|over|within|during|across|for) (?:last |past |previous |prior )?(?P<n>\d+) (?P<unit>" + UNIT + ")",
        _build_roc_move,
    ),
    Rule(
        r"(?:at least |more than )?(?P<pct>" + NUM + r")% (?:or more )?(?:(?P<a>" + P + r") )?(?P<verb>" + DOWN_NOUN + "|" + UP_NOUN + r")"
        r" (?:in|over|within|during|across) (?:last |past |previous |prior )?(?P<n>\d+) (?P<unit>" + UNIT + ")",
        _build_roc_move,
    ),
    Rule(A + r"(?:(?:" + STATE_VERBS + r") )?(?:at least |more than )?(?P<k>" + NUM + r")x (?:of |above |over |greater than )?(?P<b>" + P + ")", _build_multiple),
    Rule(A + r"(?:(?:" + STATE_VERBS + r") )?(?P<cmp>" + CMP_RE + r") " + B, _build_state),
    Rule(A + r"(?:(?:" + STATE_VERBS + r") )?between (?P<lo>" + NUM + r"%?) to (?P<hi>" + NUM + r"%?)", _build_between),
]


def _match(sentence: str, matcher: Matcher) -> Condition | None:
    for rule in RULES:
        found = rule.pattern.match(sentence)
        if found:
            groups = {k: v for k, v in found.groupdict().items() if v is not None}
            if "a2" in groups and "a" not in groups:
                groups["a"] = groups["a2"]
            return rule.build(matcher, groups)
    return None


# A rule's size budget, checked in one pass before any pattern runs: the patterns' cost grows faster than
# linearly with the length of a run of words or digits, so the budget is what bounds the time of a rule.
MAX_RULE_CHARS, MAX_RULE_WORDS, MAX_WORD_CHARS = 300, 60, 40


def _check_size(rule: str) -> None:
    if len(rule) > MAX_RULE_CHARS:
        raise RuleError(f"the rule is {len(rule)} characters; a rule has at most {MAX_RULE_CHARS} (split it into several rules)")
    words = rule.split()
    if len(words) > MAX_RULE_WORDS:
        raise RuleError(f"the rule has {len(words)} words; a rule has at most {MAX_RULE_WORDS} (split it into several rules)")
    longest = max(words, key=len, default="")
    if len(longest) > MAX_WORD_CHARS:
        raise RuleError(f"'{longest[:20]}...' is {len(longest)} characters long; no word of a rule is longer than {MAX_WORD_CHARS}")


def parse_rule(rule: str, side: str, timeframe: str = "1d") -> tuple[Condition, list[str]]:
    """The condition a rule means, and warnings about how it was read.

    Raises RuleError (with the closest supported phrasings) when the rule is
    not understood exactly.
    """
    parsed = parse_rule_in(rule, side, timeframe)
    return parsed.condition, parsed.warnings


def parse_rule_in(rule: str, side: str, timeframe: str = "1d", subject: Subject | None = None,
                  customs: dict[str, Series] | None = None, near_miss: bool = True) -> Parsed:
    """Like parse_rule, with the series a pronoun binds to (from the strategy's other rules) and the custom indicators."""
    ctx = Context(side=side, timeframe=timeframe, rule=rule, subject=subject, custom=dict(customs or {}))
    try:
        _check_size(rule)
        text = _basic(rule)
        if not text:
            raise RuleError("the rule is empty")
        text = _shorthand(_strip_action(text, ctx))
        text = AT_CLOSE_SUFFIX.sub("", text)
        sentence, toks = _tokenize(text, ctx)
        sentence = re.sub(r"\s+", " ", FILLER.sub(" ", sentence)).strip()
        matcher = Matcher(toks, ctx)
        persist = next((found for form in PERSIST_FORMS if (found := form.search(sentence))), None)
        if persist:
            sentence = sentence[: persist.start()].strip()
        condition = _clause(sentence, matcher)
        if condition is None:
            condition = _split(sentence, matcher)
        if condition is None:
            raise RuleError("it does not match any supported rule form")
        if persist:
            _unit_bars(persist.group("unit"), ctx, persist.group(0).strip())
            bars = _window(persist.group("n"), persist.group(0))
            if bars < 2:
                raise RuleError(f"'{persist.group(0).strip()}' needs at least 2 bars")
            condition = Persist(condition, bars)
    except RuleError as exc:
        near = [example for example in closest_n(rule, side, 3) if example != exc.suggestion]
        exc.suggestions = ([exc.suggestion] if exc.suggestion else []) + near[: 3 - bool(exc.suggestion)]
        exc.suggestion = exc.suggestions[0]
        exc.near_miss = _near_miss(rule, exc.suggestion, side) if near_miss else None
        raise
    level = ctx.level_subject
    found = None
    if level is not None:
        series = _series(level)
        found = Subject(level, series.label, series.key)
    return Parsed(condition, ctx.warnings, found, ctx.position)


NEAR_MISS = 0.65  # difflib ratio from which the closest phrasing is taken as what the rule meant


def _near_miss(rule: str, suggestion: str, side: str) -> dict | None:
    """The structured condition of the closest phrasing, when the rule is that close to it."""
    import difflib

    from services.codegen.grammar.structured import to_structured

    if difflib.SequenceMatcher(None, rule.lower().strip()[:100], suggestion.lower()).ratio() < NEAR_MISS:
        return None
    try:
        parsed = parse_rule_in(suggestion, side, near_miss=False)
    except RuleError:
        return None
    return to_structured(parsed.condition)


WITHIN = re.compile(
    r"\s+(?:at any time |at least once |once )?(?:within|in|during)\s+(?:last|past|previous|prior)\s+(?P<n>\d+)\s+(?P<unit>" + UNIT + r")$"
)


def _clause(sentence: str, matcher: Matcher) -> Condition | None:
    """One clause; "... within the last 5 bars" (when the clause does not read otherwise) is an event in a window."""
    found = _match(sentence, matcher)
    if found is not None:
        return found
    within = WITHIN.search(sentence)
    if within is None:
        return None
    part = _match(sentence[: within.start()].strip(), matcher)
    if part is None:
        return None
    _unit_bars(within.group("unit"), matcher.ctx, within.group(0).strip())
    bars = _window(within.group("n"), within.group(0))
    if bars < 2:
        raise RuleError(f"'{within.group(0).strip()}' needs at least 2 bars")
    return Within(part, bars)


def _split(sentence: str, matcher: Matcher) -> Condition | None:
    """"A and B" / "A or B": every part must be understood on its own."""
    has_and, has_or = " and " in sentence, " or " in sentence
    if has_and and has_or:
        raise RuleError("it mixes 'and' with 'or'; split it into separate rules and set meta.combine")
    if not (has_and or has_or):
        return None
    how, word = ("all", " and ") if has_and else ("any", " or ")
    parts = []
    subject = ""
    for piece in sentence.split(word):
        piece = piece.strip()
        lead = re.match(r"#t\d+", piece)
        if lead:
            subject = lead.group(0)
        elif subject:
            piece = f"{subject} {piece}"  # "RSI below 30 or above 70": the subject carries over
        found = _clause(piece, matcher)
        if found is None:
            raise RuleError(f"the part '{_untokenize(piece, matcher.toks)}' (as normalised) is not understood, so the rule is rejected as a whole")
        parts.append(found)
    return combine(how, parts)


def _untokenize(sentence: str, toks: list[Tok]) -> str:
    return re.sub(r"#t(\d+)", lambda m: toks[int(m.group(1))].text or "price", sentence)


__all__ = ["parse_rule", "parse_rule_in", "NeedsSubject", "Parsed", "Subject", "RuleError"]
