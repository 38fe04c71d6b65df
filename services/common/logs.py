"""JSON logs, one object per line, carrying the execution id when known."""
from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys

execution_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("execution_id", default="")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        execution_id = getattr(record, "execution_id", None) or execution_id_var.get()
        if execution_id:
            entry["execution_id"] = execution_id
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(service: str, level: str = "INFO") -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "urllib3", "LiteLLM", "mem0", "numba", "qdrant_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # CrewAI warns on every call of a custom model that it estimates token counts: harmless, and noise.
    logging.getLogger("crewai").setLevel(logging.ERROR)
    return logging.getLogger(service)


def log(logger: logging.Logger, level: int, msg: str, **fields) -> None:
    logger.log(level, msg, extra={"fields": fields})
