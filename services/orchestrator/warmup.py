"""Whether the data gave every indicator the warm-up the analysis asked for."""
from __future__ import annotations

from typing import Iterable

from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2

BAR_WORDS = {"1d": "daily", "1w": "weekly"}


def warmup_shortfalls(analysis: codegen_pb2.StrategyAnalysis | None, start_date: str,
                      sources: Iterable[backtest_pb2.DataSource]) -> list[str]:
    """One warning per symbol whose data has fewer bars before start_date than the indicators need."""
    if analysis is None or analysis.warmup_bars <= 0:
        return []
    need = analysis.warmup_bars
    bars = BAR_WORDS.get(analysis.timeframe, analysis.timeframe)
    return [
        f"{s.symbol}: the indicators need {need} {bars} bars before {start_date} to settle, the data has "
        f"{s.warmup_bars}: their first values depend on where the data starts (the same script on a longer "
        f"history gives other signals at first)"
        for s in sources if s.symbol in analysis.symbols and s.warmup_bars < need
    ]
