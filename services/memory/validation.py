"""Request validation: every problem becomes a BadRequest field violation,
and all violations of a request are reported together as INVALID_ARGUMENT."""
from __future__ import annotations

import json
import math
import re
from typing import Any

from google.protobuf import json_format, struct_pb2

from services.common import errors
from services.memory.config import SYSTEM_USER, MemoryConfig
from services.memory.records import CORE_PAYLOAD_KEYS

USER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+:\-]{0,127}$")
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
ROLES = ("user", "assistant", "system")
DEFAULT_LIMIT = 5
DEFAULT_PAGE_SIZE = 50
MAX_FILTER_VALUES = 100
MAX_MEMORY_ID = 128


class Violations:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.items.append((field, description))

    def raise_if_any(self, what: str) -> None:
        if self.items:
            summary = "; ".join(f"{f}: {d}" for f, d in self.items[:3])
            raise errors.invalid_argument(f"invalid {what}: {summary}", violations=self.items)


def check_user_id(user_id: str, v: Violations, field: str = "user_id") -> None:
    if not user_id:
        v.add(field, "required: the owner of the memories")
    elif not USER_ID_RE.match(user_id):
        v.add(field, "must be 1-128 characters: letters, digits and . _ @ + : - (starting with a letter or digit)")


def normalise(value: Any) -> Any:
    """Struct numbers are doubles: store integral ones as int so exact-match
    filters on them work (5 and 5.0 are the same number to the caller)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: normalise(x) for k, x in value.items()}
    if isinstance(value, list):
        return [normalise(x) for x in value]
    return value


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return normalise(json_format.MessageToDict(struct))


def check_metadata(metadata: dict[str, Any], config: MemoryConfig, v: Violations) -> None:
    for key, value in metadata.items():
        field = f"metadata.{key}"
        if key in CORE_PAYLOAD_KEYS:
            v.add(field, f"reserved key (used by the store): {', '.join(sorted(CORE_PAYLOAD_KEYS))} are not allowed")
        elif not KEY_RE.match(key):
            v.add(field, "key must match [A-Za-z_][A-Za-z0-9_]{0,63}")
        elif value is None:
            v.add(field, "null values are not stored; leave the key out")
    if "memory_key" in metadata:
        key = metadata["memory_key"]
        if not isinstance(key, str) or not key or len(key) > 200:
            v.add("metadata.memory_key", "must be a non-empty string of at most 200 characters")
    size = len(json.dumps(metadata, separators=(",", ":")).encode())
    if size > config.max_metadata_bytes:
        v.add("metadata", f"{size} bytes as JSON; at most {config.max_metadata_bytes}")


def check_messages(request, config: MemoryConfig, v: Violations) -> list[dict[str, str]]:
    if not request.messages:
        v.add("messages", "at least one message is required")
        return []
    if len(request.messages) > config.max_messages:
        v.add("messages", f"{len(request.messages)} messages; at most {config.max_messages} per request")
    out = []
    for i, message in enumerate(request.messages):
        role = message.role or "user"
        if role not in ROLES:
            v.add(f"messages[{i}].role", f"must be one of {', '.join(ROLES)} (empty means user)")
        if not message.content.strip():
            v.add(f"messages[{i}].content", "must not be empty")
        size = len(message.content.encode())
        if size > config.max_content_bytes:
            v.add(f"messages[{i}].content", f"{size} bytes; at most {config.max_content_bytes}")
        out.append({"role": role, "content": message.content})
    return out


def check_add(request, config: MemoryConfig) -> tuple[list[dict[str, str]], dict[str, Any]]:
    v = Violations()
    check_user_id(request.user_id, v)
    messages = check_messages(request, config, v)
    metadata = struct_to_dict(request.metadata)
    check_metadata(metadata, config, v)
    if request.user_id == SYSTEM_USER and metadata.get("kind") != "code_template":
        v.add("metadata.kind", 'user "system" holds code templates only: kind must be "code_template"')
    v.raise_if_any("AddMemory request")
    return messages, metadata


def check_filter_value(key: str, value: Any, v: Violations) -> Any:
    field = f"filters.{key}"
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        v.add(field, "exact match on a non-integer number is not supported")
        return None
    if isinstance(value, list):
        if not value:
            v.add(field, "an empty list matches nothing; leave the key out")
        elif len(value) > MAX_FILTER_VALUES:
            v.add(field, f"at most {MAX_FILTER_VALUES} values")
        elif not (all(isinstance(x, str) for x in value)
                  or all(isinstance(x, int) and not isinstance(x, bool) for x in value)):
            v.add(field, "a list means any-of and must hold only strings or only integers")
        return value
    if value is None:
        v.add(field, "null is not a filter value")
    else:
        v.add(field, "must be a string, boolean, integer, or a list of strings or integers (nested objects are not supported)")
    return None


def check_filters(struct: struct_pb2.Struct, v: Violations) -> dict[str, Any]:
    filters = struct_to_dict(struct)
    out = {}
    for key, value in filters.items():
        if key in CORE_PAYLOAD_KEYS:
            v.add(f"filters.{key}", "reserved key: scope the search with user_id, not a filter")
            continue
        if not KEY_RE.match(key):
            v.add(f"filters.{key}", "key must match [A-Za-z_][A-Za-z0-9_]{0,63}")
            continue
        out[key] = check_filter_value(key, value, v)
    return out


def check_search(request, config: MemoryConfig) -> tuple[str, dict[str, Any], int, float]:
    v = Violations()
    query = request.query.strip()
    if not query:
        v.add("query", "must not be empty")
    elif len(query.encode()) > config.max_query_bytes:
        v.add("query", f"{len(query.encode())} bytes; at most {config.max_query_bytes}")
    check_user_id(request.user_id, v)
    filters = check_filters(request.filters, v)
    limit = request.limit or DEFAULT_LIMIT
    if not 1 <= limit <= config.max_search_limit:
        v.add("limit", f"must be between 1 and {config.max_search_limit} (0 means {DEFAULT_LIMIT})")
    threshold = request.threshold
    if math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
        v.add("threshold", "must be between 0 and 1 (0 means none)")
    v.raise_if_any("SearchMemories request")
    return query, filters, limit, threshold


def check_list(request, config: MemoryConfig) -> int:
    v = Violations()
    check_user_id(request.user_id, v)
    page_size = request.page_size or DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= config.max_page_size:
        v.add("page_size", f"must be between 1 and {config.max_page_size} (0 means {DEFAULT_PAGE_SIZE})")
    v.raise_if_any("ListMemories request")
    return page_size


def check_delete(request) -> None:
    v = Violations()
    _check_id(request.memory_id, v)
    check_user_id(request.user_id, v)
    v.raise_if_any("DeleteMemory request")


def check_get(request) -> None:
    v = Violations()
    _check_id(request.memory_id, v)
    check_user_id(request.user_id, v)
    v.raise_if_any("GetMemory request")


def check_update(request, config: MemoryConfig) -> tuple[set[str], str, dict[str, Any] | None]:
    """(fields to change, new content, new metadata) of an UpdateMemory request."""
    v = Violations()
    _check_id(request.memory_id, v)
    check_user_id(request.user_id, v)
    paths = set(request.update_mask.paths) or {"content", "metadata"}
    unknown = paths - {"content", "metadata"}
    if unknown:
        v.add("update_mask", f"unknown fields {sorted(unknown)}: use content, metadata")
    content = request.content
    if "content" in paths:
        if not content.strip():
            v.add("content", "must not be empty")
        elif len(content.encode()) > config.max_content_bytes:
            v.add("content", f"at most {config.max_content_bytes} bytes")
    metadata = None
    if "metadata" in paths:
        metadata = struct_to_dict(request.metadata)
        check_metadata(metadata, config, v)
    v.raise_if_any("UpdateMemory request")
    return paths, content, metadata


def _check_id(memory_id: str, v: Violations) -> None:
    if not memory_id:
        v.add("memory_id", "required")
    elif len(memory_id) > MAX_MEMORY_ID:
        v.add("memory_id", f"at most {MAX_MEMORY_ID} characters")
