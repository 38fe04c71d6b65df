"""Who is calling the public API.

Two modes (``ORCHESTRATOR_AUTH``):
- ``tokens``: every call carries ``authorization: Bearer <token>``; the
  token file (``ORCHESTRATOR_TOKEN_FILE``, JSON ``{"<token>": "<user id>"}``)
  maps it to a user. A missing or unknown token is UNAUTHENTICATED.
- ``trusted`` (the default, for a gateway in front or a developer's
  machine): the user is the ``x-user-id`` metadata, or the default user.
Everything a user stores is visible to that user only.
"""
from __future__ import annotations

import hmac
import json
import pathlib
import re

import grpc

from services.common import errors

_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v
    return None


class Identity:
    def __init__(self, mode: str, default_user: str, token_file: str = ""):
        if mode not in ("trusted", "tokens"):
            raise SystemExit(f"ORCHESTRATOR_AUTH must be 'trusted' or 'tokens', not {mode!r}")
        self.mode = mode
        self.default_user = default_user
        self.tokens: dict[str, str] = {}
        if mode == "tokens":
            if not token_file:
                raise SystemExit("ORCHESTRATOR_AUTH=tokens needs ORCHESTRATOR_TOKEN_FILE")
            self.tokens = {str(t): str(u) for t, u in json.loads(pathlib.Path(token_file).read_text()).items()}
            bad = [u for u in self.tokens.values() if not _USER.match(u)]
            if bad:
                raise SystemExit(f"{token_file}: bad user ids {bad}")

    def user(self, context: grpc.aio.ServicerContext) -> str:
        if self.mode == "tokens":
            header = _metadata(context, "authorization") or ""
            token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
            for known, user in self.tokens.items():  # compare every token in constant time
                if token and hmac.compare_digest(known, token):
                    return user
            raise errors.ApiError(grpc.StatusCode.UNAUTHENTICATED, "a valid 'authorization: Bearer <token>' is required",
                                  reason="UNAUTHENTICATED")
        user = _metadata(context, "x-user-id")
        if user is None:
            return self.default_user
        if not _USER.match(user):
            raise errors.invalid_argument("bad x-user-id", [("x-user-id", "1-128 letters, digits, _ . @ -")])
        return user
