"""Code templates seeded for user "system" at first start: one per rule
family the code generator supports. Seeding is idempotent: a template is
keyed by ``memory_key`` ("code_template:<family>") and only (re)written when
missing or older than ``SEED_VERSION`` — so a template later marked
``tested: true`` (after it ran in the sandbox) is left alone.

The description comes first in each content: the embedder reads only the
first ~256 word pieces, so that is what a search matches.
"""
from __future__ import annotations

from typing import Any

SEED_VERSION = 1

TEMPLATES: list[dict[str, Any]] = [
    {
        "rule_family": "ma_deviation_entry",
        "description": "Entry when the close drops a percentage below its simple moving average "
                       "(e.g. enter on a 5% price drop from the 20-day moving average); evaluated at bar close.",
        "code": (
            "# SMA: simple moving average of close over `window` bars.\n"
            "sma = vbt.MA.run(close, window=window).ma\n"
            "entries = close <= (1 - drop_pct / 100) * sma\n"
        ),
        "params": {"window": 20, "drop_pct": 5.0},
    },
    {
        "rule_family": "ma_crossover_entry",
        "description": "Entry when the close crosses above its moving average "
                       "(e.g. enter on a 20-day moving average crossover); evaluated at bar close.",
        "code": (
            "# SMA: simple moving average of close over `window` bars.\n"
            "sma = vbt.MA.run(close, window=window).ma\n"
            "entries = (close > sma) & (close.shift(1) <= sma.shift(1))\n"
        ),
        "params": {"window": 20},
    },
    {
        "rule_family": "take_profit",
        "description": "Take profit: exit a long position once price rises a target percentage above the entry price.",
        "code": (
            "pf = vbt.Portfolio.from_signals(close, entries, exits, tp_stop=target_pct / 100,\n"
            "                                open=open_, high=high, low=low, fees=fees, slippage=slippage)\n"
        ),
        "params": {"target_pct": 7.0},
    },
    {
        "rule_family": "stop_loss",
        "description": "Stop loss: exit a long position once price falls a percentage below the entry price.",
        "code": (
            "pf = vbt.Portfolio.from_signals(close, entries, exits, sl_stop=stop_pct / 100,\n"
            "                                open=open_, high=high, low=low, fees=fees, slippage=slippage)\n"
        ),
        "params": {"stop_pct": 5.0},
    },
]


def seed_memories() -> list[tuple[str, dict[str, Any]]]:
    """(content, metadata) of every seeded template."""
    out = []
    for t in TEMPLATES:
        content = f"Code template ({t['rule_family']}): {t['description']}\n\n```python\n{t['code']}```"
        metadata = {
            "kind": "code_template",
            "rule_family": t["rule_family"],
            "language": "python",
            "library": "vectorbt",
            "params": t["params"],
            "tested": False,
            "source": "seed",
            "seed_version": SEED_VERSION,
            "memory_key": f"code_template:{t['rule_family']}",
        }
        out.append((content, metadata))
    return out


def seed(store, user_id: str) -> dict[str, int]:
    """Write missing or outdated templates (blocking; run through StoreRunner)."""
    counts = {"added": 0, "updated": 0, "kept": 0}
    for content, metadata in seed_memories():
        existing = store.find_by_key(user_id, metadata["memory_key"])
        if existing is None:
            store.add(user_id, [{"role": "user", "content": content}], metadata, infer=False)
            counts["added"] += 1
        elif int(existing.metadata.get("seed_version", 0)) < SEED_VERSION:
            store.replace(existing.id, content, metadata)
            counts["updated"] += 1
        else:
            counts["kept"] += 1
    return counts
