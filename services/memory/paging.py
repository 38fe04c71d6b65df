"""ListMemories paging: keyset tokens over a stable order.

Order: created_at ascending, then id. The token names the last memory of the
page (its created_at and id) and is bound to the user it was issued for
(services.common.page_tokens), so a page never repeats or skips a memory when
others are added or deleted between calls (new memories appear on later pages).
"""
from __future__ import annotations

from services.common import page_tokens
from services.memory.records import MemoryRecord, parse_time


def _scope(user_id: str) -> dict[str, str]:
    return {"user_id": user_id}


def encode(user_id: str, last: MemoryRecord) -> str:
    return page_tokens.encode(_scope(user_id), [last.created_at, last.id])


def decode(user_id: str, token: str) -> tuple[str, str]:
    """(created_at, id) of the last memory already returned."""
    created_at, memory_id = page_tokens.decode(token, _scope(user_id), "ListMemories", 2)
    return created_at, memory_id


def after_key(user_id: str, token: str) -> tuple | None:
    """The (created_at, id) sort key a page starts after; None for the first page."""
    if not token:
        return None
    created_at, memory_id = decode(user_id, token)
    return parse_time(created_at), memory_id


def page(records: list[MemoryRecord], user_id: str, page_size: int) -> tuple[list[MemoryRecord], str]:
    """``records``: up to page_size + 1 memories in list order, read after the token's key; the page
    and the next token (when the extra one shows that more follow)."""
    chunk = records[:page_size]
    return chunk, (encode(user_id, chunk[-1]) if len(records) > page_size else "")
