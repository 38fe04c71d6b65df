"""The rule language's words, in one table: indicator names and their
synonyms, units, comparison, crossing and movement words, number words.

Adding a synonym is one line here (plus a corpus line in
tests/codegen/test_codegen_phrasings.py). The grammar of the rule forms,
rules.lark, takes its word classes from these tables (rules.py generates
its rules such as ``verb: "rises" | "rose" | ...`` when it builds the
parser), and mentions.py builds its indicator patterns from the names and
units here.
"""
from __future__ import annotations

NUM = r"-?\d+(?:\.\d+)?"

# Bars are counted in these units; a unit that contradicts the bar size is rejected.
UNIT_WORDS = ("days", "day", "d", "periods", "period", "bars", "bar", "sessions", "session", "candles", "candle", "weeks",
              "week", "w")
UNIT = "(?:" + "|".join(UNIT_WORDS) + ")"
DAILY_UNITS = ("day", "days", "d", "session", "sessions")
WEEKLY_UNITS = ("week", "weeks", "w")

# Moving-average names -> kind.
MA_NAMES = {
    "exponentially weighted moving average": "ema",
    "exponential moving average": "ema",
    "linearly weighted moving average": "wma",
    "linear weighted moving average": "wma",
    "weighted moving average": "wma",
    "simple moving average": "sma",
    "moving average": "sma",
    "moving avg": "sma",
    "sma": "sma",
    "ema": "ema",
    "wma": "wma",
    "dma": "sma",
    "ma": "sma",
}

# Numbers written in words ("fifty-day", "three days in a row").
NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}
NUMBER_SCALES = {"hundred": 100, "thousand": 1000}

# Comparison words -> operator.
CMP = {
    "above": ">", "over": ">", "greater than": ">", "higher than": ">", "more than": ">", "exceeds": ">", "exceed": ">",
    "below": "<", "under": "<", "beneath": "<", "less than": "<", "lower than": "<", "underneath": "<",
    "at-or-above": ">=", "at least": ">=", "not below": ">=", "above-or-at": ">=",
    "at-or-below": "<=", "at most": "<=", "not above": "<=", "below-or-at": "<=",
}
# Crossing directions: "crosses above", "falls below", "breaks past".
ABOVE = ("above", "over", "past")
BELOW = ("below", "under", "beneath", "underneath")

# Verbs: a move up/down past a level is a crossing; a state verb is a comparison on the bar.
UP_VERBS = ("rises", "rose", "rise", "climbs", "climbed", "climb", "jumps", "jumped", "jump", "pushes", "pushed", "rallies",
            "rallied", "surges", "surged", "gains", "gained", "expands", "expanded", "expand")
DOWN_VERBS = ("falls", "fell", "fall", "drops", "dropped", "drop", "dips", "dipped", "dip", "sinks", "sank", "sink",
              "declines", "declined", "decline", "slips", "slipped", "slides", "slid", "plunges", "plunged", "tumbles",
              "tumbled", "contracts", "contracted", "contract")
NEUTRAL_VERBS = ("crosses", "crossed", "cross", "crossing", "breaks", "broke", "break", "breaking", "moves", "moved", "move",
                 "goes", "went", "go", "gets", "got", "passes", "passed")
STATE_VERBS = ("closes", "closed", "close", "trades", "trading", "stays", "remains", "holds", "sits", "settles", "ends",
               "finishes", "is", "prints")
# A move by a percentage: "drops 5% from", "is up 10% in 5 days".
DOWN_MOVE = ("down", "drops", "drop", "dropped", "falls", "fall", "fell", "fallen", "dips", "dip", "dipped", "declines",
             "decline", "declined", "sinks", "sink", "slides", "slid", "slips", "pulls back", "pulled back", "retraces",
             "is down", "trades down", "moves down", "loses", "lost", "plunges", "tumbles")
UP_MOVE = ("up", "rises", "rise", "rose", "risen", "climbs", "climb", "climbed", "jumps", "jump", "jumped", "gains", "gain",
           "gained", "is up", "trades up", "moves up", "rallies", "rallied", "surges", "surged", "advances", "extends",
           "stretches")
DOWN_NOUN = ("drop", "dip", "decline", "fall", "pullback", "pull back", "retracement", "discount", "move down", "selloff",
             "sell-off", "loss")
UP_NOUN = ("rise", "gain", "jump", "premium", "move up", "rally", "surge", "advance")

# "yesterday's high", "the previous close": the field one bar earlier.
PREVIOUS = r"yesterday's|previous day's|prior day's|previous bar's|prior bar's|previous session's|last bar's|previous|prior"
FIELD_WORDS = r"closing price|close|high|low|open|volume"
# "the 52-week high", "the one-year low".
YEAR_EXTREME = r"(?:52|fifty-two)[\s-]*weeks?|(?:1|one)[\s-]*years?|12[\s-]*months?|yearly|annual"

# Words that carry no meaning in a rule.
FILLER_WORDS = (
    "the", "a", "an", "its", "their", "it", "is", "are", "was", "has", "have", "been", "currently", "level", "value",
    "reading", "line", "price's", "bar's",
)
