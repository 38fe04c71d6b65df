"""Step 3 of reading a rule: the sentence of words and placeholders ->
a condition, with the LALR grammar rules.lark.

The grammar's word classes are generated from lexicon.py when the parser
is built (word_classes()); every word of the sentence is one token (a
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
from services.codegen.grammar.forms import Matcher, Tok, unit_bars, check_window
from services.codegen.grammar.ir import Condition, Persist, Within, combine


def _phrases(*tables) -> list[str]:
    out: list[str] = []
    for table in tables:
        for phrase in table:
            if phrase not in out and not any(w in lex.FILLER_WORDS for w in phrase.split()):
                out.append(phrase)
    return out


MOVES = _phrases(lex.UP_MOVE, lex.DOWN_MOVE)


def word_classes() -> dict[str, list[str]]:
    """The word classes of rules.lark, from the lexicon: one synonym is one entry in lexicon.py."""
    verbs, moves = _phrases(lex.UP_VERBS, lex.DOWN_VERBS, lex.NEUTRAL_VERBS), _phrases(lex.UP_MOVE, lex.DOWN_MOVE)
    return {
        "verb": verbs,
        # "moves up" is verb updown in the grammar
        "move_word": [m for m in moves if m not in verbs and not (m.split()[0] in verbs and m.split()[-1] in ("up", "down"))],
        "noun": _phrases(lex.UP_NOUN, lex.DOWN_NOUN),
        "state_verb": _phrases(lex.STATE_VERBS),
        "cmp": _phrases(lex.CMP, lex.ABOVE, lex.BELOW),
        "unit": _phrases(lex.UNIT_WORDS),
    }


QUALIFIERS = ("at least", "more than", "over")  # "at least 5% below", "gaps up more than 2%"
NOUN_QUALIFIERS = ("at least", "more than")
CROSS_DIRS = lex.ABOVE + lex.BELOW


def _grammar() -> str:
    text = pathlib.Path(__file__).with_name("rules.lark").read_text()
    lines = []
    for name, phrases in word_classes().items():
        alternatives = " | ".join(" ".join(f'"{w}"' for w in phrase.split()) for phrase in phrases)
        lines.append(f"{name}: {alternatives}")
    return text + "\n" + "\n".join(lines) + "\n"


NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
PCT_RE = re.compile(r"-?\d+(?:\.\d+)?%")
MULT_RE = re.compile(r"-?\d+(?:\.\d+)?x")
MENTION_RE = re.compile(r"#t\d+")


def _kind(word: str, literals: dict[str, str]) -> str:
    if MENTION_RE.fullmatch(word):
        return "M"
    if PCT_RE.fullmatch(word):
        return "PCT"
    if MULT_RE.fullmatch(word):
        return "MULT"
    if NUMBER_RE.fullmatch(word):
        return "NUMBER"
    return literals.get(word, "UNKNOWN")


CHAIN = "\x01"  # "\x01and <sentence>": the sentence read as a chain of parts joined by "and"


class WordLexer(Lexer):
    """One token per word: the grammar's words by their literal, the rest by kind. In a chain every "and" (or
    "or") is CONJ_AND (CONJ_OR), and a part that does not start with a placeholder gets the previous part's subject."""

    def __init__(self, lexer_conf):
        self.literals = {t.pattern.value: t.name for t in lexer_conf.terminals if t.pattern.type == "str"}

    def lex(self, data: str):
        words = data.split()
        conj = None
        if words and words[0].startswith(CHAIN):
            conj, words = words[0][1:], words[1:]
        subject, part_start = None, True
        for word in words:
            if word == conj:
                yield Token("CONJ_" + conj.upper(), word)
                part_start = True
                continue
            kind = _kind(word, self.literals)
            if conj and part_start:
                if kind == "M":
                    subject = word
                elif subject:
                    yield Token("M", subject)  # "RSI below 30 or above 70": the subject carries over
            part_start = False
            yield Token(kind, word)


def build_parser() -> lark.Lark:
    """The LALR parser of rules.lark with the lexicon's words; strict: a conflict is an error, never resolved silently."""
    return lark.Lark(_grammar(), parser="lalr", lexer=WordLexer, strict=True, keep_all_tokens=True,
                     start=["start", "chain", "part"])


PARSER = build_parser()


class NoForm(Exception):
    """The words parse, but not as a form they could mean (such as 'price rises above 5% from the SMA')."""


ROLES = {
    "a", "a2", "b", "number", "pct", "k", "n", "lo", "hi", "cmp", "verb", "updown", "move_word", "adverb", "prep",
    "noun_prep", "span", "noun_span", "unit", "bias", "bias2", "zone_word", "sign_word", "turn", "touch_verb", "new_verb",
    "breakout_word", "gap_word", "nodir_verb", "nodir_verb_lead", "name_word", "noun", "pair_sep", "pair_with", "level_prep", "lookback", "dist_dir", "within_pre", "crossover_dir",
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


def _qualifier(p: dict, allowed: tuple[str, ...]) -> None:
    """A comparison word before a percentage ("at least 5%") must be one of ``allowed``."""
    if _one(p, "cmp") not in (None, *allowed):
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
        direction = _one(p, "crossover_dir")
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
        _qualifier(p, QUALIFIERS)
        g["dir"] = _one(p, "dist_dir")
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
    "named_cross": F.build_named_cross, "zone": F.build_zone, "sign": F.build_sign,
    "crossover": F.build_crossover, "crossover_verb": F.build_crossover, "crossover_of": F.build_crossover,
    "touch": F.build_touch, "outside": F.build_outside, "new_extreme": F.build_new_extreme,
    "bare_extreme": F.build_new_extreme, "breakout": F.build_breakout_noun, "breakout_verb": F.build_breakout_noun,
    "cross": F.build_cross, "no_direction": F.build_no_direction, "pct_distance": F.build_pct_distance,
    "within_pct": F.build_within_pct, "gap": F.build_gap, "pct_move": F.build_pct_move_from,
    "pct_noun_move": F.build_pct_move_from, "roc_move": F.build_roc_move, "roc_noun_move": F.build_roc_move,
    "multiple": F.build_multiple, "state": F.build_state, "between": F.build_between,
}


@functools.lru_cache(maxsize=4096)
def _parse(text: str, start: str) -> lark.Tree | None:
    """The parse tree, or None when the grammar does not accept the words (cached: a part said twice parses once)."""
    try:
        return PARSER.parse(text, start=start)
    except lark.exceptions.UnexpectedInput:
        return None


def _words(tree: lark.Tree) -> str:
    return " ".join(t.value for t in tree.scan_values(lambda v: isinstance(v, Token)))


def _bars(tree: lark.Tree) -> tuple[str, str, str]:
    """A suffix's count, unit and words ("for 3 days" -> "3", "days", "for 3 days")."""
    p = _parts(tree)
    return _one(p, "n"), _one(p, "unit"), _words(tree)


def _plan(children: list) -> tuple[dict, tuple | None]:
    """One clause's form and parts, and its "within the last N bars" (count, unit, words) if any; NoForm if none."""
    clause = children[0]
    within = next((c for c in children[1:] if isinstance(c, lark.Tree) and c.data == "within"), None)
    if clause.data == "a":
        g = {"form": "bare_extreme", "b": _words(clause)}
    else:
        p = _parts(clause)
        if within is not None and _move_over_bars(clause.data, p, within):
            # "rises over 5% within the last 5 days": the whole clause is a move over 5 bars (as the old
            # parser read it: the clause as a whole before a suffix)
            n, unit, _ = _bars(within)
            g = {"form": "roc_move", "verb": _one(p, "verb"), "pct": _one(p, "level.pct").rstrip("%"), "n": n, "unit": unit}
            if _one(p, "a"):
                g["a"] = _one(p, "a")
            return g, None
        g = _form(clause.data, p)
    if within is None:
        return g, None
    if "lookback" not in _parts(within):
        raise NoForm  # "within 5 days" without "the last" is a move over 5 days, not an event in a window
    return g, _bars(within)


def _move_over_bars(form: str, p: dict, within: lark.Tree) -> bool:
    return (form == "cross" and _one(p, "verb") in MOVES and _one(p, "cmp") in QUALIFIERS and "level.pct" in p
            and "level.k" not in p and "within_pre" not in _parts(within))


def _build(plan: tuple[dict, tuple | None], matcher: Matcher) -> Condition:
    g, within = plan
    g = dict(g)
    condition = BUILDERS[g.pop("form")](matcher, g)
    if within is None:
        return condition
    n, unit, words = within
    unit_bars(unit, matcher.ctx, words)
    bars = check_window(n, words)
    if bars < 2:
        raise RuleError(f"'{words}' needs at least 2 bars")
    return Within(condition, bars)


def _persist(condition: Condition, persist: lark.Tree | None, matcher: Matcher) -> Condition:
    if persist is None:
        return condition
    n, unit, words = _bars(persist)
    unit_bars(unit, matcher.ctx, words)
    bars = check_window(n, words)
    if bars < 2:
        raise RuleError(f"'{words}' needs at least 2 bars")
    return Persist(condition, bars)


def _suffix(tree: lark.Tree, name: str) -> lark.Tree | None:
    return next((c for c in tree.children if isinstance(c, lark.Tree) and c.data == name), None)


def read(sentence: str, matcher: Matcher) -> Condition:
    """The condition of the sentence: as one clause if the grammar reads it so, else as "A and B" / "A or B"."""
    tree = _parse(sentence, "start")
    if tree is not None:
        try:
            plan = _plan(tree.children)
        except NoForm:
            plan = None
        if plan is not None:
            return _persist(_build(plan, matcher), _suffix(tree, "persist"), matcher)
    has_and, has_or = " and " in sentence, " or " in sentence
    if has_and and has_or:
        raise RuleError("it mixes 'and' with 'or'; split it into separate rules and set meta.combine")
    if not (has_and or has_or):
        raise RuleError("it does not match any supported rule form")
    how, word = ("all", "and") if has_and else ("any", "or")
    tree = _parse(f"{CHAIN}{word} {sentence}", "chain")
    parts = [c for c in tree.children if isinstance(c, lark.Tree) and c.data == "part"] if tree is not None else []
    plans: dict[str, tuple] = {}
    try:
        for part in parts:
            key = _words(part)
            if key not in plans:
                plans[key] = _plan(part.children)
    except NoForm:
        parts = []
    if not parts:
        _first_failing_part(sentence, word, matcher)
        raise RuleError("it does not match any supported rule form")
    conditions = []
    built: dict[str, tuple[Condition, list[str]]] = {}  # a part said twice is built once (its warnings repeat)
    for part in parts:
        key = _words(part)
        if key in built:
            condition, warnings = built[key]
            matcher.ctx.warnings.extend(warnings)
        else:
            before = len(matcher.ctx.warnings)
            condition = _build(plans[key], matcher)
            built[key] = condition, matcher.ctx.warnings[before:]
        conditions.append(condition)
    return _persist(combine(how, conditions), _suffix(tree, "persist"), matcher)


def _first_failing_part(sentence: str, word: str, matcher: Matcher) -> None:
    """A chain the grammar does not read: the first part (in order, each read on its own) that is not understood,
    or whose meaning is wrong, raises."""
    subject = ""
    pieces = sentence.split(f" {word} ")
    read_already = set()
    for i, piece in enumerate(pieces):
        piece = piece.strip()
        lead = MENTION_RE.match(piece)
        if lead:
            subject = lead.group(0)
        elif subject:
            piece = f"{subject} {piece}"
        if piece in read_already and i < len(pieces) - 1:
            continue
        read_already.add(piece)
        tree = _parse(piece, "part")
        if tree is None and i == len(pieces) - 1:
            tree = _parse(piece, "start")  # the last part carries the chain's "for 3 days"
        try:
            plan = _plan(tree.children) if tree is not None else None
        except NoForm:
            plan = None
        if plan is None:
            raise RuleError(f"the part '{_untokenize(piece, matcher.toks)}' (as normalised) is not understood, so the rule is rejected as a whole")
        _build(plan, matcher)


def _untokenize(sentence: str, toks: list[Tok]) -> str:
    sentence = re.sub(r"\b(at-any-time|at-least-once|for-last|for-past|for-previous|for-prior)\b", lambda m: m.group(1).replace("-", " "), sentence)
    return re.sub(r"#t(\d+)", lambda m: toks[int(m.group(1))].text or "price", sentence)
