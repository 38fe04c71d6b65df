"""Natural-language rules -> condition IR: the entry points, and glue.

Reading a rule takes three steps, each exact:

1. mentions.py normalises the text and strips the action ("Buy when"),
   checking that it agrees with the node;
2. mentions.py replaces every indicator mention ("20-day moving average",
   "RSI") by a placeholder ``#tk`` bound to a typed token;
3. rules.py parses the remaining sentence with the LALR grammar rules.lark
   and forms.py builds the condition and checks what it means (scales,
   windows, look-back). Any word left over means the rule is not
   understood: it is rejected with the closest supported phrasings, never
   half-applied.

The grammar is documented in docs/strategy-schema.md.
"""
from __future__ import annotations

from services.codegen.grammar import mentions, rules
from services.codegen.grammar.errors import RuleError
from services.codegen.grammar.examples import closest_n
from services.codegen.grammar.forms import Context, Matcher, NeedsSubject, Parsed, Subject, series_of
from services.codegen.grammar.ir import Condition, Series

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
        sentence, toks = mentions.sentence(rule, ctx)
        condition = rules.read(sentence, Matcher(toks, ctx))
    except RuleError as exc:
        near = [example for example in closest_n(rule, side, 3) if example != exc.suggestion]
        exc.suggestions = ([exc.suggestion] if exc.suggestion else []) + near[: 3 - bool(exc.suggestion)]
        exc.suggestion = exc.suggestions[0]
        exc.near_miss = _near_miss(rule, exc.suggestion, side) if near_miss else None
        raise
    level = ctx.level_subject
    found = None
    if level is not None:
        series = series_of(level)
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


__all__ = ["parse_rule", "parse_rule_in", "NeedsSubject", "Parsed", "Subject", "RuleError"]
