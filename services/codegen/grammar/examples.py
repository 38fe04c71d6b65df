"""One example phrasing per supported rule form. They feed the "closest
supported phrasing" of an error, the documentation and the tests."""
from __future__ import annotations

import difflib

# (form, side, example). side: entry, exit or any.
EXAMPLES: list[tuple[str, str, str]] = [
    ("price vs moving average by a percentage", "entry", "Enter on a 5% price drop from the 20-day moving average"),
    ("price vs moving average by a percentage", "entry", "Buy when the close is 5% below the 20-day SMA"),
    ("price vs moving average by a percentage", "exit", "Exit when price rises 10% above the 50-day EMA"),
    ("price vs moving average", "entry", "Buy when price closes above the 200-day moving average"),
    ("price vs moving average", "exit", "Sell when the close is below the 20-day EMA"),
    ("price crosses moving average", "entry", "Enter on 20-day MA crossover"),
    ("price crosses moving average", "entry", "Buy when price crosses above the 50-day SMA"),
    ("price crosses moving average", "exit", "Exit when price crosses below the 20-day WMA"),
    ("moving average crosses moving average", "entry", "Buy when the 20-day SMA crosses above the 50-day SMA"),
    ("moving average crosses moving average", "exit", "Exit when the 10-day EMA crosses below the 30-day EMA"),
    ("moving average crosses moving average", "entry", "Enter on a golden cross"),
    ("RSI level", "entry", "Buy when RSI(14) is below 30"),
    ("RSI level", "exit", "Sell when RSI is above 70"),
    ("RSI crossing", "entry", "Enter when the 14-day RSI crosses above 30"),
    ("RSI crossing", "exit", "Exit when RSI crosses below 70"),
    ("MACD vs signal", "entry", "Buy when MACD crosses above the signal line"),
    ("MACD vs signal", "exit", "Sell when the MACD line is below its signal line"),
    ("MACD histogram sign", "entry", "Enter when the MACD histogram turns positive"),
    ("MACD histogram sign", "exit", "Exit when the MACD histogram is negative"),
    ("Bollinger Bands", "entry", "Buy when price closes below the lower Bollinger Band"),
    ("Bollinger Bands", "entry", "Buy when price touches the lower Bollinger Band"),
    ("Bollinger Bands", "exit", "Sell when the close is above the upper Bollinger Band"),
    ("N-day breakout", "entry", "Buy when the close breaks above the 20-day high"),
    ("N-day breakout", "exit", "Exit when the close breaks below the 10-day low"),
    ("rate of change", "entry", "Buy when price rises 10% in 5 days"),
    ("rate of change", "exit", "Exit when price falls 5% over 3 days"),
    ("rate of change", "entry", "Enter when the 10-day rate of change is above 5%"),
    ("volume vs average", "entry", "Buy when volume is above its 20-day average"),
    ("volume vs average", "entry", "Enter when volume is 2x the 20-day average volume"),
    ("price level", "any", "Only when price is above the 200-day moving average"),
    ("range", "any", "RSI is between 40 and 60"),
    ("persistence", "any", "Price closes above the 20-day SMA for 3 consecutive days"),
    ("N-bar extreme of any field", "entry", "Buy when price closes above the highest close of the past 30 days"),
    ("gap", "entry", "Buy when price gaps up 2%"),
    ("consecutive bars", "entry", "Buy after three higher closes in a row"),
    ("bars ago", "entry", "Buy when the close is above the high of 3 bars ago"),
    ("52-week high or low", "entry", "Buy when the close is within 1% of the 52-week high"),
    ("volume as a percentage of its average", "entry", "Buy when volume is 150% of its 20-day average"),
    ("indicator vs its own average", "any", "ATR(14) is above its 50-day average"),
    ("event within the last N bars", "entry", "Buy when RSI crossed above 30 within the last 5 bars"),
]


def _words(text: str) -> set[str]:
    return set(text.replace("(", " ").replace(")", " ").split())


def closest_n(rule: str, side: str, n: int = 3) -> list[str]:
    """The ``n`` supported example phrasings closest to ``rule``: the examples sharing most words with its first
    100 characters, ranked by difflib ratio (difflib on a short prefix and a few candidates keeps this fast)."""
    text = rule.lower().strip()[:100]
    words = _words(text)
    candidates = [example for _form, ex_side, example in EXAMPLES if side not in ("entry", "exit") or ex_side in (side, "any")]
    overlap = sorted(candidates, key=lambda ex: -len(words & _words(ex.lower())) / (len(words | _words(ex.lower())) or 1))
    shortlist = overlap[: max(2 * n, 8)]
    ranked = sorted(shortlist, key=lambda ex: -difflib.SequenceMatcher(None, text, ex.lower()).ratio())
    return ranked[:n]


def closest(rule: str, side: str) -> str:
    """The supported example phrasing closest to ``rule``."""
    return closest_n(rule, side, 1)[0]


BEGIN, END = "<!-- examples:begin (generated: python -m services.codegen.grammar.examples) -->", "<!-- examples:end -->"


def docs_table() -> str:
    """The markdown table of docs/strategy-schema.md: every example with the formula the grammar gives it."""
    from services.codegen.grammar.nl import parse_rule

    rows = ["| form | example | formula |", "|---|---|---|"]
    for form, side, example in EXAMPLES:
        condition, _ = parse_rule(example, "filter" if side == "any" else side)
        rows.append(f"| {form} | \"{example}\" | `{condition.formula()}` |")
    return "\n".join(rows)


def write_docs(path) -> None:
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{docs_table()}\n{END}{tail}")


if __name__ == "__main__":
    from services.common.config import project_root

    write_docs(project_root() / "docs" / "strategy-schema.md")
