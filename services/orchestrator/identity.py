"""Who is calling. Today: the ``x-user-id`` metadata (set by a trusted
gateway in front), or the configured default user."""
from __future__ import annotations

import re

import grpc

from services.common import errors

_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")


def user_of(context: grpc.aio.ServicerContext, default_user: str) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-user-id":
            if not _USER.match(value):
                raise errors.invalid_argument("bad x-user-id", [("x-user-id", "1-128 letters, digits, _ . @ -")])
            return value
    return default_user
