"""A sweep's grid cut into chunks: sub-grids that are each one sandbox job.

The combination index runs over the product of the parameters' values, the
last one fastest. A chunk fixes the values of a prefix of the parameters,
takes a slice of the next one's values and all values of the rest, so each
chunk is a product grid of its own (one GenerateSweepCode request) and
covers a contiguous range of the whole grid's indices: chunk results
concatenated in order are the whole grid's, exactly.
"""
from __future__ import annotations

import dataclasses
import itertools
import math


@dataclasses.dataclass(frozen=True)
class Chunk:
    start: int  # index (in the whole grid) of its first combination
    values: tuple[tuple[float, ...], ...]  # per parameter, in grid order

    @property
    def size(self) -> int:
        return math.prod(len(v) for v in self.values)

    def values_at(self, local: int) -> tuple[float, ...]:
        """The parameter values of the chunk's ``local``-th combination."""
        out = []
        for values in reversed(self.values):
            local, i = divmod(local, len(values))
            out.append(values[i])
        return tuple(reversed(out))


def plan(values: list[list[float]] | tuple, target: int) -> list[Chunk]:
    """Chunks of at most ``target`` combinations where the grid allows (a single value list longer than
    the target is cut too), in index order."""
    lists = [tuple(v) for v in values]
    lens = [len(v) for v in lists]
    if math.prod(lens) <= target or not lists:
        return [Chunk(0, tuple(lists))]
    j = 0
    while math.prod(lens[j + 1:]) > target:
        j += 1
    inner = math.prod(lens[j + 1:])
    per = max(1, target // inner)
    chunks, start = [], 0
    for prefix in itertools.product(*lists[:j]):
        for a in range(0, lens[j], per):
            chunk = Chunk(start, tuple((x,) for x in prefix) + (lists[j][a:a + per],) + tuple(lists[j + 1:]))
            chunks.append(chunk)
            start += chunk.size
    return chunks
