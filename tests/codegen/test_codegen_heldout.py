"""The held-out phrasings (written before the grammar changed): at least 95%
of the well-defined ones understood and faithful to a pandas computation of
their intended formula, every ambiguous or external one rejected with the
rule named. benchmarks/rule_coverage.py prints the same figures."""
from __future__ import annotations

from tests.codegen.heldout_check import evaluate, figures
from tests.codegen.heldout_corpus import HELDOUT


def test_heldout_coverage():
    assert len(HELDOUT) >= 150
    outcomes = evaluate()
    (faithful, defined), (rejected, undefined) = figures(outcomes).values()
    misread = [o for o in outcomes if o.status in ("misread", "accepted")]
    assert not misread, misread  # never a silent misreading
    assert faithful / defined >= 0.95, [o for o in outcomes if not o.ok]
    assert rejected == undefined


def test_oracles_are_not_trivial():
    """A faithful verdict means something only if the intended signal fires on some bars and not on others."""
    from tests.codegen.heldout_check import bars
    from tests.codegen.heldout_oracle import Bars

    data = bars()
    trivial = []
    for _side, rule, oracle in HELDOUT:
        if oracle is None:
            continue
        counts = [int(oracle(Bars(df)).fillna(False).sum()) for df in data.values()]
        if not (any(0 < c for c in counts) and all(c < len(df) for c, df in zip(counts, data.values()))):
            trivial.append(rule)
    # The one phrasing whose intended signal never fires on SPY or BTC-USD: its "faithful" proves less.
    assert trivial == ["Buy when the 10-day EMA crosses above the upper Bollinger Band"]
