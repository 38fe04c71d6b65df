"""The public DatasetService: a user's own daily bars, uploaded in chunks, checked
(services/orchestrator/datasets.py), stored in SQL in one transaction, listed and
deleted; and the lookup that attaches them to the sandbox's requests."""
from __future__ import annotations

import asyncio

import grpc

from services.common import errors
from services.orchestrator import convert, datasets
from services.orchestrator.db.repository import Repository
from services.orchestrator.identity import Identity
from stratexec.orchestrator.v1 import dataset_pb2, dataset_pb2_grpc
from stratexec.sandbox.v1 import sandbox_pb2

PREFIX = "@"  # a symbol naming an uploaded dataset: "@MINE"
MAX_REQUEST_BARS_BYTES = 24 * 1024 * 1024  # the uploaded bars one backtest may carry (a gRPC message is at most 32 MiB)


def to_proto(row) -> dataset_pb2.Dataset:
    return dataset_pb2.Dataset(name=row.name, symbol=PREFIX + row.name, bars=row.bars, first_date=row.first_date,
                               last_date=row.last_date, has_adj_close=bool(row.has_adj_close), sha256=row.sha256,
                               created_at=convert.timestamp(row.created_at))


def uploads_for(repo: Repository, user_id: str, symbols) -> list[sandbox_pb2.UploadedBars]:
    """The bars of every "@NAME" among ``symbols`` (the traded ones and the benchmark); NOT_FOUND,
    naming the field, for a dataset the user does not have. Blocking."""
    wanted: dict[str, str] = {}  # name -> the first field that names it
    for field, symbol in symbols:
        if symbol.strip().startswith(PREFIX):
            wanted.setdefault(symbol.strip().upper()[1:], field)
    found = repo.datasets_named(user_id, wanted)
    for name, field in wanted.items():
        if name not in found:
            message = f"no dataset named {name!r}: upload it first (stratexec data upload FILE --name {name})"
            raise errors.ApiError(grpc.StatusCode.NOT_FOUND, message, reason="DATASET_NOT_FOUND",
                                  metadata={"dataset": name}, violations=[(field, message)])
    size = sum(len(row.csv) for row in found.values())
    if size > MAX_REQUEST_BARS_BYTES:
        raise errors.invalid_argument(
            f"the uploaded datasets of this backtest hold {size / 2**20:.1f} MiB of bars; at most "
            f"{MAX_REQUEST_BARS_BYTES // 2**20} MiB in one backtest", [("params.symbols", "fewer or shorter datasets")])
    return [sandbox_pb2.UploadedBars(symbol=PREFIX + row.name, csv=row.csv, sha256=row.sha256) for row in found.values()]


def param_symbols(params) -> list[tuple[str, str]]:
    """(field, symbol) of the traded symbols and the benchmark."""
    return [(f"params.symbols[{i}]", s) for i, s in enumerate(params.symbols)] + [("params.benchmark", params.benchmark)]


def _name(raw: str) -> str:
    name, problem = datasets.dataset_name(raw)
    if problem:
        raise errors.invalid_argument(f"dataset name {raw!r}: {problem}", [("name", problem)])
    return name


class DatasetServicer(dataset_pb2_grpc.DatasetServiceServicer):
    def __init__(self, identity: Identity, repo: Repository):
        self.identity = identity
        self.repo = repo

    async def UploadDataset(self, request_iterator, context):
        user = self.identity.user(context)
        first, chunks, size = None, [], 0
        async for request in request_iterator:
            first = first or request
            size += len(request.chunk)
            if size > datasets.MAX_UPLOAD_BYTES:
                raise errors.invalid_argument(
                    f"the file is over {datasets.MAX_UPLOAD_BYTES // 2**20} MiB", [("chunk", "the file is too large")])
            chunks.append(request.chunk)
        if first is None:
            raise errors.invalid_argument("an upload needs at least one message", [("name", "must not be empty")])
        name = _name(first.name)
        parquet = {dataset_pb2.DATASET_FORMAT_CSV: False, dataset_pb2.DATASET_FORMAT_PARQUET: True}.get(first.format)
        try:
            checked = await asyncio.to_thread(datasets.check, b"".join(chunks), parquet)
        except datasets.DatasetRejected as exc:
            raise errors.invalid_argument(f"dataset {name}: {exc}", exc.problems, reason="DATASET_REJECTED") from None
        row = await asyncio.to_thread(self.repo.put_dataset, user, name, checked, first.replace)
        if row is None:
            raise errors.name_taken("dataset", name)
        return dataset_pb2.UploadDatasetResponse(dataset=to_proto(row))

    async def ListDatasets(self, request, context):
        rows = await asyncio.to_thread(self.repo.list_datasets, self.identity.user(context))
        return dataset_pb2.ListDatasetsResponse(datasets=[to_proto(r) for r in rows])

    async def DeleteDataset(self, request, context):
        user = self.identity.user(context)
        name = _name(request.name)
        if not await asyncio.to_thread(self.repo.delete_dataset, user, name):
            raise errors.not_found("dataset", name)
        return dataset_pb2.DeleteDatasetResponse()
