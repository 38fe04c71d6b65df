"""ListMemories paging: keyset tokens over a stable order.

Order: created_at ascending, then id. The token names the last memory of the
page (its created_at and id) and the user it was issued for, so a page never
repeats or skips a memory when others are added or deleted between calls
(new memories appear on later pages). Tokens are opaque to callers.
"""
from __future__ import annotations

import base64
import binascii
import json

from services.common import errors
from services.memory.records import MemoryRecord, parse_time


def encode(user_id: str, last: MemoryRecord) -> str:
    raw = json.dumps({"u": user_id, "c": last.created_at, "i": last.id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(user_id: str, token: str) -> tuple[str, str]:
    """(created_at, id) of the last memory already returned."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        owner, created_at, memory_id = data["u"], data["c"], data["i"]
        if not all(isinstance(x, str) for x in (owner, created_at, memory_id)):
            raise ValueError("bad field types")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise errors.invalid_argument(
            "invalid ListMemories request: page_token is not a token from a previous response",
            violations=[("page_token", "malformed: pass next_page_token from the previous response unchanged")],
        ) from None
    if owner != user_id:
        raise errors.invalid_argument(
            "invalid ListMemories request: page_token was issued for another user_id",
            violations=[("page_token", "issued for a different user_id; keep the same request fields while paging")],
        )
    return created_at, memory_id


def page(records: list[MemoryRecord], user_id: str, page_size: int, token: str) -> tuple[list[MemoryRecord], str]:
    """One page of ``records`` (already in list order) and the next token."""
    if token:
        created_at, memory_id = decode(user_id, token)
        after = (parse_time(created_at), memory_id)
        records = [r for r in records if r.sort_key() > after]
    chunk = records[:page_size]
    more = len(records) > page_size
    return chunk, (encode(user_id, chunk[-1]) if more else "")
