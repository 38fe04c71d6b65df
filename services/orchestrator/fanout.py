"""Cross-replica wake-ups through PostgreSQL LISTEN/NOTIFY.

Every event append and every new job sends a NOTIFY in its transaction
(see Repository._notify_in_tx); each replica LISTENs here and wakes its
own watchers and workers, so a watcher on any replica sees every event
as it happens. On SQLite (one process) the local notifier is enough; the
watchers' periodic re-read covers a lost notification either way.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

import psycopg
from sqlalchemy.engine import make_url

from services.common.logs import log

logger = logging.getLogger("orchestrator.fanout")


def conninfo(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgListener:
    def __init__(self, database_url: str, on_event: Callable[[str], None], on_job: Callable[[], None]):
        self.conninfo = conninfo(database_url)
        self.on_event = on_event
        self.on_job = on_job
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    await conn.execute("LISTEN stratexec_events")
                    await conn.execute("LISTEN stratexec_jobs")
                    log(logger, logging.INFO, "listening for notifications", channels=["stratexec_events", "stratexec_jobs"])
                    delay = 0.5
                    self.on_job()  # jobs queued while we were not listening
                    async for note in conn.notifies():
                        if note.channel == "stratexec_events":
                            self.on_event(note.payload)
                        else:
                            self.on_job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: retry, watchers keep polling meanwhile
                log(logger, logging.WARNING, "notification listener lost its connection", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
