"""stratexec: the command-line client.

    stratexec run strategy.json --symbols BTC --start 2024-01-01 --end 2024-12-31 --watch
    stratexec status|code|results|watch|cancel ID
    stratexec list
"""
from __future__ import annotations

import argparse
import json
import sys

from google.protobuf import json_format

from stratexec.backtest.v1 import backtest_pb2
from stratexec_cli import render
from stratexec_cli.client import DEFAULT_ADDR, Client, ClientError, load_schema


def _params(args) -> backtest_pb2.BacktestParams:
    params = backtest_pb2.BacktestParams(
        symbols=args.symbols or [], timeframe=args.timeframe or "", start_date=args.start or "",
        end_date=args.end or "", benchmark=args.benchmark or "")
    for field in ("initial_capital", "fees", "slippage", "exposure"):
        value = getattr(args, field)
        if value is not None:
            setattr(params, field, value)
    return params


def _json(message) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True)


def watch(client: Client, execution_id: str, as_json: bool, out=sys.stdout) -> str:
    """Print events as they stream; returns the final status name."""
    status = ""
    for event in client.watch(execution_id):
        status = render.status_name(event.status)
        if as_json:
            print(json_format.MessageToJson(event, indent=None, preserving_proto_field_name=True), file=out, flush=True)
        else:
            line = render.event_line(event)
            if line:
                print(line, file=out, flush=True)
    return status


def show_results(client: Client, execution_id: str, as_json: bool) -> None:
    reply = client.results(execution_id)
    print(_json(reply) if as_json else render.metrics_table(reply.result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stratexec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addr", default=DEFAULT_ADDR, help=f"orchestrator address (default {DEFAULT_ADDR})")
    parser.add_argument("--user", help="user id sent as x-user-id")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute a strategy file")
    run.add_argument("strategy", help="strategy JSON file")
    run.add_argument("--symbols", nargs="+")
    run.add_argument("--timeframe")
    run.add_argument("--start")
    run.add_argument("--end")
    run.add_argument("--benchmark")
    run.add_argument("--initial-capital", dest="initial_capital", type=float)
    run.add_argument("--fees", type=float)
    run.add_argument("--slippage", type=float)
    run.add_argument("--exposure", type=float)
    run.add_argument("--request-id", help="idempotency key (default: a new one)")
    run.add_argument("--watch", action="store_true", help="follow the execution, then show its results")
    for name in ("status", "code", "results", "watch", "cancel"):
        sub.add_parser(name).add_argument("execution_id")
    sub.add_parser("list")
    args = parser.parse_args(argv)
    client = Client(args.addr, args.user)
    try:
        if args.command == "run":
            execution = client.execute(load_schema(args.strategy), _params(args), args.request_id)
            if not args.watch:
                print(_json(execution) if args.json else execution.id)
                return 0
            if not args.json:
                print(f"execution {execution.id}")
            status = watch(client, execution.id, args.json)
            if status == "completed":
                show_results(client, execution.id, args.json)
                return 0
            final = client.get(execution.id)
            print(final.error_message or status, file=sys.stderr)
            return 1
        if args.command == "status":
            execution = client.get(args.execution_id)
            print(_json(execution) if args.json else f"{execution.id}  {render.status_name(execution.status)}  "
                  f"{execution.error_message}")
        elif args.command == "code":
            reply = client.code(args.execution_id)
            print(_json(reply) if args.json else reply.code, end="" if not args.json else "\n")
        elif args.command == "results":
            show_results(client, args.execution_id, args.json)
        elif args.command == "watch":
            watch(client, args.execution_id, args.json)
        elif args.command == "cancel":
            execution = client.cancel(args.execution_id)
            print(_json(execution) if args.json else render.status_name(execution.status))
        elif args.command == "list":
            reply = client.list()
            if args.json:
                print(_json(reply))
            for e in reply.executions if not args.json else ():
                print(f"{e.id}  {render.status_name(e.status):<16} {e.created_at.ToDatetime():%Y-%m-%d %H:%M}  "
                      f"{','.join(e.params.symbols)} {e.params.start_date}..{e.params.end_date}")
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
