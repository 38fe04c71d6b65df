"""stratexec: the command-line client of the orchestrator.

    stratexec run strategy.json --symbols BTC --start 2024-01-01 --end 2024-12-31 --watch
    stratexec explain strategy.json [--codegen ADDR]   (every rule as a formula, before anything runs)
    stratexec status|code|results|watch|cancel ID
    stratexec list [--page-size N] [--page-token TOKEN]
    stratexec report ID [--html FILE]     (default FILE: report-<ID>.html)
    stratexec trades|equity ID [--csv FILE]   (CSV; standard output without FILE)
    stratexec compare ID ID ... [--html FILE] (metrics side by side, equity overlay chart)
    stratexec data upload FILE [--name N] [--replace] | data list | data delete NAME   (your bars, traded as @NAME)
    stratexec run strategy.json --data mine.csv ...   (uploads mine.csv as @MINE and trades it)
    stratexec indicators save NAME EXPRESSION [--replace] | indicators list | indicators delete NAME
    stratexec optimize strategy.json --symbols BTC --param entry.window=10:60:5 --param tp.target_pct=4,7,10 \
        [--walk-forward 5] [--objective sharpe_ratio] [--min-trades N] [--max-drawdown PCT] [--no-watch]

On a terminal, `run --watch` and `watch` show one live status line (status,
elapsed time, latest agent step) and keep each status change as a line of
its own; when the output is not a terminal they print one plain line per
event. `--json` (before or after the command) prints JSON instead: one
event per line while watching (`run --watch --json` ends with the results
as one more line), one document otherwise.

Exit status: 0 on success; 1 when a watched execution ends failed or
cancelled; 2 on an error (bad input, unknown id, server unreachable),
reported as one line on stderr; 130 when interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from google.protobuf import json_format

from services.common import backtest_params
from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli import live, render
from stratexec_cli.client import DEFAULT_ADDR, Client, ClientError, StrategyFileError, load_schema


def _symbols(values: list[str] | None) -> list[str]:
    """`--symbols BTC ETH`, `--symbols BTC,ETH` and mixtures of both."""
    return [s.strip() for value in values or [] for s in value.split(",") if s.strip()]


FLAGS = {"start_date": "--start", "end_date": "--end"}  # the rest: --<field-name-with-dashes>


def param_flag(field: str) -> str:
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def add_param_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per backtest parameter, its help from the parameters' one home (units, accepted values, default)."""
    group = parser.add_argument_group("backtest parameters (left out: the server's default, printed when applied)")
    for name, text in backtest_params.descriptions().items():
        field = backtest_pb2.BacktestParams.DESCRIPTOR.fields_by_name[name]
        if field.is_repeated:
            group.add_argument(param_flag(name), dest=name, nargs="+", metavar="SYMBOL",
                               help=f"{text}; BTC ETH or BTC,ETH".replace("%", "%%"))
        else:
            kind = float if field.cpp_type == field.CPPTYPE_DOUBLE else str
            group.add_argument(param_flag(name), dest=name, type=kind, help=text.replace("%", "%%"))  # argparse formats help


def _params(args) -> backtest_pb2.BacktestParams:
    params = backtest_pb2.BacktestParams()
    for name in backtest_params.descriptions():
        value = getattr(args, name, None)
        if value is None:
            continue
        if name == "symbols":
            params.symbols.extend(_symbols(value))
        else:
            setattr(params, name, value)
    return params


COST_WARNING = 0.01  # fees or slippage above 1% per side are almost always a unit mistake (0.1 meaning 0.1%)


def cost_warnings(params: backtest_pb2.BacktestParams) -> list[str]:
    """Warnings for costs that look like percentages given as fractions."""
    return [f"warning: --{name} {value:g} is {value * 100:g}% per trade (a fraction: 0.001 is 0.1%)"
            for name in ("fees", "slippage") if (value := getattr(params, name)) > COST_WARNING]


def applied_defaults(sent: backtest_pb2.BacktestParams, used: backtest_pb2.BacktestParams) -> str:
    """One line naming the values the server chose for what the request left out."""
    parts = []
    for field in backtest_params.descriptions():
        given = sent.HasField(field) if sent.DESCRIPTOR.fields_by_name[field].has_presence else getattr(sent, field)
        if not given:
            value = getattr(used, field)
            shown = ",".join(value) if field == "symbols" else f"{value:g}" if isinstance(value, float) else value
            parts.append(f"{param_flag(field)} {shown}")
    return f"defaults applied: {' '.join(parts)}" if parts else ""


def _json(message, one_line: bool = False) -> str:
    """Every field, zero values included (the JSON contract: docs/cli.md)."""
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=None if one_line else 2,
                                     always_print_fields_with_no_presence=True)


def _json_list(messages) -> str:
    """A JSON array of messages, every field of each."""
    return json.dumps([json.loads(_json(m, one_line=True)) for m in messages])


def watch(client: Client, execution_id: str, as_json: bool, out=None, live_line: bool | None = None) -> str:
    """Print events as they stream; returns the final status name.

    ``live_line`` None means: a live status line when ``out`` is a terminal
    and the output is not JSON, plain lines otherwise.
    """
    out = out or sys.stdout
    if live_line is None:
        live_line = not as_json and _isatty(out)
    if live_line:
        return live.follow(client.watch(execution_id), out)
    status = ""
    for event in client.watch(execution_id):
        status = render.status_name(event.status)
        if as_json:
            print(_json(event, one_line=True), file=out, flush=True)
        else:
            line = render.event_line(event)
            if line:
                print(line, file=out, flush=True)
    return status


def _isatty(out) -> bool:
    try:
        return out.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def show_results(client: Client, execution_id: str, as_json: bool, one_line: bool = False) -> None:
    reply = client.results(execution_id)
    if as_json:
        print(_json(reply, one_line))
        return
    for line in render.analysis_lines(client.get(execution_id)):
        print(line)
    print("Metrics")
    print(render.metrics_table(reply.result))


def _finished(client: Client, execution_id: str, status: str, as_json: bool) -> int:
    """After a watch: the results when completed (exit 0), else the error on stderr (exit 1)."""
    if status == "completed":
        show_results(client, execution_id, as_json, one_line=True)  # after JSON lines of events: one more line
        return 0
    final = client.get(execution_id)
    print(f"execution {render.status_name(final.status)}: {final.error_message or status}", file=sys.stderr)
    return 1


def write_report(client: Client, execution_id: str, path: str | None, prices: str | None, as_json: bool) -> int:
    from stratexec_cli import report  # plotly is slow to import: only for this command

    execution = client.get(execution_id)
    reply = client.results(execution_id)
    optimization = client.optimization(execution_id, page_size=20) \
        if execution.kind == execution_pb2.EXECUTION_KIND_OPTIMIZATION else None
    built = report.render_html(execution, reply, prices, optimization)
    target = report.write_report(path or f"report-{execution_id}.html", built)
    if as_json:
        print(json.dumps({"execution_id": execution_id, "html": str(target), "bytes": target.stat().st_size,
                          "trades": len(reply.result.trades), "trades_on": built.trades_on, "notes": built.notes}))
    else:
        print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB, self-contained; open it in a browser)")
        for note in built.notes:
            print(f"note: {note}")
    return 0


def export_command(client: Client, args) -> int:
    """`trades ID [--csv [FILE]]` and `equity ID [--csv [FILE]]`."""
    from stratexec_cli import export

    result = client.results(args.execution_id).result
    if args.json:
        rows = result.trades if args.command == "trades" else result.equity
        print(_json_list(rows))
        return 0
    text = export.trades_csv(result) if args.command == "trades" else export.equity_csv(result)
    if args.csv and args.csv != "-":
        pathlib.Path(args.csv).write_text(text, encoding="utf-8")
        print(f"wrote {args.csv} ({text.count(chr(10)) - 1} rows)")
    else:
        print(text, end="")
    return 0


def compare_command(client: Client, args) -> int:
    from stratexec_cli import export

    results = [client.results(execution_id).result for execution_id in args.execution_ids]
    labels = [client.get(execution_id).name or execution_id[:8] for execution_id in args.execution_ids]
    if args.json:
        print(json.dumps({eid: json.loads(_json(r.metrics, one_line=True)) for eid, r in zip(args.execution_ids, results)}))
        return 0
    print(export.compare_table(labels, results))
    target = export.compare_html(labels, results, args.html or "compare.html")
    print(f"\nwrote {target} (equity curves rebased to 100; open it in a browser)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratexec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addr", default=DEFAULT_ADDR, help=f"orchestrator address (default {DEFAULT_ADDR}; env STRATEXEC_ADDR)")
    parser.add_argument("--user", help="user id sent as x-user-id")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    # --json is accepted after the command too; SUPPRESS keeps a global --json from being reset.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", parents=[common], help="execute a strategy file",
                         description="Execute a strategy file; with --watch, follow it and print its metrics.")
    run.add_argument("strategy", help="strategy JSON file")
    add_param_flags(run)
    run.add_argument("--request-id", help="idempotency key (default: a new one)")
    run.add_argument("--name", default="", help="a name for the execution, shown by list, status, compare and report")
    run.add_argument("--data", metavar="FILE", help="your daily bars (CSV or Parquet): uploaded as the dataset named after "
                                                    "the file (replacing one of that name) and traded as @NAME, with --symbols")
    run.add_argument("--accept-interpreted-rules", action="store_true",
                     help="with a language model configured on the server: run its reading of a rule the grammar "
                          "does not understand (shown as the model's) instead of failing with the proposal")
    run.add_argument("--watch", action="store_true", help="follow the execution, then show its results")
    opt = sub.add_parser("optimize", parents=[common], help="sweep parameters, walk forward, and test the winner",
                         description="Research mode: backtest every combination of the parameter ranges (named as "
                                     "`stratexec explain` lists them), run a walk-forward test, and report the best "
                                     "combination with its Deflated Sharpe Ratio (against every trial in your ledger) "
                                     "and the probability of backtest overfitting. Follows the execution, then prints "
                                     "the results (--no-watch: print the id and return).")
    opt.add_argument("strategy", help="strategy JSON file")
    add_param_flags(opt)
    opt.add_argument("--param", action="append", default=[], metavar="NAME=SPEC", required=True,
                     help="a range: NAME=START:STOP:STEP (stop included) or NAME=V1,V2,...; repeat for each parameter")
    opt.add_argument("--objective", default="", help="sharpe_ratio (default), total_return, cagr, calmar or sortino")
    opt.add_argument("--min-trades", type=int, default=0, help="the best must have at least this many closed trades")
    opt.add_argument("--max-drawdown", type=float, help="the best must not draw down more than this many percent")
    opt.add_argument("--walk-forward", type=int, default=0, metavar="SEGMENTS", help="walk-forward segments (0: none)")
    opt.add_argument("--in-sample", type=float, default=0.0, metavar="FRACTION",
                     help="share of each walk-forward segment in sample (default 0.75)")
    opt.add_argument("--top", type=int, default=10, help="combinations to list, best first (default 10)")
    opt.add_argument("--request-id", help="idempotency key (default: a new one)")
    opt.add_argument("--name", default="", help="a name for the execution")
    opt.add_argument("--no-watch", action="store_true", help="print the execution id and return at once")
    explainer = sub.add_parser("explain", parents=[common], help="print every rule's interpretation as a formula, before anything runs",
                               description="Analyse a strategy file (in this process, or with --codegen ADDR by the "
                                           "running CodegenService) and print each rule's formula and meaning.")
    explainer.add_argument("strategy", help="strategy JSON file")
    add_param_flags(explainer)
    explainer.add_argument("--codegen", metavar="ADDR", help="ask the CodegenService at ADDR instead of analysing locally")
    helps = {"status": "show an execution's status", "code": "print the generated script",
             "results": "print the backtest metrics", "watch": "follow an execution's events until it ends",
             "cancel": "stop a queued or running execution"}
    for name, text in helps.items():
        sub.add_parser(name, parents=[common], help=text).add_argument("execution_id")
    for name, text in (("trades", "the trades of a completed execution"), ("equity", "its equity and benchmark per bar")):
        exporter = sub.add_parser(name, parents=[common], help=f"print {text} (--csv: as CSV)")
        exporter.add_argument("execution_id")
        exporter.add_argument("--csv", metavar="FILE", nargs="?", const="-", help="CSV to FILE (default: standard output)")
    comparer = sub.add_parser("compare", parents=[common], help="metrics of several executions side by side",
                              description="Print the metrics of completed executions side by side and write an "
                                          "overlay chart of their equity curves.")
    comparer.add_argument("execution_ids", nargs="+", metavar="ID")
    comparer.add_argument("--html", metavar="FILE", help="where to write the overlay chart (default: compare.html)")
    data = sub.add_parser("data", parents=[common], help="your own daily bars: upload, list, delete",
                          description="Datasets of your own daily bars (date, open, high, low, close, volume, optional "
                                      "adj_close), checked bar by bar at upload and traded as @NAME next to the bundled "
                                      "symbols.")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    upload = data_sub.add_parser("upload", parents=[common], help="upload a CSV or Parquet file")
    upload.add_argument("file")
    upload.add_argument("--name", help="the dataset's name (default: the file's name without its extension)")
    upload.add_argument("--replace", action="store_true", help="overwrite a dataset of the same name")
    data_sub.add_parser("list", parents=[common], help="list your datasets")
    data_sub.add_parser("delete", parents=[common], help="delete a dataset").add_argument("name")
    indicators = sub.add_parser("indicators", parents=[common], help="your saved custom indicators: save, list, delete",
                                description="Custom indicators saved once and used by name in the rules of later "
                                            "strategies (\"Enter when my_osc crosses above 1.5\").")
    ind_sub = indicators.add_subparsers(dest="indicators_command", required=True)
    save = ind_sub.add_parser("save", parents=[common], help="save an indicator (its expression is compiled first)")
    save.add_argument("name")
    save.add_argument("expression", help='such as "(close - sma(close, 10)) / atr(14)"')
    save.add_argument("--replace", action="store_true", help="overwrite a saved indicator of the same name")
    ind_sub.add_parser("list", parents=[common], help="list your saved indicators")
    ind_sub.add_parser("delete", parents=[common], help="delete a saved indicator").add_argument("name")
    lister = sub.add_parser("list", parents=[common], help="list your executions, newest first")
    lister.add_argument("--page-size", type=int, default=20)
    lister.add_argument("--page-token", default="")
    rep = sub.add_parser("report", parents=[common], help="write an interactive HTML report of a completed execution",
                         description="Write a self-contained HTML report (plotly.js embedded, works offline): metrics, "
                                     "the strategy's interpretation, equity against the benchmark, drawdown, and the "
                                     "trades marked on the price (on the equity curve when the backtest's prices were "
                                     "not the bundled ones).")
    rep.add_argument("execution_id")
    rep.add_argument("--html", metavar="FILE", help="where to write the report (default: report-<ID>.html in the current directory)")
    rep.add_argument("--prices", metavar="DIR", help="directory of <SYMBOL>.csv daily prices, read for any provider "
                                                     "(such as @NAME.csv for your own data; default: the bundled files, "
                                                     "$SANDBOX_BUNDLED_DIR or the project's data/ohlcv)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    client = Client(args.addr, args.user)
    try:
        return _dispatch(client, args)
    except (ClientError, DataFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        client.channel.close()
        hint = f"; follow it again with: stratexec watch {args.execution_id}" if getattr(args, "execution_id", None) else ""
        print(f"\ninterrupted (the execution keeps running){hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `stratexec list | head`: the reader left; nothing to report.
        sys.stderr.close()
        return 0


class DataFileError(ValueError):
    """A data file that cannot be read, said in one line."""


def _upload(client: Client, path: str, name: str | None, replace: bool):
    file = pathlib.Path(path)
    try:
        content = file.read_bytes()
    except OSError as exc:
        raise DataFileError(f"cannot read {path}: {exc.strerror}") from None
    return client.upload_dataset(content, name or file.stem, replace)


def data_command(client: Client, args) -> int:
    """`data upload FILE [--name N] [--replace]`, `data list`, `data delete NAME`."""
    if args.data_command == "upload":
        dataset = _upload(client, args.file, args.name, args.replace)
        print(_json(dataset) if args.json else
              f"{dataset.symbol}  {dataset.bars} bars  {dataset.first_date}..{dataset.last_date}  sha256 {dataset.sha256[:12]}")
    elif args.data_command == "list":
        datasets = client.list_datasets()
        if args.json:
            print(_json_list(datasets))
        elif not datasets:
            print("no datasets (stratexec data upload FILE)")
        else:
            print(render.table(["SYMBOL", "BARS", "FIRST", "LAST", "ADJ_CLOSE", "SHA256"],
                               [[d.symbol, str(d.bars), d.first_date, d.last_date, "yes" if d.has_adj_close else "no",
                                 d.sha256[:12]] for d in datasets]))
    else:
        client.delete_dataset(args.name)
        if not args.json:
            print(f"deleted @{args.name.removeprefix('@').upper()}")
    return 0


def indicators_command(client: Client, args) -> int:
    """`indicators save NAME EXPRESSION [--replace]`, `indicators list`, `indicators delete NAME`."""
    if args.indicators_command == "save":
        saved = client.save_indicator(args.name, args.expression, args.replace)
        print(_json(saved) if args.json else f"saved {saved.name} = {saved.expression}")
    elif args.indicators_command == "list":
        saved = client.list_indicators()
        if args.json:
            print(_json_list(saved))
        else:
            print(render.table(["NAME", "EXPRESSION"], [[s.name, s.expression] for s in saved]) if saved else
                  "no saved indicators (stratexec indicators save NAME EXPRESSION)")
    else:
        client.delete_indicator(args.name)
        if not args.json:
            print(f"deleted {args.name}")
    return 0


def optimize_command(client: Client, args) -> int:
    from stratexec_cli import optimize
    try:
        schema = load_schema(args.strategy)
        ranges = [optimize.parse_param(text) for text in args.param]
    except (StrategyFileError, optimize.ParamSpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    params = _params(args)
    options = {"objective": args.objective, "min_trades": args.min_trades, "walk_forward_segments": args.walk_forward,
               "in_sample_fraction": args.in_sample}
    if args.max_drawdown is not None:
        options["max_drawdown"] = args.max_drawdown
    execution = client.optimize(schema, params, ranges, args.request_id, args.name, **options)
    if args.no_watch:
        print(_json(execution) if args.json else execution.id)
        return 0
    args.execution_id = execution.id
    if not args.json:
        print(f"execution {execution.id}", flush=True)
    status = watch(client, execution.id, args.json)
    if status != "completed":
        return _finished(client, execution.id, status, args.json)
    reply = client.optimization(execution.id, page_size=args.top)
    if args.json:
        print(_json(reply, one_line=True))
        return 0
    print("\n".join(optimize.summary_lines(reply)))
    print(f"\nThe best combination's backtest: stratexec results {execution.id}  (its script: stratexec code "
          f"{execution.id})\nHeatmap, walk-forward and statistics: stratexec report {execution.id} --html")
    return 0


def _dispatch(client: Client, args) -> int:
    if args.command == "explain":
        from stratexec_cli import explain

        try:
            analysis = explain.analyze(load_schema(args.strategy), _params(args), args.codegen)
        except (StrategyFileError, explain.ExplainError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(explain.as_json(analysis) if args.json else explain.render(analysis))
        return 0
    if args.command == "run":
        try:
            schema = load_schema(args.strategy)
        except StrategyFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        params = _params(args)
        if args.data:
            dataset = _upload(client, args.data, None, replace=True)
            params.symbols.append(dataset.symbol)
            if not args.json:
                print(f"uploaded {args.data} as {dataset.symbol} ({dataset.bars} bars, {dataset.first_date}.."
                      f"{dataset.last_date})", flush=True)
        for warning in cost_warnings(params):
            print(warning, file=sys.stderr)
        execution = client.execute(schema, params, args.request_id, args.name,
                                   accept_interpreted_rules=args.accept_interpreted_rules)
        if not args.watch:
            print(_json(execution) if args.json else execution.id)
            return 0
        args.execution_id = execution.id
        if not args.json:
            print(f"execution {execution.id}", flush=True)
            if line := applied_defaults(params, execution.params):
                print(line, flush=True)
        status = watch(client, execution.id, args.json)
        return _finished(client, execution.id, status, args.json)
    if args.command == "optimize":
        return optimize_command(client, args)
    if args.command == "status":
        execution = client.get(args.execution_id)
        if args.json:
            print(_json(execution))
        else:
            print("  ".join(filter(None, [execution.id, render.status_name(execution.status), execution.name and repr(execution.name),
                                          execution.error_message])))
            for line in render.analysis_lines(execution):
                print(line)
    elif args.command == "code":
        reply = client.code(args.execution_id)
        print(_json(reply) if args.json else reply.code, end="" if not args.json else "\n")
    elif args.command == "results":
        show_results(client, args.execution_id, args.json)
    elif args.command == "watch":
        client.get(args.execution_id)  # an unknown id fails here with NOT_FOUND, before any output
        status = watch(client, args.execution_id, args.json)
        if status != "completed" and not args.json:
            final = client.get(args.execution_id)
            print(f"execution {render.status_name(final.status)}: {final.error_message or status}", file=sys.stderr)
        return 0 if status == "completed" else 1
    elif args.command == "cancel":
        execution = client.cancel(args.execution_id)
        print(_json(execution) if args.json else render.status_name(execution.status))
    elif args.command == "list":
        reply = client.list(args.page_size, args.page_token)
        if args.json:
            print(_json(reply))
        elif not reply.executions:
            print("no executions")
        else:
            done = [e.id for e in reply.executions if e.status == execution_pb2.EXECUTION_STATUS_COMPLETED]
            print(render.executions_table(reply.executions, {eid: client.results(eid).result.metrics for eid in done}))
            if reply.next_page_token:
                print(f"\nmore: stratexec list --page-token {reply.next_page_token}")
    elif args.command in ("trades", "equity"):
        return export_command(client, args)
    elif args.command == "data":
        return data_command(client, args)
    elif args.command == "indicators":
        return indicators_command(client, args)
    elif args.command == "compare":
        return compare_command(client, args)
    elif args.command == "report":
        return write_report(client, args.execution_id, args.html, args.prices, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
