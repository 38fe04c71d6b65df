"""Running one job: the interface the server uses, and the fresh-interpreter runner.

    runner = make_runner(config, plan)   # FreshRunner, or the warm pool (pool.py)
    await runner.start()
    out = await runner.run(RunJob(...))  # RunOutput: outcome, raw result bytes, logs
    await runner.close()

The server only sees ``Runner``; how a run gets its interpreter (a fresh
``python`` here, a fork of a warm parent in the pool) is the runner's
business. Both apply the same isolation (isolation.py, jail_boot.py).
"""
from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import dataclasses
import enum
import errno
import logging
import os
import pathlib
import signal
import time
import uuid

from services.sandbox.config import SandboxConfig
from services.sandbox.isolation import (
    BOOT_FAILED_EXIT,
    IsolationPlan,
    RunDir,
    Scratch,
    check_reachable,
    claim_scratch,
    command,
    processes_of_uid,
    sweep_uid_command,
)
from services.sandbox.market_data import PreparedData

log = logging.getLogger("sandbox.runner")


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"  # exited 0 and wrote something on the result channel (not yet checked)
    FAILED = "failed"  # exited non-zero, or no result
    TIMED_OUT = "timed_out"
    KILLED = "killed"  # by a signal or a resource limit


class QueueFull(RuntimeError):
    """More runs waiting than the queue holds."""


@dataclasses.dataclass(frozen=True)
class RunJob:
    code: str
    data: PreparedData
    timeout_seconds: float
    execution_id: str = ""
    run_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:12])
    caller: str = ""  # who asked (the server uses the gRPC peer): admission is per caller
    # RLIMIT_CPU of this run when set (sweeps: their threads may use every CPU for the whole timeout)
    cpu_seconds: int | None = None


@dataclasses.dataclass
class RunOutput:
    outcome: Outcome
    reason: str  # machine-readable: OK, EXIT_NONZERO, NO_RESULT, RESULT_TOO_LARGE, TIMEOUT, SIGNAL, JAIL_FAILED ...
    message: str
    result: bytes | None
    logs: list[str]
    logs_truncated: bool
    duration_ms: float
    isolation: list[str]
    exit_code: int | None = None
    signal: int | None = None


class Runner(abc.ABC):
    """Runs jobs, at most ``pool_size`` at a time, with a bounded queue per caller.

    Each caller may have ``queue_size`` runs waiting (``queue_total`` over all
    callers), and a freed slot goes to the callers in turn (round robin), so
    one caller filling its queue with busy loops neither refuses nor starves
    another: the other's run waits for the running ones and at most one queued
    run of each other caller."""

    def __init__(self, config: SandboxConfig, plan: IsolationPlan):
        self.config = config
        self.plan = plan
        self._free_slots: list[int] | None = None
        self._waiters: dict[str, collections.deque[asyncio.Future]] = {}
        self._turns: collections.deque[str] = collections.deque()  # callers with waiting runs, in turn order
        self._scratch: Scratch | None = None

    @property
    def scratch(self) -> pathlib.Path:
        """This instance's own directory under the configured scratch (claimed at start)."""
        assert self._scratch is not None, "runner not started"
        return self._scratch.path

    @property
    def isolation(self) -> list[str]:
        return list(self.plan.active)

    async def start(self) -> None:
        self._scratch = await asyncio.to_thread(claim_scratch, self.config.scratch_dir)
        check_reachable(self.plan, self._scratch.path)
        self._free_slots = list(range(self.config.pool_size - 1, -1, -1))

    async def close(self) -> None:
        if self._scratch is not None:
            self._scratch.release()

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiters.values())

    @contextlib.asynccontextmanager
    async def slot(self, caller: str = ""):
        """A slot (and so a uid) of its own for the duration of a run."""
        assert self._free_slots is not None, "runner not started"
        if self._free_slots and not self._turns:
            slot = self._free_slots.pop()
        else:
            mine = len(self._waiters.get(caller, ()))
            if mine >= self.config.queue_size or self.waiting >= self.config.queue_total:
                raise QueueFull(f"{mine} runs of this caller ({self.waiting} in all) already waiting "
                                f"for {self.config.pool_size} slots")
            turn = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(caller, collections.deque()).append(turn)
            if caller not in self._turns:
                self._turns.append(caller)
            try:
                slot = await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release(turn.result())  # granted just as the caller went away
                else:
                    self._forget(caller, turn)
                raise
        try:
            yield slot
        finally:
            self._release(slot)

    def _forget(self, caller: str, turn: asyncio.Future) -> None:
        queue = self._waiters.get(caller)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._waiters[caller]
                self._turns.remove(caller)

    def _release(self, slot: int) -> None:
        """The freed slot goes to the next caller in turn (who then goes to the back)."""
        while self._turns:
            caller = self._turns.popleft()
            queue = self._waiters[caller]
            turn = queue.popleft()
            if queue:
                self._turns.append(caller)
            else:
                del self._waiters[caller]
            if not turn.done():
                turn.set_result(slot)
                return
        self._free_slots.append(slot)

    async def run(self, job: RunJob) -> RunOutput:
        async with self.slot(job.caller) as slot:
            uid = self.plan.uid_for(slot)
            # A few small local file operations: inline, a thread hop costs more than they do.
            run_dir = RunDir.create(self._run_root(slot), uid)
            try:
                self._fill(run_dir, job)
                return await self._execute(job, run_dir, slot, uid)
            finally:
                run_dir.remove()

    def _run_root(self, slot: int) -> str:
        """Where a slot's private run directories are made."""
        return self.scratch

    @staticmethod
    def _fill(run_dir: RunDir, job: RunJob) -> None:
        job.data.write(run_dir.data)
        run_dir.seal_input(job.code)

    @abc.abstractmethod
    async def _execute(self, job: RunJob, run_dir: RunDir, slot: int, uid: int | None) -> RunOutput:
        """Run the sealed run directory's script; always leaves no process behind."""


# ---------------------------------------------------------------------------
# Capped reading of pipes, without trusting the writer to ever close them


class PipeCollector:
    """Reads a non-blocking pipe into memory up to ``cap`` bytes, counting the rest."""

    def __init__(self, fd: int, cap: int):
        self.fd = fd
        self.cap = cap
        self.buffer = bytearray()
        self.total = 0
        self.eof = asyncio.get_running_loop().create_future()
        os.set_blocking(fd, False)
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def _readable(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                chunk = b""
            if not chunk:
                self._finish()
                return
            self.total += len(chunk)
            room = self.cap - len(self.buffer)
            if room > 0:
                self.buffer += chunk[:room]

    def _finish(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.fd)
        if not self.eof.done():
            self.eof.set_result(None)

    async def finish(self, grace: float) -> None:
        """Wait for EOF up to ``grace`` seconds, then stop reading and close the pipe."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.eof), grace)
        self._finish()
        with contextlib.suppress(OSError):
            os.close(self.fd)

    @property
    def truncated(self) -> bool:
        return self.total > self.cap


def log_lines(collector: PipeCollector) -> tuple[list[str], bool]:
    text = bytes(collector.buffer).decode("utf-8", errors="replace")
    lines = text.splitlines()
    if collector.truncated:
        lines.append(f"[output truncated: {collector.total - collector.cap} of {collector.total} bytes dropped at the cap of {collector.cap}]")
    return lines, collector.truncated


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def reap_uid(uid: int | None, patience: float = 0.5) -> None:
    """Return once no process of the run's uid is left: a torn-down pid namespace
    takes a moment to empty; whatever is still there after ``patience`` is killed."""
    if uid is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while await asyncio.to_thread(processes_of_uid, uid):
        if loop.time() > deadline:
            proc = await asyncio.create_subprocess_exec(*sweep_uid_command(uid), stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            await proc.wait()
            deadline = loop.time() + patience
        await asyncio.sleep(0.02)


def classify(returncode: int | None, timed_out: bool, timeout: float, result: PipeCollector,
             result_cap: int, outer: str) -> tuple[Outcome, str, str, int | None]:
    """How a run ended, from its exit status and its result channel."""
    if timed_out:
        return Outcome.TIMED_OUT, "TIMEOUT", f"the run exceeded its wall-clock limit of {timeout:g} s and was killed", None
    sig = None
    if returncode is not None and returncode < 0:
        sig = -returncode
    elif returncode is not None and returncode > 128 and outer != "none":
        sig = returncode - 128  # the outer jail reports a signalled child as 128+N
    if sig is not None:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {signal.SIGXCPU: " (CPU time limit)", signal.SIGXFSZ: " (file size limit)"}.get(sig, "")
        return Outcome.KILLED, "SIGNAL", f"the run was killed by {name}{why}", sig
    if returncode == BOOT_FAILED_EXIT:
        return Outcome.FAILED, "JAIL_FAILED", "the jail could not be built; the code did not run", None
    if returncode != 0:
        return Outcome.FAILED, "EXIT_NONZERO", f"the script exited with status {returncode}", None
    if result.truncated:
        return Outcome.FAILED, "RESULT_TOO_LARGE", f"the result exceeded {result_cap} bytes", None
    if not result.buffer:
        return Outcome.FAILED, "NO_RESULT", "the script exited without sending a result (did it call report()?)", None
    return Outcome.SUCCEEDED, "OK", "", None


class FreshRunner(Runner):
    """Each run is a fresh ``python`` process (cold start: imports vectorbt every time)."""

    mode = "fresh"

    async def _execute(self, job: RunJob, run_dir: RunDir, slot: int, uid: int | None) -> RunOutput:
        result_r, result_w = os.pipe()
        out_r, out_w = os.pipe()
        limits = self.config.limits
        if job.cpu_seconds is not None:
            limits = limits.model_copy(update={"cpu_seconds": job.cpu_seconds})
        argv, env = command(self.plan, limits, run_dir, uid, result_w, job.run_id)
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out_w, stderr=out_w, env=env,
                pass_fds=(result_w,), start_new_session=True, cwd=str(run_dir.work), close_fds=True,
            )
        except BaseException:
            os.close(result_r)
            os.close(out_r)
            raise
        finally:
            os.close(result_w)
            os.close(out_w)
        result = PipeCollector(result_r, self.config.limits.result_max_bytes)
        output = PipeCollector(out_r, self.config.output_cap_bytes)
        timed_out = False
        try:
            try:
                await asyncio.wait_for(proc.wait(), job.timeout_seconds)
            except asyncio.TimeoutError:
                timed_out = True
        finally:
            kill_group(proc.pid)  # whatever the script left in its group goes too
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            await reap_uid(uid)  # the slot's uid is free for the next run only when nothing of this one is left
            await result.finish(grace=1.0)
            await output.finish(grace=0.5)
        duration_ms = (time.monotonic() - started) * 1000.0
        outcome, reason, message, sig = classify(proc.returncode, timed_out, job.timeout_seconds, result,
                                                 self.config.limits.result_max_bytes, self.plan.outer)
        lines, truncated = log_lines(output)
        return RunOutput(
            outcome=outcome, reason=reason, message=message,
            result=bytes(result.buffer) if outcome is Outcome.SUCCEEDED else None,
            logs=lines, logs_truncated=truncated, duration_ms=duration_ms, isolation=self.isolation,
            exit_code=proc.returncode, signal=sig,
        )

