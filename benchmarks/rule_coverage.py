"""Held-out rule phrasings: the share understood and faithful, and the share
of ambiguous/external ones rejected with the rule named (prints a table).

    python benchmarks/rule_coverage.py [--failures]
"""
from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/ is not an installed package

from tests.codegen.heldout_check import evaluate, figures  # noqa: E402


def main() -> None:
    outcomes = evaluate()
    print(f"{'measure':52} {'count':>9} {'share':>7}")
    for name, (good, total) in figures(outcomes).items():
        print(f"{name:52} {good:>4}/{total:<4} {100 * good / total:6.1f}%")
    if "--failures" in sys.argv:
        for o in outcomes:
            if not o.ok:
                print(f"- [{o.status}] ({o.side}) {o.rule}: {o.detail}")


if __name__ == "__main__":
    main()
