"""Step 3 of reading a rule: the sentence of words and placeholders ->
a condition, with the LALR grammar rules.lark.

The grammar's word classes are generated from lexicon.py when the parser
is built (WORD_CLASSES); every word of the sentence is one token (a
placeholder ``#tk`` is M, ``30`` NUMBER, ``5%`` PCT, ``2x`` MULT, a word of
the grammar its own terminal, any other word UNKNOWN, which no form
accepts). A parse gives the form and its parts (``g``: role -> words); the
form's builder in forms.py checks what it means. A sentence that no form
accepts is not understood: it is never half-applied.
"""
from __future__ import annotations

import functools
import pathlib
import re

import lark
from lark.lexer import Lexer, Token

from services.codegen.grammar import forms as F
from services.codegen.grammar import lexicon as lex
from services.codegen.grammar.errors import RuleError
from services.codegen.grammar.forms import Matcher, Tok, _unit_bars, _window
from services.codegen.grammar.ir import Condition, Persist, Within, combine


def _phrases(*tables) -> list[str]:
    out: list[str] = []
    for table in tables:
        for phrase in table:
            if phrase not in out and not any(w in lex.FILLER_WORDS for w in phrase.split()):
                out.append(phrase)
    return out


VERBS = _phrases(lex.UP_VERBS, lex.DOWN_VERBS, lex.NEUTRAL_VERBS)
MOVES = _phrases(lex.UP_MOVE, lex.DOWN_MOVE)
# Word classes of rules.lark, from the lexicon: one synonym is one entry in lexicon.py.
WORD_CLASSES = {
    "verb": VERBS,
    "move_word": [m for m in MOVES if m not in VERBS and not (m.split()[0] in VERBS and m.split()[-1] in ("up", "down"))],
    "noun": _phrases(lex.UP_NOUN, lex.DOWN_NOUN),
    "state_verb": _phrases(lex.STATE_VERBS),
    "cmp": _phrases(lex.CMP, lex.ABOVE, lex.BELOW),
    "unit": _phrases(lex.UNIT_WORDS),
}

QUALIFIERS = ("at least", "more than", "over")  # "at least 5% below", "gaps up more than 2%"
NOUN_QUALIFIERS = ("at least", "more than")
DISTANCE_DIRS = ("above", "over", "below", "under", "beneath", "higher than", "lower than", "greater than", "less than")
CROSS_DIRS = lex.ABOVE + lex.BELOW


def _grammar() -> str:
    text = pathlib.Path(__file__).with_name("rules.lark").read_text()
    lines = []
    for name, phrases in WORD_CLASSES.items():
        alternatives = " | ".join(" ".join(f'"{w}"' for w in phrase.split()) for phrase in phrases)
        lines.append(f"{name}: {alternatives}")
    return text + "\n" + "\n".join(lines) + "\n"


NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
PCT_RE = re.compile(r"-?\d+(?:\.\d+)?%")
MULT_RE = re.compile(r"-?\d+(?:\.\d+)?x")
MENTION_RE = re.compile(r"#t\d+")


class WordLexer(Lexer):
    """One token per word: the grammar's words by their literal, the rest by kind."""

    def __init__(self, lexer_conf):
        self.literals = {t.pattern.value: t.name for t in lexer_conf.terminals if t.pattern.type == "str"}

    def lex(self, data: str):
        for word in data.split():
            if MENTION_RE.fullmatch(word):
                kind = "M"
            elif PCT_RE.fullmatch(word):
                kind = "PCT"
            elif MULT_RE.fullmatch(word):
                kind = "MULT"
            elif NUMBER_RE.fullmatch(word):
                kind = "NUMBER"
            else:
                kind = self.literals.get(word, "UNKNOWN")
            yield Token(kind, word)


PARSER = lark.Lark(_grammar(), parser="lalr", lexer=WordLexer, strict=True, keep_all_tokens=True)


class NoForm(Exception):
    """The words parse, but not as a form they could mean (such as 'price rises above 5% from the SMA')."""


ROLES = {
    "a", "a2", "b", "number", "pct", "k", "n", "lo", "hi", "cmp", "verb", "updown", "move_word", "adverb", "prep",
    "noun_prep", "span", "noun_span", "unit", "bias", "bias2", "zone_word", "sign_word", "turn", "touch_verb", "new_verb",
    "breakout_word", "gap_word", "nodir_verb", "nodir_verb_lead", "name_word", "noun", "pair_sep", "pair_with", "level_prep", "lookback",
}


def _parts(tree: lark.Tree, prefix: str = "") -> dict[str, list[str]]:
    """The words of each part of a form, in order (``level.b`` is the b of a level)."""
    out: dict[str, list[str]] = {}
    for child in tree.children:
        if not isinstance(child, lark.Tree):
            continue
        if child.data in ("level", "pair"):
            for key, values in _parts(child, child.data + ".").items():
                out.setdefault(key, []).extend(values)
        elif child.data in ROLES:
            out.setdefault(prefix + child.data, []).append(" ".join(t.value for t in child.scan_values(lambda v: isinstance(v, Token))))
        else:
            for key, values in _parts(child, prefix).items():
                out.setdefault(key, []).extend(values)
    return out


def _one(p: dict, key: str) -> str | None:
    values = p.get(key)
    return values[0] if values else None


def _qualifier(p: dict, allowed: tuple[str, ...], n_cmp: int = 1) -> None:
    """A comparison word before a percentage ("at least 5%") must be one of ``allowed``."""
    cmps = p.get("cmp", [])
    if len(cmps) == n_cmp and cmps[0] not in allowed:
        raise NoForm


def _level(p: dict, g: dict) -> None:
    g["b"] = _one(p, "level.b") or _one(p, "level.number") or _one(p, "level.pct")
    if "level.k" in p:
        g["k"] = p["level.k"][0][:-1]


def _form(form: str, p: dict) -> dict:
    """The parts a form's builder reads, in the names of forms.py; NoForm for a combination no form means."""
    g: dict = {}
    if _one(p, "a"):
        g["a"] = _one(p, "a")
    for key in ("b", "bias", "bias2", "unit", "n", "lo", "hi"):
        if _one(p, key):
            g[key] = _one(p, key)
    if "pct" in p:
        g["pct"] = p["pct"][0].rstrip("%")
    if form == "named_cross":
        g["name"] = _one(p, "name_word")
    elif form == "zone":
        g["zone"] = _one(p, "zone_word")
    elif form == "sign":
        g["sign"] = _one(p, "sign_word")
        g["turn"] = _one(p, "turn")
    elif form in ("crossover", "crossover_verb", "crossover_of"):
        if _one(p, "pair.cmp") not in (None, "over"):
            raise NoForm
        if _one(p, "pair.b"):
            g["b"] = _one(p, "pair.b")
        direction = _one(p, "updown") or _one(p, "cmp")
        if form == "crossover_verb":
            verb = _one(p, "verb")
            if verb not in ("cross", "crossing") or (direction == "over" and verb != "cross"):
                raise NoForm
        if direction == "over":
            direction = None  # "cross over" is the crossover, with no direction
        if direction not in (None, "up", "down", "above", "below"):
            raise NoForm
        g["dir"] = direction
    elif form in ("breakout", "breakout_verb"):
        g["b"] = g.pop("a")
        if form == "breakout_verb":
            if (_one(p, "verb"), _one(p, "adverb")) != ("break", "out"):
                raise NoForm
            g["word"] = "break out"
        else:
            g["word"] = _one(p, "breakout_word")
    elif form == "bare_extreme":
        g["b"] = g.pop("a")
    elif form == "cross":
        g["verb"], g["dir"] = _one(p, "verb"), _one(p, "cmp")
        if g["dir"] not in CROSS_DIRS or _one(p, "level.level_prep") == "greater than":
            raise NoForm
        _level(p, g)
    elif form == "no_direction":
        g["verb"] = _one(p, "nodir_verb") or _one(p, "nodir_verb_lead")
        g["b"] = _one(p, "b") or _one(p, "number")
    elif form == "pct_distance":
        _qualifier(p, QUALIFIERS, 2)
        g["dir"] = p["cmp"][-1]
        if g["dir"] not in DISTANCE_DIRS:
            raise NoForm
    elif form == "gap":
        _qualifier(p, QUALIFIERS)
        g["dir"] = _one(p, "updown")
    elif form in ("pct_move", "roc_move"):
        _qualifier(p, QUALIFIERS)
        verb = _one(p, "move_word") or " ".join(x for x in (_one(p, "verb"), _one(p, "updown")) if x)
        if verb not in MOVES:
            raise NoForm
        g["verb"], g["prep"] = verb, _one(p, "prep")
    elif form in ("pct_noun_move", "roc_noun_move"):
        _qualifier(p, NOUN_QUALIFIERS)
        g["verb"], g["prep"] = _one(p, "noun"), _one(p, "noun_prep")
        if "a" not in g and _one(p, "a2"):
            g["a"] = _one(p, "a2")
    elif form == "multiple":
        g["k"] = p["k"][0][:-1]
    elif form == "state":
        g["cmp"] = _one(p, "cmp")
        if g["cmp"] not in lex.CMP:
            raise NoForm
        _level(p, g)
        if g["cmp"] in NOUN_QUALIFIERS and "k" in g and g["b"].startswith("#"):
            return {"form": "multiple", **{key: g[key] for key in ("a", "b", "k") if key in g}}
        if _one(p, "level.level_prep") == "greater than":
            raise NoForm
    return {"form": form, **{key: value for key, value in g.items() if value is not None}}


BUILDERS = {
    "named_cross": F._build_named_cross, "zone": F._build_zone, "sign": F._build_sign,
    "crossover": F._build_crossover, "crossover_verb": F._build_crossover, "crossover_of": F._build_crossover,
    "touch": F._build_touch, "outside": F._build_outside, "new_extreme": F._build_new_extreme,
    "bare_extreme": F._build_new_extreme, "breakout": F._build_breakout_noun, "breakout_verb": F._build_breakout_noun,
    "cross": F._build_cross, "no_direction": F._build_no_direction, "pct_distance": F._build_pct_distance,
    "within_pct": F._build_within_pct, "gap": F._build_gap, "pct_move": F._build_pct_move_from,
    "pct_noun_move": F._build_pct_move_from, "roc_move": F._build_roc_move, "roc_noun_move": F._build_roc_move,
    "multiple": F._build_multiple, "state": F._build_state, "between": F._build_between,
}


@functools.lru_cache(maxsize=4096)
def _read_form(sentence: str) -> tuple | None:
    """The form of one clause and its parts, or None when no form accepts it (cached: "A and A and ..." parses A once)."""
    try:
        tree = PARSER.parse(sentence)
    except lark.exceptions.UnexpectedInput:
        return None
    clause = tree.children[0]
    try:
        return tuple(_form(clause.data, _parts(clause)).items())
    except NoForm:
        return None


def read_form(sentence: str) -> dict | None:
    found = _read_form(sentence)
    return None if found is None else dict(found)


def _match(sentence: str, matcher: Matcher) -> Condition | None:
    g = read_form(sentence)
    if g is None:
        return None
    return BUILDERS[g.pop("form")](matcher, g)


# ---------------------------------------------------------------- around one clause

_RUN = r"(?P<n>\d+)\s+(?:consecutive\s+|straight\s+|successive\s+)?(?P<unit>" + lex.UNIT + r")"
PERSIST_FORMS = (
    re.compile(r"\s+for\s+(?:at\s+least\s+)?(?:the\s+last\s+)?" + _RUN + r"(?:\s+in\s+(?:a\s+)?row)?$"),
    re.compile(r"\s+" + _RUN + r"\s+in\s+(?:a\s+)?row$"),
)
WITHIN = re.compile(
    r"\s+(?:at any time |at least once |once )?(?:within|in|during)\s+(?:last|past|previous|prior)\s+(?P<n>\d+)\s+(?P<unit>" + lex.UNIT + r")$"
)


def read(sentence: str, matcher: Matcher) -> Condition:
    """The whole sentence: "... for 3 days" (persistence) around the clause, or "A and B" / "A or B"."""
    persist = next((found for form in PERSIST_FORMS if (found := form.search(sentence))), None)
    if persist:
        sentence = sentence[: persist.start()].strip()
    condition = _clause(sentence, matcher)
    if condition is None:
        condition = _split(sentence, matcher)
    if condition is None:
        raise RuleError("it does not match any supported rule form")
    if persist:
        _unit_bars(persist.group("unit"), matcher.ctx, persist.group(0).strip())
        bars = _window(persist.group("n"), persist.group(0))
        if bars < 2:
            raise RuleError(f"'{persist.group(0).strip()}' needs at least 2 bars")
        condition = Persist(condition, bars)
    return condition


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
    seen: dict[str, tuple[Condition, list[str]]] = {}  # a part said twice is read once (its warnings repeat)
    for piece in sentence.split(word):
        piece = piece.strip()
        lead = re.match(r"#t\d+", piece)
        if lead:
            subject = lead.group(0)
        elif subject:
            piece = f"{subject} {piece}"  # "RSI below 30 or above 70": the subject carries over
        if piece in seen:
            found, warnings = seen[piece]
            matcher.ctx.warnings.extend(warnings)
        else:
            before = len(matcher.ctx.warnings)
            found = _clause(piece, matcher)
            if found is None:
                raise RuleError(f"the part '{_untokenize(piece, matcher.toks)}' (as normalised) is not understood, so the rule is rejected as a whole")
            seen[piece] = found, matcher.ctx.warnings[before:]
        parts.append(found)
    return combine(how, parts)


def _untokenize(sentence: str, toks: list[Tok]) -> str:
    return re.sub(r"#t(\d+)", lambda m: toks[int(m.group(1))].text or "price", sentence)
