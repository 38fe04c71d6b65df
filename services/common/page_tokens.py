"""Opaque page tokens bound to the caller and the filter (AIP-158).

A token carries the position after the last item returned (keyset paging)
and a digest of the scope it was issued for: the caller and every request
field that selects items. Decoding it under another scope, or decoding a
token that was not issued by ``encode``, is INVALID_ARGUMENT naming
page_token. Orchestrator lists and memory's ListMemories use it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json

from services.common import errors


def _scope_digest(scope: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(scope, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]


def encode(scope: dict[str, str], position: list[str]) -> str:
    raw = json.dumps({"s": _scope_digest(scope), "p": position}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def malformed(method: str) -> errors.ApiError:
    return errors.invalid_argument(
        f"invalid {method} request: page_token is not a token from a previous response",
        [("page_token", "malformed: pass next_page_token from the previous response unchanged")],
        reason="PAGE_TOKEN_INVALID",
    )


def decode(token: str, scope: dict[str, str], method: str, size: int) -> list[str]:
    """The position (``size`` strings) in ``token``; INVALID_ARGUMENT unless it was issued for ``scope``."""
    try:
        data = json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()).decode())
        digest, position = data["s"], data["p"]
        if not (isinstance(digest, str) and isinstance(position, list) and len(position) == size
                and all(isinstance(p, str) for p in position)):
            raise ValueError("bad field types")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise malformed(method) from None
    if digest != _scope_digest(scope):
        fields = ", ".join(sorted(scope))
        raise errors.invalid_argument(
            f"invalid {method} request: page_token was issued for another caller or filter",
            [("page_token", f"issued for a different {fields}; keep the same caller and request fields while paging")],
            reason="PAGE_TOKEN_MISMATCH",
        )
    return position
