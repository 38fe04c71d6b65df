"""How the command line shows executions, events and results."""
from __future__ import annotations


from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2


def status_name(value: int) -> str:
    return execution_pb2.ExecutionStatus.Name(value).removeprefix("EXECUTION_STATUS_").lower()


def level_name(value: int) -> str:
    return execution_pb2.LogLevel.Name(value).removeprefix("LOG_LEVEL_").lower()


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
    if event.type == execution_pb2.EVENT_TYPE_LOG and event.log.level != execution_pb2.LOG_LEVEL_INFO:
        return f"{when}  #{event.sequence:<3}   {level_name(event.log.level)}: {event.log.message}"
    return None


OPTIONAL = ("sharpe_ratio", "win_rate", "vs_benchmark", "benchmark_return")


def _pct(metrics, field: str) -> str:
    if field in OPTIONAL and not metrics.HasField(field):
        return "n/a"
    return f"{getattr(metrics, field):,.2f}%"


def metrics_rows(result: backtest_pb2.BacktestResult) -> list[tuple[str, str]]:
    """The headline metrics as (name, formatted value), shared by the table and the HTML report."""
    m = result.metrics
    return [
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
        ("Sortino ratio", _num(m, "sortino_ratio", "{:.3f}")),
        ("Calmar ratio", _num(m, "calmar_ratio", "{:.3f}")),
        ("Ann. volatility", f"{m.annual_volatility:,.2f}%"),
        ("Exposure time", f"{m.exposure_time:,.2f}%"),
        ("Profit factor", _num(m, "profit_factor", "{:.3f}")),
        ("Expectancy", _num(m, "expectancy", "{:+,.2f} per trade")),
        ("Avg win / loss", f"{_num(m, 'avg_win_pct', '{:+.2f}%')} / {_num(m, 'avg_loss_pct', '{:+.2f}%')}"),
        ("Avg holding", _num(m, "avg_holding_days", "{:.1f} days") + f" (longest {m.max_holding_days} days)"),
        ("Longest drawdown", f"{m.longest_drawdown_days} days (deepest lasted {m.max_drawdown_days} days)"),
        ("Fees paid", f"{m.fees_paid:,.2f}"),
    ]


def _num(metrics, field: str, fmt: str) -> str:
    return fmt.format(getattr(metrics, field)) if metrics.HasField(field) else "n/a"


def per_symbol_table(result: backtest_pb2.BacktestResult) -> str:
    """Trades, win rate, PnL and fees of each symbol (shown for portfolios)."""
    rows = [[r.symbol, str(r.trades), str(r.open_trades), f"{r.win_rate:.2f}%" if r.HasField("win_rate") else "n/a",
             f"{r.pnl:+,.2f}", f"{r.fees:,.2f}"] for r in result.per_symbol]
    return table(["SYMBOL", "TRADES", "OPEN", "WIN RATE", "PNL", "FEES"], rows)


def data_line(source: backtest_pb2.DataSource) -> str:
    return (f"{source.symbol} {source.first_time}..{source.last_time}, {source.bars} bars, "
            f"{source.provider}, sha256 {source.sha256[:12]}")


def metrics_table(result: backtest_pb2.BacktestResult) -> str:
    rows = metrics_rows(result)
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name:<{width}}  {value}" for name, value in rows]
    for source in result.data:
        lines.append(f"  {'Data':<{width}}  {data_line(source)}")
    if len(result.per_symbol) > 1:
        lines += ["", *("  " + line for line in per_symbol_table(result).splitlines())]
    return "\n".join(lines)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A plain left-aligned text table with a header and a rule under it."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    def line(cells):
        return "  ".join(f"{str(c):<{w}}" for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def executions_table(executions, metrics: dict[str, backtest_pb2.Metrics] | None = None) -> str:
    """`stratexec list`: one row per execution, newest first as the server sends them; ``metrics`` by execution id."""
    metrics = metrics or {}
    rows = []
    for e in executions:
        created = e.created_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if e.HasField("created_at") else ""
        elapsed = ""
        if e.HasField("completed_at") and e.HasField("created_at"):
            elapsed = f"{(e.completed_at.ToDatetime() - e.created_at.ToDatetime()).total_seconds():.1f}s"
        m = metrics.get(e.id)
        figures = ([f"{m.total_return:+.2f}%", f"{m.sharpe_ratio:.2f}" if m.HasField("sharpe_ratio") else "n/a",
                    str(m.trades)] if m else ["", "", ""])
        rows.append([e.id, e.name, status_name(e.status), created, elapsed, ",".join(e.params.symbols),
                     f"{e.params.start_date}..{e.params.end_date}", e.params.timeframe, *figures, strategy_summary(e)])
    return table(["ID", "NAME", "STATUS", "CREATED (UTC)", "TOOK", "SYMBOLS", "RANGE", "TF", "RETURN", "SHARPE", "TRADES",
                  "STRATEGY"], rows)


def strategy_summary(execution: execution_pb2.Execution, width: int = 60) -> str:
    """The analysis' one-line summary of the rules (after the symbols and dates the row already shows)."""
    text = execution.insights.summary.split(": ", 1)[-1]
    return text if len(text) <= width else text[:width - 1] + "…"


def analysis_lines(execution: execution_pb2.Execution) -> list[str]:
    """How every rule was read (its formula), then every warning: what a person checks before trusting a number."""
    lines = []
    rules = execution.insights.interpretation
    if rules:
        width = max(len(r.node_id) for r in rules)
        lines.append("Interpretation")
        lines += [f"  {r.node_id:<{width}}  {r.formula or r.interpretation}"
                  + (f'  (a language model\'s reading of "{r.rule}")' if r.interpreted_by_model else "") for r in rules]
    warnings = list(execution.insights.warnings)
    if warnings:
        lines.append("Warnings")
        lines += [f"  ! {w}" for w in warnings]
    return lines
