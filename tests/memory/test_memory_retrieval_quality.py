"""Retrieval quality of the embedded default (all-MiniLM-L6-v2 on local
Qdrant): with 50 stored strategy patterns and 20 paraphrased queries, the
right pattern is in the top 3 for at least 90% of the queries. Prints the
figure (and every miss) whether or not the test passes."""
from __future__ import annotations

from tests.memory.memory_helpers import add, search
from tests.memory.retrieval_cases import PATTERNS, QUERIES

TOP_K = 3
REQUIRED = 0.90


def test_paraphrased_queries_find_the_right_pattern_in_the_top_3(stub, capsys):
    user = "quality-user"
    ids = {}
    for key, content in PATTERNS.items():
        [memory] = add(stub, user, content, kind="strategy_pattern", pattern=key)
        ids[memory.id] = key
    # another user's copies must not crowd the results
    for key, content in list(PATTERNS.items())[:10]:
        add(stub, "quality-other-user", content, kind="strategy_pattern", pattern=key)

    hits, ranks, misses = 0, [], []
    for query, expected in QUERIES:
        found = search(stub, user, query, limit=TOP_K, kind="strategy_pattern")
        keys = [ids[m.id] for m in found]
        assert {m.user_id for m in found} == {user}
        if expected in keys:
            hits += 1
            ranks.append(keys.index(expected) + 1)
        else:
            misses.append(f"  miss: {query!r} -> expected {expected}, got {keys}")
    rate = hits / len(QUERIES)
    top1 = ranks.count(1)
    with capsys.disabled():
        print(f"\nretrieval quality: {hits}/{len(QUERIES)} = {rate:.0%} of paraphrased queries have the right "
              f"pattern in the top {TOP_K} (top 1: {top1}/{len(QUERIES)}); {len(PATTERNS)} patterns stored")
        for line in misses:
            print(line)
    assert rate >= REQUIRED
