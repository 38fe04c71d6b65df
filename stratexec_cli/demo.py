"""`make demo`: the example strategy on BTC for 2024, end to end, offline."""
from __future__ import annotations

import pathlib
import sys

from services.common.config import project_root
from stratexec.backtest.v1 import backtest_pb2
from stratexec_cli import render
from stratexec_cli.client import Client, ClientError, load_schema
from stratexec_cli.main import watch


def main() -> int:
    root = project_root()
    strategy_path = root / "examples" / "strategy.json"
    client = Client()
    params = backtest_pb2.BacktestParams(symbols=["BTC"], start_date="2024-01-01", end_date="2024-12-31")
    print(f"Submitting {strategy_path.relative_to(root)} for BTC, 2024-01-01..2024-12-31 to {client.address}")
    try:
        execution = client.execute(load_schema(str(strategy_path)), params)
        print(f"execution {execution.id}\n")
        status = watch(client, execution.id, as_json=False)
        if status != "completed":
            print(f"\nexecution ended {status}: {client.get(execution.id).error_message}", file=sys.stderr)
            return 1
        reply = client.results(execution.id)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    for line in render.analysis_lines(client.get(execution.id)):
        print(line)
    print("Metrics")
    print(render.metrics_table(reply.result))
    venv_bin = pathlib.Path(sys.executable).parent
    eid = execution.id
    print(f"""
Execution id: {eid}
  generated code:  {venv_bin}/stratexec code {eid}
  results:         {venv_bin}/stratexec results {eid}
  with grpcurl:    {venv_bin}/grpcurl -plaintext -emit-defaults -d '{{"execution_id": "{eid}"}}' {client.address} stratexec.orchestrator.v1.ExecutionService/GetBacktestResults
                   {venv_bin}/grpcurl -plaintext -d '{{"execution_id": "{eid}"}}' {client.address} stratexec.orchestrator.v1.ExecutionService/GetGeneratedCode
The services keep running; `make down` stops them.""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
