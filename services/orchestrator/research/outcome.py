"""The end of an optimization: the best combination's re-run backtest scored (PSR, DSR against the trial
ledger; the walk-forward's in-sample side), said in words, and remembered with its statistics."""
from __future__ import annotations

from services.orchestrator.research import results


def score(ctx) -> None:
    """Called once the best combination's backtest ran (ctx.result)."""
    r = ctx.research
    stats = r.summary.statistics
    trials, sharpes = r.ledger()
    results.deflated_statistics(list(ctx.result.equity), ctx.params.initial_capital, ctx.result.metrics.periods_per_year,
                                trials, sharpes, stats)
    if r.summary.HasField("walk_forward"):
        r.summary.walk_forward.in_sample.CopyFrom(ctx.result.metrics)
    ctx.log("info", "optimizer", f"{r.summary.combinations:,} combinations, best {_words(r.summary.best)}")
    for verdict, bad in ((stats.dsr_verdict, not stats.significant), (stats.pbo_verdict, stats.pbo > 0.5)):
        if verdict and bad:
            ctx.warn("optimizer", verdict)  # in the event stream, the insights and the CLI's output
        elif verdict:
            ctx.log("info", "optimizer", verdict)


def _words(best) -> str:
    return ", ".join(f"{v.name}={v.value:g}" for v in best.values)


def memory(ctx) -> tuple[str, dict]:
    """The sentence and metadata the Code Executor adds to the strategy's memory."""
    s = ctx.research.summary
    st = s.statistics
    text = (f" Optimised over {s.combinations:,} combinations ({st.trials:,} trials in the ledger) by {s.objective}: "
            f"best {_words(s.best)}. {st.dsr_verdict}." + (f" {st.pbo_verdict}." if st.pbo_verdict else ""))
    if not st.significant:
        text += " The winner does not survive the deflated Sharpe test."
    meta = {"optimized": True, "combinations": s.combinations, "trials": st.trials, "dsr": round(st.dsr, 4),
            "psr": round(st.psr, 4), "pbo": round(st.pbo, 4), "significant": st.significant,
            "best_parameters": {v.name: v.value for v in s.best.values}}
    return text, meta
