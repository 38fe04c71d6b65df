"""Who is calling the public API.

Two modes (``ORCHESTRATOR_AUTH``):
- ``tokens``: every call carries ``authorization: Bearer <token>``; the
  token file (``ORCHESTRATOR_TOKEN_FILE``, JSON ``{"<token>": "<user id>"}``)
  maps it to a user. A missing or unknown token is UNAUTHENTICATED.
- ``trusted`` (the default, for a developer's machine or a gateway in
  front): the user is the ``x-user-id`` metadata, or the default user.
  ``x-user-id`` is taken only from a loopback (or Unix socket) peer; from
  any other peer it is UNAUTHENTICATED unless the operator opts in with
  ``ORCHESTRATOR_TRUST_REMOTE_USER_ID=1`` (a gateway on another host),
  which is logged as a warning at start-up.
Everything a user stores is visible to that user only.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import pathlib
import re
import urllib.parse

import grpc

from services.common import errors

_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v
    return None


def from_loopback(peer: str) -> bool:
    """``context.peer()`` is ``ipv4:127.0.0.1:port``, ``ipv6:[::1]:port`` (maybe %-encoded) or ``unix:path``."""
    peer = urllib.parse.unquote(peer or "")
    kind, _, rest = peer.partition(":")
    if kind == "unix":
        return True
    host = rest.rsplit(":", 1)[0].strip("[]") if kind in ("ipv4", "ipv6") else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Identity:
    def __init__(self, mode: str, default_user: str, token_file: str = "", trust_remote: bool = False):
        if mode not in ("trusted", "tokens"):
            raise SystemExit(f"ORCHESTRATOR_AUTH must be 'trusted' or 'tokens', not {mode!r}")
        self.mode = mode
        self.default_user = default_user
        self.trust_remote = trust_remote
        if mode == "trusted" and trust_remote:
            logging.getLogger("orchestrator.identity").warning(
                "ORCHESTRATOR_TRUST_REMOTE_USER_ID is on: x-user-id is believed from ANY peer; only safe behind a "
                "gateway that sets it and is the only way in (use ORCHESTRATOR_AUTH=tokens otherwise)")
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
        if not self.trust_remote and not from_loopback(context.peer()):
            raise errors.ApiError(
                grpc.StatusCode.UNAUTHENTICATED,
                "x-user-id is accepted only from this machine in the trusted identity mode; use ORCHESTRATOR_AUTH=tokens, "
                "or ORCHESTRATOR_TRUST_REMOTE_USER_ID=1 behind a gateway that sets it", reason="UNAUTHENTICATED")
        if not _USER.match(user):
            raise errors.invalid_argument("bad x-user-id", [("x-user-id", "1-128 letters, digits, _ . @ -")])
        return user
