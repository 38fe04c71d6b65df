"""The in-memory mirror (services/memory/index.py) answers searches exactly
as embedded Qdrant does, stays in step with inserts, updates and deletes, and
is rebuilt from disk on restart. In-process, small random vectors: no model."""
from __future__ import annotations

import uuid

import numpy as np
import pytest
from mem0.vector_stores.qdrant import Qdrant

from services.memory.index import MirroredVectorStore, simple_filters

DIMS = 16


def make_store(path) -> Qdrant:
    return Qdrant(collection_name="t", embedding_model_dims=DIMS, path=str(path), on_disk=True)


@pytest.fixture
def stores(tmp_path):
    inner = make_store(tmp_path / "q")
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, DIMS)).tolist()
    payloads = [{"user_id": f"u{i % 3}", "data": f"memory {i}", "kind": ["a", "b", "c"][i % 4 % 3],
                 "n": i % 5, "flag": i % 2 == 0, "tags": [f"t{i % 7}", "all"]} for i in range(300)]
    ids = [str(uuid.uuid4()) for _ in range(300)]
    mirror = MirroredVectorStore(inner)
    mirror.insert(vectors=vectors[:150], payloads=payloads[:150], ids=ids[:150])
    inner.insert(vectors=vectors[150:], payloads=payloads[150:], ids=ids[150:])  # written behind the mirror's back
    mirror = MirroredVectorStore(inner)  # ... and picked up by a fresh load
    yield inner, mirror, rng, ids
    inner.client.close()


FILTERS = [
    {"user_id": "u0"},
    {"user_id": "u1", "kind": "a"},
    {"user_id": "u2", "kind": ["a", "c"]},
    {"user_id": "u0", "n": 3},
    {"user_id": "u1", "flag": True},
    {"user_id": "u2", "tags": "t3"},
    {"user_id": "u0", "tags": ["t1", "t2"]},
    {"user_id": "u0", "kind": "missing"},
    {"user_id": "nobody"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[str(f) for f in FILTERS])
def test_mirror_search_equals_qdrant_search(stores, filters):
    inner, mirror, rng, _ = stores
    assert simple_filters(filters)
    for _ in range(5):
        query = rng.normal(size=DIMS).tolist()
        expected = inner.search(query="q", vectors=query, top_k=10, filters=filters)
        got = mirror.search(query="q", vectors=query, top_k=10, filters=filters)
        assert [str(p.id) for p in got] == [str(p.id) for p in expected]
        assert [p.score for p in got] == pytest.approx([p.score for p in expected], abs=1e-5)
        assert [p.payload for p in got] == [p.payload for p in expected]


def test_mirror_follows_updates_and_deletes_and_survives_reload(stores, tmp_path):
    inner, mirror, rng, ids = stores
    target = ids[0]
    new_vector = rng.normal(size=DIMS).tolist()
    mirror.update(vector_id=target, vector=new_vector, payload={"user_id": "u9", "data": "moved", "kind": "z"})
    [hit] = mirror.search(query="q", vectors=new_vector, top_k=1, filters={"user_id": "u9"})
    assert str(hit.id) == target and hit.score == pytest.approx(1.0, abs=1e-5) and hit.payload["kind"] == "z"
    assert target not in {str(p.id) for p in mirror.search(query="q", vectors=new_vector, top_k=300, filters={"user_id": "u0"})}
    mirror.update(vector_id=target, payload={"tested": True})  # partial: payload merged, vector kept
    assert mirror.select({"user_id": "u9"})[0][1] == {"user_id": "u9", "data": "moved", "kind": "z", "tested": True}
    mirror.delete(vector_id=ids[1])
    assert ids[1] not in {i for i, _ in mirror.select({"user_id": "u1"})}
    assert len(mirror) == 299
    inner.client.close()
    reopened = MirroredVectorStore(make_store(tmp_path / "q"))
    assert len(reopened) == 299
    assert reopened.select({"user_id": "u9"})[0][1]["tested"] is True
    reopened.inner.client.close()


def test_unsupported_filter_shapes_go_to_qdrant(stores):
    inner, mirror, rng, _ = stores
    filters = {"user_id": "u0", "n": {"gte": 3}}
    assert not simple_filters(filters)
    query = rng.normal(size=DIMS).tolist()
    got = mirror.search(query="q", vectors=query, top_k=5, filters=filters)
    assert got and all(p.payload["n"] >= 3 and p.payload["user_id"] == "u0" for p in got)


def test_select_page_reads_one_page_in_created_order_after_a_key(tmp_path):
    """ListMemories' order (created_at, then id) cut to one page, against a plain sort of every point."""
    import datetime as dt

    from services.memory.records import parse_time

    inner = make_store(tmp_path / "q")
    rng = np.random.default_rng(3)
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    ids = [str(uuid.uuid4()) for _ in range(40)]
    payloads = [{"user_id": f"u{i % 2}", "data": f"m{i}",
                 "created_at": (base + dt.timedelta(minutes=int(rng.integers(0, 10)))).isoformat()} for i in range(40)]
    mirror = MirroredVectorStore(inner)
    mirror.insert(vectors=rng.normal(size=(40, DIMS)).tolist(), payloads=payloads, ids=ids)
    expected = sorted((parse_time(p["created_at"]), i) for i, p in zip(ids, payloads) if p["user_id"] == "u1")

    pages, after = [], None
    while True:
        page = mirror.select_page({"user_id": "u1"}, after, 6)
        pages.append([i for i, _ in page])
        if len(page) < 6:
            break
        after = (parse_time(page[-1][1]["created_at"]), page[-1][0])
    assert [i for chunk in pages for i in chunk] == [i for _, i in expected]
    assert len(pages[0]) == 6
    inner.client.close()
