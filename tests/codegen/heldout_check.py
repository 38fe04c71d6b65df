"""Score the held-out phrasings: understood AND faithful, or rejected with the rule named.

A well-defined phrasing counts when it compiles (through the compiler, as a
strategy would) and the boolean signal of its compiled condition equals the
oracle's on the bundled SPY and BTC-USD bars. An ambiguous or external one
counts when the strategy is rejected and the error names the rule.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from services.codegen import compiler, emit
from services.common import code_policy, errors
from services.common.config import project_root
from tests.codegen.heldout_corpus import HELDOUT
from tests.codegen.heldout_oracle import Bars

NODE = {"entry": "entry_condition", "exit": "exit_condition", "filter": "filter"}
SYMBOLS = ("SPY", "BTC-USD")


@dataclasses.dataclass
class Outcome:
    side: str
    rule: str
    defined: bool
    status: str  # faithful | misread | not_understood | rejected | accepted
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("faithful", "rejected")


def bars() -> dict[str, pd.DataFrame]:
    data = project_root() / "data" / "ohlcv"
    return {s: pd.read_csv(data / f"{s}.csv", index_col="date", parse_dates=True) for s in SYMBOLS}


def strategy(side: str, rule: str) -> dict:
    nodes = [{"id": "rule", "type": NODE[side], "meta": {"rules": [rule]}}]
    if side != "entry":
        nodes.insert(0, {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Buy when RSI is below 30"]}})
    return {"nodes": nodes}


def signal(condition, df: pd.DataFrame) -> pd.Series:
    """The compiled condition's signal: the statements the script would run."""
    scope = {"ohlc": df, "close": df["close"], "np": np, "pd": pd}
    done: set[str] = {"close"}
    for s in condition.series_needed():
        if s.key not in done:
            done.add(s.key)
            for line in s.lines:
                exec(line, scope)  # noqa: S102 - the generated statements, as the sandbox runs them
    return pd.Series(eval(condition.expr(), scope), index=df.index).fillna(False).astype(bool)  # noqa: S307


def score(side: str, rule: str, oracle, data: dict[str, pd.DataFrame]) -> Outcome:
    defined = oracle is not None
    try:
        analysis = compiler.analyze(strategy(side, rule), None)
    except errors.ApiError as exc:  # a rejection counts only when it names the rule
        message = exc.message + " " + " ".join(text for _field, text in exc.violations)
        named = rule in message
        if defined:
            return Outcome(side, rule, True, "not_understood", message[:200])
        return Outcome(side, rule, False, "rejected" if named else "accepted", "" if named else "rule not named: " + message[:200])
    if not defined:
        return Outcome(side, rule, False, "accepted", analysis.rules[-1].formula if analysis.rules else "")
    node = next(n for n in analysis.condition_nodes if n.node_id == "rule")
    for symbol, df in data.items():
        got = signal(node.condition, df)
        want = pd.Series(oracle(Bars(df)), index=df.index).fillna(False).astype(bool)
        diff = int((got != want).sum())
        if diff:
            return Outcome(side, rule, True, "misread", f"{symbol}: {diff} bars differ; read as {node.condition.formula()}")
    if found := code_policy.check_code(emit.emit(analysis)):  # the whole script must be one the sandbox runs
        return Outcome(side, rule, True, "refused", f"the script breaks the code policy: {found[0].message}")
    return Outcome(side, rule, True, "faithful", node.condition.formula())


def evaluate() -> list[Outcome]:
    data = bars()
    return [score(side, rule, oracle, data) for side, rule, oracle in HELDOUT]


def figures(outcomes: list[Outcome]) -> dict[str, tuple[int, int]]:
    defined = [o for o in outcomes if o.defined]
    undefined = [o for o in outcomes if not o.defined]
    return {
        "well-defined understood and faithful": (sum(o.ok for o in defined), len(defined)),
        "ambiguous/external rejected with the rule named": (sum(o.ok for o in undefined), len(undefined)),
    }
