"""The lease keeper: renews the leases of the executions this replica runs.

It is a thread of its own on a database connection of its own
(``Repository.lease_sessions``), so a burst of requests that fills the
event loop's default thread pool can never delay a heartbeat past the
lease. When a renewal finds that an execution is no longer held by its
attempt (another replica took it over, or it ended), that crew is told to
stop; a cancel asked through any replica reaches its crew the same way.
"""
from __future__ import annotations

import logging
import threading

from services.common.logs import log

logger = logging.getLogger("orchestrator.leases")


class LeaseKeeper:
    def __init__(self, repo, running: dict, period: float):
        self.repo = repo
        self.running = running  # execution id -> ExecutionContext, owned by the runner
        self.period = period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def renew_once(self) -> None:
        held = {eid: ctx for eid, ctx in dict(self.running).items() if ctx.lease and not ctx.lease_lost}
        lost, cancelled = self.repo.heartbeat({eid: ctx.lease for eid, ctx in held.items()})
        for eid in lost:
            if self.running.get(eid) is held[eid]:  # not an execution that just finished here
                log(logger, logging.WARNING, "lease lost: stopping the crew", execution_id=eid)
                held[eid].lose_lease()
        for eid in cancelled:
            held[eid].cancel.set()  # cancelled through another replica

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.renew_once()
            except Exception:
                logger.exception("lease renewal failed")
