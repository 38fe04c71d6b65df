"""The live status line of `stratexec run --watch` and `stratexec watch` on a terminal.

One line rewrites itself in place (``\\r`` and erase-to-end-of-line) with the
current status, the time since the execution was accepted and the latest
agent step; each status change, warning and error is printed above it as a
permanent line. The line is cut to the terminal width so it never wraps
(a wrapped line cannot be rewritten with ``\\r``).

Events are read on a background thread so the elapsed time keeps ticking
while the execution is quiet (a long sandbox run, for instance).
"""
from __future__ import annotations

import datetime as dt
import queue
import shutil
import threading
from typing import Iterable, TextIO

from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli import render

TERMINAL = {execution_pb2.EXECUTION_STATUS_COMPLETED, execution_pb2.EXECUTION_STATUS_FAILED,
            execution_pb2.EXECUTION_STATUS_CANCELLED}
SPINNER = "|/-\\"
ERASE = "\r\x1b[K"


def elapsed_text(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def step_text(step: execution_pb2.AgentStep) -> str:
    if step.tool:
        return f"{step.agent}: {step.tool} ({step.duration_ms:.0f} ms)"
    return f"{step.agent}: final answer"


def _utc(event: execution_pb2.ExecutionEvent) -> dt.datetime:
    return event.time.ToDatetime(tzinfo=dt.timezone.utc)


class LiveView:
    """Renders events onto one self-rewriting line plus permanent lines above it."""

    def __init__(self, out: TextIO, now=lambda: dt.datetime.now(dt.timezone.utc), width: int | None = None):
        self.out = out
        self.now = now
        self.width = width
        self.status = ""
        self.started: dt.datetime | None = None
        self.step = "waiting for the first event"
        self.terminal = False
        self.drawn = False
        self.ticks = 0

    def _columns(self) -> int:
        return max(20, self.width or shutil.get_terminal_size((100, 24)).columns)

    def _elapsed(self, at: dt.datetime | None = None) -> str:
        if self.started is None:
            return elapsed_text(0)
        return elapsed_text(((at or self.now()) - self.started).total_seconds())

    def _permanent(self, text: str) -> None:
        self.out.write(ERASE + text + "\n")
        self.drawn = False

    def handle(self, event: execution_pb2.ExecutionEvent) -> None:
        when = _utc(event)
        if self.started is None:
            self.started = when
        if event.type == execution_pb2.EVENT_TYPE_STATUS_CHANGED:
            self.status = render.status_name(event.status)
            self.terminal = event.status in TERMINAL
            detail = "" if event.message == self.status else f"  {event.message}"
            self._permanent(f"{when:%H:%M:%S}  {self.status:<15} {self._elapsed(when):>7}{detail}")
            self.step = event.message if detail else ""  # the previous stage's last step is stale now
        elif event.type == execution_pb2.EVENT_TYPE_AGENT_STEP:
            self.step = step_text(event.agent_step)
        elif event.type == execution_pb2.EVENT_TYPE_LOG and event.log.level != execution_pb2.LOG_LEVEL_INFO:
            self._permanent(f"{when:%H:%M:%S}  {render.level_name(event.log.level)}: {event.log.message}")
        self.redraw()

    def redraw(self) -> None:
        if self.terminal:
            self.out.flush()
            return
        self.ticks += 1
        spin = SPINNER[self.ticks % len(SPINNER)]
        text = f"{spin} {self.status or 'connecting'}  {self._elapsed()}  {self.step}"
        limit = self._columns() - 1
        if len(text) > limit:
            text = text[: limit - 3] + "..."
        self.out.write(ERASE + text)
        self.out.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.out.write(ERASE)
            self.out.flush()
            self.drawn = False


def follow(events: Iterable[execution_pb2.ExecutionEvent], out: TextIO, refresh: float = 0.2,
           view: LiveView | None = None) -> str:
    """Show ``events`` live on ``out`` until the stream ends; returns the final status name.

    Errors of the stream (and Ctrl-C) propagate after the live line is erased.
    """
    view = view or LiveView(out)
    inbox: queue.Queue = queue.Queue()

    def pump() -> None:
        try:
            for event in events:
                inbox.put(("event", event))
            inbox.put(("end", None))
        except BaseException as exc:  # handed to the main thread, raised there
            inbox.put(("error", exc))

    threading.Thread(target=pump, name="stratexec-watch", daemon=True).start()
    view.redraw()
    try:
        while True:
            try:
                kind, item = inbox.get(timeout=refresh)
            except queue.Empty:
                view.redraw()
                continue
            if kind == "event":
                view.handle(item)
            elif kind == "error":
                raise item
            else:
                break
    finally:
        view.clear()
    return view.status
