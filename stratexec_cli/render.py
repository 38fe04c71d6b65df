"""How the command line shows executions, events and results."""
from __future__ import annotations

from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2


def status_name(value: int) -> str:
    return execution_pb2.ExecutionStatus.Name(value).removeprefix("EXECUTION_STATUS_").lower()


def event_line(event: execution_pb2.ExecutionEvent) -> str | None:
    """One line per event, or None for events too chatty to show."""
    when = event.time.ToDatetime().strftime("%H:%M:%S")
    if event.type == execution_pb2.EVENT_TYPE_STATUS_CHANGED:
        detail = "" if event.message == status_name(event.status) else f"  ({event.message})"
        return f"{when}  #{event.sequence:<3} status: {status_name(event.status)}{detail}"
    if event.type == execution_pb2.EVENT_TYPE_AGENT_STEP:
        step = event.agent_step
        action = f"{step.tool} ({step.duration_ms:.0f} ms)" if step.tool else "final answer"
        return f"{when}  #{event.sequence:<3}   {step.agent}: {action}"
    if event.type == execution_pb2.EVENT_TYPE_LOG and event.log.level != "info":
        return f"{when}  #{event.sequence:<3}   {event.log.level}: {event.log.message}"
    return None


OPTIONAL = ("sharpe_ratio", "win_rate", "vs_benchmark", "benchmark_return")


def _pct(metrics, field: str) -> str:
    if field in OPTIONAL and not metrics.HasField(field):
        return "n/a"
    return f"{getattr(metrics, field):,.2f}%"


def metrics_table(result: backtest_pb2.BacktestResult) -> str:
    m = result.metrics
    rows = [
        ("Total return", _pct(m, "total_return")),
        ("CAGR", _pct(m, "cagr") + ("" if m.cagr_reliable else "  (under one year: not annualised-reliable)")),
        ("Sharpe ratio", f"{m.sharpe_ratio:.3f}" if m.HasField("sharpe_ratio") else "n/a"),
        ("Max drawdown", _pct(m, "max_drawdown")),
        ("Win rate", _pct(m, "win_rate")),
        ("Trades (closed)", str(m.trades)),
        ("Open trades", str(m.open_trades)),
        ("Benchmark return", _pct(m, "benchmark_return")),
        ("vs benchmark", f"{m.vs_benchmark:+,.2f} pp" if m.HasField("vs_benchmark") else "n/a"),
        ("Final value", f"{m.final_value:,.2f} (from {m.initial_value:,.2f})"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name:<{width}}  {value}" for name, value in rows]
    for source in result.data:
        lines.append(f"  {'Data':<{width}}  {source.symbol} {source.first_time}..{source.last_time}, "
                     f"{source.bars} bars, {source.provider}, sha256 {source.sha256[:12]}")
    return "\n".join(lines)
