"""Limits of a google.protobuf.Struct in a request, checked at submit: no
number that is not finite (NaN, ±inf: JSON cannot carry them and the
generated script cannot either) and no nesting deeper than ``MAX_DEPTH``
(protobuf's parser stops at 100 nested messages, and a Struct level costs
three: a request that passes submit must not fail to parse later, in
another service or with metadata wrapped around it)."""
from __future__ import annotations

import math

from google.protobuf import struct_pb2

MAX_DEPTH = 20  # levels of objects and lists
MAX_REPORTED = 20  # violations listed; the rest are counted


def problems(value: struct_pb2.Struct, field: str, max_depth: int = MAX_DEPTH) -> list[tuple[str, str]]:
    """Field violations (path, description) of a Struct; empty when it is within the limits."""
    found: list[tuple[str, str]] = []
    extra = 0
    stack: list[tuple[struct_pb2.Value | struct_pb2.Struct, str, int]] = [(value, field, 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, struct_pb2.Struct):
            children = [(v, f"{path}.{k}") for k, v in item.fields.items()]
        else:
            kind = item.WhichOneof("kind")
            if kind == "number_value" and not math.isfinite(item.number_value):
                problem = (path, f"must be a finite number, got {item.number_value}")
            elif kind in ("struct_value", "list_value") and depth >= max_depth:
                problem = (path, f"nested deeper than {max_depth} levels")
            else:
                problem = None
                if kind == "struct_value":
                    children = [(v, f"{path}.{k}") for k, v in item.struct_value.fields.items()]
                elif kind == "list_value":
                    children = [(v, f"{path}[{i}]") for i, v in enumerate(item.list_value.values)]
                else:
                    children = []
            if problem is not None:
                if len(found) < MAX_REPORTED:
                    found.append(problem)
                else:
                    extra += 1
                continue
            depth += 1 if kind in ("struct_value", "list_value") else 0
        stack.extend((child, child_path, depth) for child, child_path in reversed(children))
    if extra:
        found.append((field, f"and {extra} more violations like these"))
    return found
