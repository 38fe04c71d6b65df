"""Fixtures of the codegen tests: compiling, loading generated scripts, a real server."""
from __future__ import annotations

import importlib.util
import pathlib
import sys
import uuid

import grpc
import pytest
from google.protobuf import struct_pb2

from services.codegen import compiler, emit
from services.common.config import project_root
from services.stack import start_service, wait_serving
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2_grpc
from stratexec_runtime import load_prices

ROOT = project_root()
BTC_CSV = ROOT / "data" / "ohlcv" / "BTC-USD.csv"
DATA_DIR = ROOT / "data" / "ohlcv"

EXAMPLE = {
    "nodes": [
        {"id": "entry", "type": "entry_condition", "meta": {"rules": ["Enter on a 5% price drop from the 20-day moving average"]}},
        {"id": "tp", "type": "take_profit", "meta": {"target_pct": 7.0}},
        {"id": "sl", "type": "stop_loss", "meta": {"stop_pct": 5.0}},
    ]
}


def params(**fields) -> backtest_pb2.BacktestParams:
    return backtest_pb2.BacktestParams(**fields)


def generate(doc: dict, p: backtest_pb2.BacktestParams | None = None) -> tuple[str, compiler.Analysis]:
    analysis = compiler.analyze(doc, p)
    return emit.emit(analysis), analysis


def load_script(code: str, directory: pathlib.Path):
    """Import generated code as a module (to call its signals() function)."""
    path = directory / f"strategy_{uuid.uuid4().hex}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop(path.stem, None)
    return module


def struct(doc: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(doc)
    return s


@pytest.fixture(scope="session")
def btc_bars():
    """BTC-USD daily bars 2019-01-01..2024-12-31 from the bundled data."""
    return load_prices(str(BTC_CSV), ["BTC-USD"], "2019-01-01", "2024-12-31")["BTC-USD"]


@pytest.fixture(scope="module")
def codegen_server(tmp_path_factory):
    """A real codegen service process on a free port."""
    run_dir = tmp_path_factory.mktemp("codegen-run")
    svc = start_service("codegen", run_dir, 0, env={"STRATEXEC_INTERNAL_TOKEN": ""})
    try:
        wait_serving(svc.address, 60, svc.proc, svc.log_path)
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def codegen_stub(codegen_server):
    with grpc.insecure_channel(codegen_server.address) as channel:
        yield codegen_pb2_grpc.CodegenServiceStub(channel)
