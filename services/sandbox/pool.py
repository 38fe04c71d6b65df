"""The warm pool: one warm parent per slot, every run a fresh fork of it.

A warm parent (warm_parent.py) has imported vectorbt and compiled its
kernels with a warm-up backtest, with numba, OpenMP and BLAS threads at 1,
inside the same outer jail as a fresh run. For each run the service sends it
the run's paths and two pipes (output, result) over a Unix socket; it forks a
child that confines itself (jail_boot.confine: fds, rlimits, the slot's uid,
no_new_privs, seccomp) and runs the script. Runs of a slot are sequential, so
the slot's uid belongs to one run at a time: after each run every process of
that uid is killed (setsid daemons included).

A parent is replaced after ``recycle_after`` runs, when it dies (a run then
fails cleanly with reason WORKER_DIED), or when it does not answer.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid

from services.common.logs import log as jlog
from services.sandbox.config import SandboxConfig
from services.sandbox.isolation import IsolationPlan, RunDir, SlotDirs, numba_cache_dir, parent_command, sweep_uid_command
from services.sandbox.runner import (
    Outcome,
    PipeCollector,
    Runner,
    RunJob,
    RunOutput,
    classify,
    kill_group,
    log_lines,
    reap_uid,
)

logger = logging.getLogger("sandbox.pool")

READY_TIMEOUT = 300.0  # a cold numba cache compiles for a while on a busy machine
DONE_GRACE = 5.0  # after a kill, how long the parent may take to report the child's end


class ParentDied(RuntimeError):
    pass


class WarmParent:
    """One warm parent process and its control socket."""

    def __init__(self, runner: "PoolRunner", slot: int):
        self.runner = runner
        self.slot = slot
        self.token = f"warm-parent-{slot}-{uuid.uuid4().hex[:8]}"
        self.proc: asyncio.subprocess.Process | None = None
        self.sock: socket.socket | None = None
        self.messages: asyncio.Queue[dict | None] = asyncio.Queue()
        self.reader: asyncio.Task | None = None
        self.runs = 0
        self.broken = False
        self.warm_ms = 0.0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not self.broken

    async def start(self) -> None:
        config, plan = self.runner.config, self.runner.plan
        dirs = self.runner.slot_dirs[self.slot]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv, env = parent_command(plan, config.limits, dirs, plan.uid_for(self.slot), theirs.fileno(), self.token,
                                   self.runner.numba_cache)
        log_path = dirs.home.parent / f"warm-parent-{self.slot}.log"
        try:
            with open(log_path, "ab") as log_file:
                self.proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env,
                    pass_fds=(theirs.fileno(),), start_new_session=True, cwd=str(dirs.home),
                )
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self.reader = asyncio.create_task(self._read())
        started = time.monotonic()
        try:
            message = await asyncio.wait_for(self.messages.get(), READY_TIMEOUT)
        except asyncio.TimeoutError:
            message = None
        if not message or not message.get("ready"):
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            await self.stop()
            raise RuntimeError(f"warm parent {self.slot} did not become ready: {message}\n{tail}")
        self.warm_ms = message.get("warm_ms", 0.0)
        if message.get("threads", 1) != 1:
            logger.warning("warm parent has threads before forking", extra={"fields": {"threads": message["threads"]}})
        jlog(logger, logging.INFO, "warm parent ready", slot=self.slot, pid=self.proc.pid,
             warm_ms=round(self.warm_ms), start_ms=round((time.monotonic() - started) * 1000))

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(self.sock, 65536)
                if not data:
                    break
                await self.messages.put(json.loads(data))
        except (OSError, ValueError):
            pass
        finally:
            self.broken = True
            await self.messages.put(None)

    async def next(self, kind: str, run_id: str) -> dict:
        while True:
            message = await self.messages.get()
            if message is None:
                raise ParentDied(f"warm parent {self.slot} died")
            if message.get(kind) == run_id:
                return message

    def send(self, message: dict, fds: list[int]) -> None:
        if self.sock is None:
            raise ConnectionError("warm parent stopped")
        data = json.dumps(message).encode()
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.send(data)

    async def stop(self) -> None:
        self.broken = True
        if self.proc is not None and self.proc.returncode is None:
            kill_group(self.proc.pid)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class PoolRunner(Runner):
    mode = "pool"

    def __init__(self, config: SandboxConfig, plan: IsolationPlan):
        super().__init__(config, plan)
        self.slot_dirs: dict[int, SlotDirs] = {}
        self.parents: dict[int, WarmParent] = {}
        self.starting: dict[int, asyncio.Task] = {}
        self.numba_cache = None
        self._warming: asyncio.Task | None = None

    @property
    def isolation(self) -> list[str]:
        layers = list(self.plan.active)
        layers.append("run-pid-namespace")  # jail_boot.own_pid_namespace, in every child
        if "non-root-uid" in layers:
            layers.append("kill-by-uid")
        return layers

    async def start(self) -> None:
        await super().start()
        self.numba_cache = await asyncio.to_thread(numba_cache_dir, self.config.numba_cache_dir)
        for slot in range(self.config.pool_size):
            self.slot_dirs[slot] = await asyncio.to_thread(SlotDirs.create, self.scratch, slot)
        # The first parent is ready before the service says SERVING; the others warm up
        # behind it, one after another (parallel warm-ups only fight over the CPUs).
        await self._spawn(0)
        if self.config.pool_size > 1:
            self._warming = asyncio.create_task(self._warm_rest())

    async def _warm_rest(self) -> None:
        for slot in range(1, self.config.pool_size):
            task = asyncio.create_task(self._spawn(slot))
            self.starting[slot] = task
            with contextlib.suppress(Exception):  # a failure is retried when the slot is used
                await task

    async def _spawn(self, slot: int) -> WarmParent:
        parent = WarmParent(self, slot)
        await parent.start()
        self.parents[slot] = parent
        return parent

    def _respawn_later(self, slot: int) -> None:
        old = self.parents.pop(slot, None)

        async def replace() -> WarmParent:
            if old is not None:
                await old.stop()
            await self._sweep(slot)
            return await self._spawn(slot)

        self.starting[slot] = asyncio.create_task(replace())

    async def _parent(self, slot: int) -> WarmParent:
        task = self.starting.get(slot)
        if task is not None:
            try:
                return await task
            finally:
                if task.done():
                    self.starting.pop(slot, None)
        parent = self.parents.get(slot)
        if parent is None or not parent.alive:
            self._respawn_later(slot)
            return await self._parent(slot)
        return parent

    async def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        for task in self.starting.values():
            task.cancel()
        for parent in list(self.parents.values()):
            await parent.stop()
        for slot in self.slot_dirs:
            await self._sweep(slot)
        await super().close()

    async def _sweep(self, slot: int) -> None:
        """From outside the jail: kill every process of the slot's uid, and wait until they are gone."""
        uid = self.plan.uid_for(slot)
        if uid is None:
            return
        proc = await asyncio.create_subprocess_exec(*sweep_uid_command(uid), stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await proc.wait()
        await reap_uid(uid)

    def _run_root(self, slot: int):
        return self.slot_dirs[slot].runs

    async def _execute(self, job: RunJob, run_dir: RunDir, slot: int, uid: int | None) -> RunOutput:
        return await self._execute_on(await self._parent(slot), job, run_dir, slot)

    async def _execute_on(self, parent: WarmParent, job: RunJob, run_dir: RunDir, slot: int) -> RunOutput:
        dirs = self.slot_dirs[slot]
        result_r, result_w = os.pipe()
        out_r, out_w = os.pipe()
        message = {
            "run": job.run_id,
            "script": dirs.jail_path(self.plan, run_dir.script),
            "data": dirs.jail_path(self.plan, run_dir.data),
            "workdir": dirs.jail_path(self.plan, run_dir.work),
        }
        if job.cpu_seconds is not None:
            message["cpu_seconds"] = job.cpu_seconds
        started = time.monotonic()
        try:
            parent.send(message, [out_w, result_w])
        except OSError:
            for fd in (result_r, out_r):
                os.close(fd)
            self._respawn_later(slot)
            return self._failed_before_start(started, "the warm parent is gone")
        finally:
            os.close(result_w)
            os.close(out_w)
        parent.runs += 1
        result = PipeCollector(result_r, self.config.limits.result_max_bytes)
        output = PipeCollector(out_r, self.config.output_cap_bytes)
        timed_out = died = False
        status = None
        try:
            try:
                done = await asyncio.wait_for(parent.next("done", job.run_id), job.timeout_seconds)
                status = done["status"]
            except asyncio.TimeoutError:
                timed_out = True
            except ParentDied:
                died = True
        finally:
            if timed_out or status is None:
                with contextlib.suppress(OSError):  # the parent kills the run's group ...
                    parent.send({"kill": job.run_id}, [])
            if timed_out or died or status is None:
                await self._sweep(slot)  # ... and everything of its uid dies from outside
            if timed_out:
                try:
                    await asyncio.wait_for(parent.next("done", job.run_id), DONE_GRACE)
                except (asyncio.TimeoutError, ParentDied):
                    died = True
            await result.finish(grace=1.0)
            await output.finish(grace=0.5)
            if died or not parent.alive:
                self._respawn_later(slot)
            elif parent.runs >= self.config.recycle_after:
                self._respawn_later(slot)
        duration_ms = (time.monotonic() - started) * 1000.0
        lines, truncated = log_lines(output)
        if died and not timed_out:
            return RunOutput(Outcome.KILLED, "WORKER_DIED", "the warm worker running this code died; the run was stopped",
                             None, lines, truncated, duration_ms, self.isolation)
        returncode = None
        if status is not None and status >= 0:
            returncode = os.waitstatus_to_exitcode(status)
        outcome, reason, text, sig = classify(returncode, timed_out, job.timeout_seconds, result,
                                              self.config.limits.result_max_bytes, "none")
        return RunOutput(outcome, reason, text, bytes(result.buffer) if outcome is Outcome.SUCCEEDED else None,
                         lines, truncated, duration_ms, self.isolation, exit_code=returncode, signal=sig)

    def _failed_before_start(self, started: float, why: str) -> RunOutput:
        return RunOutput(Outcome.KILLED, "WORKER_DIED", why, None, [], False,
                         (time.monotonic() - started) * 1000.0, self.isolation)
