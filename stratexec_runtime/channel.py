"""The result channel: a file descriptor the sandbox hands to the run.

Results never travel on stdout, so nothing a script prints can forge them.
"""
from __future__ import annotations

import json
import os

RESULT_FD_ENV = "STRATEXEC_RESULT_FD"


def send(result: dict) -> bool:
    """Write the result to the channel; False when there is none (standalone run)."""
    raw = os.environ.get(RESULT_FD_ENV)
    if not raw:
        return False
    text = json.dumps(result, allow_nan=False, default=_finite)  # dumps, not dump: dump never uses the C encoder
    with os.fdopen(int(raw), "w", encoding="utf-8") as channel:
        channel.write(text)
    return True


def _finite(value):
    raise TypeError(f"not JSON serialisable: {value!r}")
