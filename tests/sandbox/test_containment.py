"""The jail itself, below the policy: unvalidated code run by the same runner the
server uses. Validation is a first filter; these show what holds without it."""
from __future__ import annotations

import dataclasses

import asyncio
import json
import os
import pathlib
import signal
import socket

import pytest

from services.sandbox import isolation
from services.sandbox.config import SandboxConfig
from services.sandbox.market_data import BundledProvider, DataRequest, prepare
from services.sandbox.result import ResultRejected, verify
from services.sandbox.runner import Outcome, RunJob
from services.sandbox.runners import make_runner

from .conftest import PLANTED, surviving
from .scripts import EXAMPLE

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data():
    return prepare(BundledProvider(ROOT / "data" / "ohlcv"), DataRequest(("BTC-USD",), "2024-01-01", "2024-03-31"))


class Jail:
    """A started runner (fresh or warm pool) on its own event loop, for the whole module."""

    def __init__(self, mode: str, scratch: pathlib.Path, shared_uid: bool = False):
        self.mode = mode
        self.scratch = scratch
        self.config = SandboxConfig.from_env().model_copy(update=dict(scratch_dir=str(scratch), pool_size=1,
                                          output_cap_bytes=200_000, mode=mode, recycle_after=1000))
        self.plan = isolation.probe(self.config)
        if shared_uid:  # as when the service is not root: runs have the warm parent's uid
            isolation.release_uid_block(self.plan.uid_base)
            self.plan = dataclasses.replace(self.plan, active=tuple(x for x in self.plan.active if x != "non-root-uid"))
        self.loop = asyncio.new_event_loop()
        self.runner = make_runner(self.config, self.plan)
        self.loop.run_until_complete(self.runner.start())

    @property
    def layers(self) -> list[str]:
        return self.runner.isolation

    @property
    def uid(self) -> int | None:
        return self.plan.uid_for(0)

    def run(self, code: str, data, timeout: float = 120.0):  # a bound against hangs: a fresh interpreter may take 40 s to import vectorbt on a loaded machine
        job = RunJob(code=code, data=data, timeout_seconds=timeout)
        return job, self.loop.run_until_complete(self.runner.run(job))

    def survivors(self, job) -> list[int]:
        """Processes of the run still alive: by its uid, or by its id on the command line."""
        found = surviving(job.run_id)
        if self.uid is not None:
            found += processes_of_uid(self.uid)
        return found

    def close(self) -> None:
        self.loop.run_until_complete(self.runner.close())
        self.loop.close()
        isolation.release_uid_block(self.plan.uid_base)


def processes_of_uid(uid: int) -> list[int]:
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
            if str(uid) in uids and "State:\tZ" not in status:
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module", params=["fresh", "pool"])
def jail(request, tmp_path_factory):
    jail = Jail(request.param, tmp_path_factory.mktemp(f"containment-{request.param}") / "scratch")
    yield jail
    jail.close()


def needs(jail, layer):
    if layer not in jail.layers:
        pytest.skip(f"isolation layer {layer} is off here: {jail.plan.missing.get(layer)}")


def daemon_layer(jail) -> str:
    """What kills a setsid daemon: the run's pid namespace (fresh) or the sweep of its uid (pool)."""
    return "pid-namespace" if jail.mode == "fresh" else "kill-by-uid"


def report_json(out) -> dict:
    lines = [line for line in out.logs if line.startswith("REPORT ")]
    assert lines, out.logs
    return json.loads(lines[-1][len("REPORT "):])


def test_timeout_kills_the_process_group_including_a_forked_grandchild(jail, data):
    code = """
import os, time
if os.fork() == 0:
    if os.fork() == 0:
        while True:
            print("grandchild alive", flush=True)
            time.sleep(0.2)
    time.sleep(300)
time.sleep(0.6)
while True:
    pass
"""
    job, out = jail.run(code, data, timeout=3)
    assert out.outcome is Outcome.TIMED_OUT
    assert "grandchild alive" in out.logs  # the grandchild did run
    assert jail.survivors(job) == []


def test_timeout_kills_a_setsid_grandchild_too(jail, data):
    needs(jail, daemon_layer(jail))  # a new session leaves the process group
    code = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            print("daemon alive", flush=True)
            time.sleep(0.2)
    os._exit(0)
time.sleep(0.6)
while True:
    pass
"""
    job, out = jail.run(code, data, timeout=3)
    assert out.outcome is Outcome.TIMED_OUT
    assert "daemon alive" in out.logs  # the grandchild did run
    assert jail.survivors(job) == []


def test_a_daemon_left_behind_by_a_finished_run_does_not_survive(jail, data):
    needs(jail, daemon_layer(jail))
    code = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(300)
    os._exit(0)
time.sleep(0.3)
print("leaving")
"""
    job, out = jail.run(code, data)
    assert out.outcome is Outcome.FAILED and out.reason == "NO_RESULT"
    assert jail.survivors(job) == []


def test_no_network_inside_the_run(jail, data):
    needs(jail, "network-namespace")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    code = f"""
import json, socket
seen = {{}}
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
    seen["tcp"] = "connected"
except OSError as exc:
    seen["tcp"] = repr(exc)
try:
    socket.getaddrinfo("example.com", 80)
    seen["dns"] = "resolved"
except OSError as exc:
    seen["dns"] = repr(exc)
print("REPORT " + json.dumps(seen))
"""
    try:
        _, out = jail.run(code, data)
        seen = report_json(out)
        assert seen["tcp"] != "connected" and seen["dns"] != "resolved"
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing reached the host's loopback
    finally:
        listener.close()


def test_environment_holds_no_secrets(jail, data, monkeypatch):
    for key, value in PLANTED.items():
        monkeypatch.setenv(key, value)
    code = """
import json, os
seen = {"env": dict(os.environ)}
for path in ("/proc/self/environ", "/proc/1/environ", "/proc/%d/environ" % os.getppid()):
    try:
        seen[path] = open(path, "rb").read().decode(errors="replace")
    except OSError as exc:
        seen[path] = repr(exc)
print("REPORT " + json.dumps(seen))
"""
    _, out = jail.run(code, data)
    seen = report_json(out)
    assert set(seen["env"]) <= {*isolation.run_env("/x", 3), "PWD"}  # PWD: set by bwrap
    blob = json.dumps(seen)
    for key, value in PLANTED.items():
        assert value not in blob and key not in blob


def test_only_stdio_and_the_result_channel_are_inherited(jail, data, tmp_path):
    leak_path = tmp_path / "service-secret.txt"
    leak_path.write_text("secret")
    leaked = os.open(leak_path, os.O_RDONLY)
    os.set_inheritable(leaked, True)
    code = """
import json, os
fds = {}
for name in os.listdir("/proc/self/fd"):
    try:
        fds[name] = os.readlink("/proc/self/fd/" + name)
    except OSError:
        pass
print("REPORT " + json.dumps({"fds": fds, "result_fd": os.environ["STRATEXEC_RESULT_FD"]}))
"""
    try:
        _, out = jail.run(code, data)
    finally:
        os.close(leaked)
    seen = report_json(out)
    assert not any("service-secret" in target for target in seen["fds"].values())
    pipes = {fd for fd, target in seen["fds"].items() if target.startswith("pipe:")}
    assert pipes == {"1", "2", seen["result_fd"]}
    assert len(seen["fds"]) <= 5  # 0, 1, 2, the channel, and listdir's own


def test_private_workdir_is_removed_and_data_is_read_only(jail, data):
    code = """
import json, os
seen = {"cwd": os.getcwd(), "uid": os.getuid()}
open("scratch.txt", "w").write("temporary")
seen["wrote_cwd"] = os.path.exists("scratch.txt")
data = os.path.join(os.path.dirname(os.path.abspath(__import__("sys").argv[0])), "data", "BTC-USD.csv")
try:
    open(data, "a").write("forged,1,1,1,1,1")
    seen["data"] = "written"
except OSError as exc:
    seen["data"] = repr(exc)
print("REPORT " + json.dumps(seen))
"""
    _, out = jail.run(code, data)
    seen = report_json(out)
    assert seen["wrote_cwd"] is True
    if "read-only-data" in jail.layers:
        assert seen["data"] != "written"
    assert not any(jail.scratch.rglob("run-*"))


def test_runs_as_a_non_root_uid(jail, data):
    needs(jail, "non-root-uid")
    _, out = jail.run('import os, json\nprint("REPORT " + json.dumps([os.getuid(), os.geteuid(), os.getgid()]))', data)
    uid, euid, gid = report_json(out)
    assert uid != 0 and euid != 0 and gid != 0


def test_host_files_are_neither_readable_nor_writable(jail, data, tmp_path):
    needs(jail, "mount-namespace")
    target = tmp_path / "escape.txt"
    code = f"""
import json
seen = {{}}
for path in ({str(ROOT / 'services' / 'sandbox' / 'server.py')!r}, "/etc/passwd", "/root/.bashrc"):
    try:
        open(path).read(1)
        seen[path] = "read"
    except OSError as exc:
        seen[path] = repr(exc)
for path in ({str(target)!r}, "/tmp/escape.txt", "/escape.txt"):
    try:
        open(path, "w").write("x")
        seen[path] = "written"
    except OSError as exc:
        seen[path] = repr(exc)
print("REPORT " + json.dumps(seen))
"""
    _, out = jail.run(code, data)
    seen = report_json(out)
    assert "read" not in seen.values() and "written" not in seen.values(), seen
    assert not target.exists() and not pathlib.Path("/escape.txt").exists()


def test_fork_bomb_is_bounded_by_the_process_limit(jail, data):
    needs(jail, "non-root-uid")  # RLIMIT_NPROC is not enforced for root
    code = """
import os, time, json
children = 0
try:
    for _ in range(500):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
except OSError as exc:
    print("REPORT " + json.dumps({"children": children, "error": repr(exc)}))
"""
    job, out = jail.run(code, data)
    seen = report_json(out)
    assert seen["children"] < jail.config.limits.processes
    assert jail.survivors(job) == []


def test_memory_bomb_fails_within_the_address_space_limit(jail, data):
    code = "x = bytearray(64 * 1024 * 1024 * 1024)\nprint('allocated')"
    _, out = jail.run(code, data)
    assert out.outcome in (Outcome.FAILED, Outcome.KILLED)
    assert "allocated" not in out.logs
    assert any("MemoryError" in line for line in out.logs)


def test_a_forged_channel_result_is_rejected_by_the_recomputation(jail, data):
    code = """
import json, os
fake = {"metrics": {"total_return": 500.0, "cagr": 1.0, "sharpe_ratio": 9.9, "max_drawdown": 0.0, "win_rate": 100.0,
        "trades": 12, "open_trades": 0, "vs_benchmark": 400.0},
        "equity": [["2024-01-01", 10000.0], ["2024-01-02", 10100.0]], "benchmark_equity": [], "trades": []}
with os.fdopen(int(os.environ["STRATEXEC_RESULT_FD"]), "w") as channel:
    json.dump(fake, channel)
"""
    _, out = jail.run(code, data)
    assert out.outcome is Outcome.SUCCEEDED  # the process did its job ...
    with pytest.raises(ResultRejected, match="total_return"):
        verify(out.result, 10000.0)  # ... but its numbers do not add up
    with pytest.raises(ResultRejected, match="outside the prepared data"):
        verify(out.result, 10000.0, ("2024-06-01", "2024-12-31"))


def test_seccomp_blocks_exec_inet_sockets_ptrace_and_unshare(jail, data):
    needs(jail, "seccomp")
    code = """
import ctypes, json, os, socket, subprocess
libc = ctypes.CDLL(None, use_errno=True)
seen = {}
for family in ("AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"):
    try:
        socket.socket(getattr(socket, family), socket.SOCK_DGRAM if family != "AF_PACKET" else socket.SOCK_RAW).close()
        seen[family] = "created"
    except OSError as exc:
        seen[family] = repr(exc)
try:
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
    seen["AF_UNIX"] = "created"
except OSError as exc:
    seen["AF_UNIX"] = repr(exc)
try:
    subprocess.run(["/usr/bin/true"])
    seen["exec"] = "ran"
except OSError as exc:
    seen["exec"] = repr(exc)
seen["ptrace"] = libc.ptrace(16, os.getppid(), 0, 0)  # PTRACE_ATTACH
seen["unshare"] = libc.unshare(0x40000000)  # CLONE_NEWNET
print("REPORT " + json.dumps(seen))
"""
    _, out = jail.run(code, data)
    seen = report_json(out)
    assert seen["AF_UNIX"] == "created"
    for key in ("AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "exec"):
        assert "created" != seen[key] != "ran", (key, seen[key])
    assert seen["ptrace"] == -1 and seen["unshare"] == -1


def test_state_does_not_leak_from_one_run_into_the_next(jail, data):
    first = """
import json, os
import pandas as pd
import vectorbt as vbt
vbt.settings["portfolio"]["init_cash"] = 123.0
pd.set_option("display.max_rows", 3)
import stratexec_runtime
stratexec_runtime.LEAK = "from the first run"
open("left-behind.txt", "w").write("x")
print("REPORT " + json.dumps({"done": True}))
"""
    second = """
import json, os
import pandas as pd
import vectorbt as vbt
import stratexec_runtime
print("REPORT " + json.dumps({"init_cash": vbt.settings["portfolio"]["init_cash"],
      "max_rows": pd.get_option("display.max_rows"), "leak": getattr(stratexec_runtime, "LEAK", None),
      "files": os.listdir(".")}))
"""
    assert report_json(jail.run(first, data)[1]) == {"done": True}
    seen = report_json(jail.run(second, data)[1])
    assert seen["init_cash"] != 123.0 and seen["max_rows"] != 3 and seen["leak"] is None
    assert "left-behind.txt" not in seen["files"]


def test_signalling_the_parent_fails_and_the_next_run_succeeds(jail, data):
    needs(jail, "non-root-uid")  # root without a uid of its own may signal anything
    code = """
import json, os, signal
seen = {}
for target in (os.getppid(), 1):
    try:
        os.kill(target, signal.SIGKILL)
        seen[str(target)] = "sent"
    except OSError as exc:
        seen[str(target)] = repr(exc)
print("REPORT " + json.dumps(seen))
"""
    jail.run(code, data)
    _, out = jail.run(EXAMPLE, data)
    assert out.outcome is Outcome.SUCCEEDED, out.logs[-5:]


def test_pool_survives_its_worker_being_killed_mid_run(jail, data):
    if jail.mode != "pool":
        pytest.skip("warm pool only")
    parent = jail.runner.parents[0]

    async def kill_parent_when_running(job):
        task = asyncio.ensure_future(jail.runner.run(job))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if jail.uid is None or processes_of_uid(jail.uid):
                break
        [pid] = warm_parent_pids(parent.token)
        os.kill(pid, signal.SIGKILL)
        return await task

    job = RunJob(code="import time\nprint('started', flush=True)\ntime.sleep(60)\n", data=data, timeout_seconds=60)
    out = jail.loop.run_until_complete(kill_parent_when_running(job))
    assert out.outcome is Outcome.KILLED and out.reason == "WORKER_DIED"
    assert out.duration_ms < 30_000  # it did not wait for the sleep
    assert jail.survivors(job) == []
    _, out = jail.run(EXAMPLE, data)
    assert out.outcome is Outcome.SUCCEEDED, out.logs[-5:]
    assert verify(out.result, 10000.0)["metrics"]["trades"] > 0
    assert jail.runner.parents[0] is not parent  # a new warm parent took over


def warm_parent_pids(token: str) -> list[int]:
    """The warm parent's python process (not its bwrap wrappers, its spare fork or its runs)."""
    found = []
    for pid in surviving(token):
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            status = pathlib.Path(f"/proc/{pid}/status").read_text()
            if pathlib.Path(f"/proc/{pid}/comm").read_text().startswith("sandbox-"):
                continue
        except OSError:
            continue
        uid = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1]
        if "python" in os.path.basename(exe) and uid == str(os.getuid()):
            found.append(pid)
    return found


ISOLATED = """
import json, os, sys
open("planted_module.py", "w").write("PLANTED = True")
try:
    import planted_module  # noqa: F401
    planted = True
except ImportError:
    planted = False
print("REPORT " + json.dumps({"isolated": sys.flags.isolated, "ignore_environment": sys.flags.ignore_environment,
                              "safe_path": sys.flags.safe_path, "no_user_site": sys.flags.no_user_site,
                              "cwd_on_path": os.getcwd() in sys.path or "" in sys.path, "planted": planted,
                              "pythonpath": "PYTHONPATH" in os.environ}))
"""


def test_the_interpreter_is_isolated_from_environment_and_working_directory(jail, data):
    _, out = jail.run(ISOLATED, data)
    seen = report_json(out)
    assert seen == {"isolated": 1, "ignore_environment": 1, "safe_path": True, "no_user_site": 1,
                    "cwd_on_path": False, "planted": False, "pythonpath": False}


KILL_EVERYTHING = """
import json, os, signal
try:
    os.kill(-1, signal.SIGKILL)
    sent = "sent"
except OSError as exc:
    sent = type(exc).__name__
print("REPORT " + json.dumps({"kill_all": sent, "ppid": os.getppid()}), flush=True)
"""


def kill_everything_then_run(jail, data):
    parent = jail.runner.parents.get(0) if jail.mode == "pool" else None
    job, out = jail.run(KILL_EVERYTHING, data)
    assert report_json(out)["kill_all"] in ("sent", "ProcessLookupError")
    assert jail.survivors(job) == []
    if parent is not None:  # the warm parent (and its next spare) did not get the signal
        assert parent.alive and jail.runner.parents[0] is parent, "the run's kill(-1) reached its warm parent"
    _, out = jail.run(EXAMPLE, data, timeout=120)  # a fresh interpreter imports vectorbt first
    assert out.outcome is Outcome.SUCCEEDED, out.logs[-5:]
    if parent is not None:
        assert jail.runner.parents[0] is parent


def test_kill_minus_one_reaches_only_the_runs_own_processes(jail, data):
    kill_everything_then_run(jail, data)


@pytest.fixture(scope="module")
def shared_uid_pool(tmp_path_factory):
    jail = Jail("pool", tmp_path_factory.mktemp("containment-shared-uid") / "scratch", shared_uid=True)
    yield jail
    jail.close()


def test_kill_minus_one_with_the_parents_uid_spares_the_warm_parent(shared_uid_pool, data):
    kill_everything_then_run(shared_uid_pool, data)
