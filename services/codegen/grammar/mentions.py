"""Steps 1 and 2 of reading a rule, before the grammar (rules.lark) runs:

1. normalise the text (case, operators, "percent" -> "%", "twice" -> "2x",
   numbers in words) and strip the action ("Enter on", "Buy when", "Sell
   if"), checking that it agrees with the node (an entry node may not say
   "sell");
2. replace every indicator mention ("20-day moving average", "MA(20)",
   "RSI", "the lower Bollinger Band") by a placeholder ``#tk`` bound to a
   typed token (forms.Tok), and drop the filler words.

The words come from lexicon.py.
"""
from __future__ import annotations

import re
from decimal import Decimal

from services.codegen.grammar import lexicon as lex
from services.codegen.grammar.errors import RuleError
from services.codegen.grammar.forms import Context, Tok, source_of, unit_bars, check_window
from services.codegen.grammar.lexicon import MA_NAMES, NUM, UNIT

MA = "(?P<ma>" + "|".join(re.escape(k) for k in MA_NAMES) + ")s?"
SRC = r"(?:\s+of\s+(?:the\s+)?(?P<src>closing prices?|close prices?|closes|close|prices?|volume|highs?|lows?|opens?))?"
BB = r"(?:bollinger\s+bands?|bollinger|bbands?|bb)"
BB_PARAMS = r"(?:\s*\(\s*(?P<bn>\d+)\s*,?\s*(?P<bk>" + NUM + r")\s*\))?"
LOOKBACK = r"(?:the\s+)?(?:last\s+|past\s+|previous\s+|prior\s+)?"

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
    (r"\bat (any time|least once)\b", lambda m: "at-" + m.group(1).replace(" ", "-")),  # one word: "within" reads it
    (r"\bfor (?:the )?(last|past|previous|prior)\b", r"for-\1"),  # "rises 5% for the last 3 days": one word
    (r"(?<!for)(?<!least)(?<!last) (\d+ (?:consecutive |straight |successive )?" + UNIT + r" in (?:a )?row)$", r" for \1"),
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
    unit_bars(gd.get("unit"), ctx, m.group(0).strip())
    source, explicit = source_of(gd.get("src"))
    return Tok("ma", check_window(gd[n_group], m.group(0)), ma=MA_NAMES[gd["ma"]], source=source, explicit_source=explicit)


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
            window = check_window(gd["bn"], m.group(0)) if gd.get("bn") else (check_window(gd["pn"], m.group(0)) if gd.get("pn") else 20)
            if gd.get("unit"):
                unit_bars(gd["unit"], ctx, m.group(0).strip())
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
            unit_bars(gd["unit"], ctx, m.group(0).strip())
        raw = gd.get("n") or gd.get("n2") or gd.get("n3")
        return Tok("rsi", check_window(raw, m.group(0)) if raw else 14)

    t = toks.sub(
        r"\b(?:(?P<n>\d+)\s*-?\s*(?:(?P<unit>" + UNIT + r")\s*-?\s*)?)?(?:rsi|relative strength index)"
        r"(?:\s*\(\s*(?P<n2>\d+)\s*\)|\s*-?\s*(?P<n3>\d+)\b(?!\s*(?:%|\.\d|" + UNIT + r"\s+ago\b)))?",
        t, rsi,
    )

    # ATR.
    def atr(m: re.Match) -> Tok:
        gd = m.groupdict()
        if gd.get("unit"):
            unit_bars(gd["unit"], ctx, m.group(0).strip())
        raw = gd.get("n") or gd.get("n2")
        return Tok("atr", check_window(raw, m.group(0)) if raw else 14)

    t = toks.sub(
        r"\b(?:(?P<n>\d+)\s*-?\s*(?:(?P<unit>" + UNIT + r")\s*-?\s*)?)?(?:atr|average true range)(?:\s*\(\s*(?P<n2>\d+)\s*\))?",
        t, atr,
    )

    # Rate of change.
    def roc(m: re.Match) -> Tok:
        gd = m.groupdict()
        if gd.get("unit"):
            unit_bars(gd["unit"], ctx, m.group(0).strip())
        return Tok("roc", check_window(gd.get("n") or gd.get("n2"), m.group(0)))

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
        unit_bars(gd.get("unit"), ctx, m.group(0).strip())
        source = "close" if gd["f"].startswith("clos") else gd["f"]
        return Tok("hh" if gd["ext"] in ("highest", "high") else "ll", check_window(gd["n"], m.group(0)), source=source)

    t = toks.sub(r"\b(?P<n>\d+)\s*-?\s*(?P<unit>" + UNIT + r")\s+(?P<f>closing|volume)\s+(?P<ext>high|low)s?\b", t, extreme)
    t = toks.sub(
        r"\b(?P<ext>highest|lowest)\s+(?P<f>closing price|close|high|low|open|volume)s?\s+(?:of|in|over|during)\s+"
        + LOOKBACK + r"(?P<n>\d+)\s*(?P<unit>" + UNIT + r")?", t, extreme,
    )

    # N-bar highs and lows (breakout levels over the previous N bars).
    def channel(m: re.Match) -> Tok:
        gd = m.groupdict()
        unit_bars(gd.get("unit"), ctx, m.group(0).strip())
        high = gd["hl"].startswith("high")
        return Tok("hh" if high else "ll", check_window(gd["n"], m.group(0)), source="high" if high else "low")

    t = toks.sub(r"\b(?P<n>\d+)\s*-?\s*(?P<unit>" + UNIT + r")\s+(?:highest\s+)?(?:lowest\s+)?(?P<hl>highs?|lows?)\b", t, channel)
    t = toks.sub(
        r"\b(?P<hl>high|low)\s+of\s+" + LOOKBACK + r"(?P<n>\d+)\s*(?P<unit>" + UNIT + r")\b(?!\s+ago)", t, channel
    )

    # Volume averages.
    def volavg(m: re.Match) -> Tok:
        gd = m.groupdict()
        unit_bars(gd.get("unit"), ctx, m.group(0).strip())
        return Tok("ma", check_window(gd["n"], m.group(0)), ma="sma", source="volume")

    avg = r"(?:average|avg|mean|moving average|ma|sma)"
    t = toks.sub(r"\b(?P<n>\d+)\s*-?\s*(?:(?P<unit>" + UNIT + r")\s*-?\s*)?" + avg + r"\s+(?:of\s+)?(?:the\s+)?volume\b", t, volavg)
    t = toks.sub(r"\b(?P<n>\d+)\s*-?\s*(?:(?P<unit>" + UNIT + r")\s*-?\s*)?volume\s+" + avg + r"\b", t, volavg)
    t = toks.sub(r"\b(?:average|avg|mean)\s+volume\s+(?:of|over|for)\s+" + LOOKBACK + r"(?P<n>\d+)\s*(?P<unit>" + UNIT + r")?", t, volavg)
    t = toks.sub(r"\bvolume\s+(?:sma|ma|moving average)\s*\(?\s*(?P<n>\d+)\s*\)?", t, volavg)

    # Moving averages: "20/50 MA", "20-day moving average", "MA(20)", "moving average of 20 days", "SMA 20".
    def pair(m: re.Match) -> str:
        gd = m.groupdict()
        unit_bars(gd.get("unit"), ctx, m.group(0).strip())
        kind = MA_NAMES[gd["ma"]]
        a = toks.add(Tok("ma", check_window(gd["n"], m.group(0)), ma=kind, text=m.group(0).strip()))
        b = toks.add(Tok("ma", check_window(gd["n2"], m.group(0)), ma=kind, text=m.group(0).strip()))
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
    unit_bars(m.group("unit"), ctx, m.group(0).strip())
    source = "close" if m.group("f").startswith("clos") else m.group("f")
    return Tok("field", source=source, lag=check_window(m.group("n"), m.group(0)))


def _lags_and_owners(t: str, items: list[Tok], ctx: Context) -> str:
    """ "#t0 3 bars ago" -> #t0 with lag 3; "its #t1" marks #t1 as the other side's own average."""
    def lag(m: re.Match) -> str:
        unit_bars(m.group("unit"), ctx, m.group(0).strip())
        items[int(m.group("k"))].lag = check_window(m.group("n"), m.group(0))
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
    unit_bars(gd.get("unit"), ctx, m.group(0).strip())
    source, explicit = source_of(gd.get("src"))
    return Tok("ma", check_window(gd["n"], m.group(0)), ma="sma", source=source, explicit_source=explicit)


FILLER = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in lex.FILLER_WORDS) + r")\b")
AT_CLOSE_SUFFIX = re.compile(r"\s+(?:at|on)\s+(?:the\s+)?(?:bar\s+|daily\s+|a\s+)?(?:close|closing\s+basis)$")



def sentence(rule: str, ctx: Context) -> tuple[str, list[Tok]]:
    """Steps 1 and 2: the words the grammar reads (placeholders for the mentions) and the mentions' tokens."""
    text = _basic(rule)
    if not text:
        raise RuleError("the rule is empty")
    text = _shorthand(_strip_action(text, ctx))
    text = AT_CLOSE_SUFFIX.sub("", text)
    words, toks = _tokenize(text, ctx)
    return re.sub(r"\s+", " ", FILLER.sub(" ", words)).strip(), toks
