"""Which uploaded bars a backtest carries to the sandbox: the datasets its symbols name, once each, within a size
that fits one gRPC message."""
from __future__ import annotations

import pytest

from services.common.errors import ApiError
from services.orchestrator import dataset_service, datasets
from services.orchestrator.db.repository import Repository

BARS = b"date,open,high,low,close,volume\n" + b"".join(
    f"2024-01-{d:02d},10,12,9,11,100\n".encode() for d in range(1, 29))


def test_the_named_datasets_travel_once_each_and_too_many_bars_are_refused(database_url, monkeypatch):
    repo = Repository(database_url)
    repo.put_dataset("u", "MINE", datasets.check(BARS), replace=False)
    uploads = dataset_service.uploads_for(repo, "u", [("params.symbols[0]", "@mine"), ("params.benchmark", "@MINE")])
    assert [(u.symbol, u.csv) for u in uploads] == [("@MINE", datasets.check(BARS).csv)]
    assert dataset_service.uploads_for(repo, "u", [("params.symbols[0]", "BTC")]) == []

    monkeypatch.setattr(dataset_service, "MAX_REQUEST_BARS_BYTES", 100)
    with pytest.raises(ApiError) as caught:
        dataset_service.uploads_for(repo, "u", [("params.symbols[0]", "@MINE")])
    assert caught.value.code.name == "INVALID_ARGUMENT" and caught.value.violations[0][0] == "params.symbols"
