"""Adversarial programs, run below the policy in the warm pool, with the host
checked after each one.

Every program tries to get out. It prints ``ESCAPED <what>`` when something
works that must not; the test fails on any such line. After each program the
host is checked: no process of the run's uid is left, nothing was written in
a world-writable canary directory or /tmp, no connection reached a listener
on the host's loopback, the planted secret appears nowhere in the output, and
the run directory is gone. Programs name the isolation layers they rely on and
are skipped where one is off (that layer is then reported off by the service).

The fresh-interpreter mode shares the jail (bwrap view, jail_boot.confine);
test_containment.py runs both modes.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import pathlib
import socket
import textwrap

import pytest

from services.sandbox import isolation
from services.sandbox.config import SandboxConfig
from services.sandbox.market_data import BundledProvider, DataRequest, prepare
from services.sandbox.result import ResultRejected, verify
from services.sandbox.runner import Outcome, RunJob
from services.sandbox.runners import make_runner

from .test_containment import processes_of_uid

ROOT = pathlib.Path(__file__).resolve().parents[2]
SECRET = "stratexec-planted-secret-7f3a9c"
PWNED = pathlib.Path("/tmp/stratexec-adversarial-pwned")

BASE = {"network-namespace", "mount-namespace", "non-root-uid", "seccomp", "kill-by-uid", "rlimits"}


@dataclasses.dataclass
class Host:
    """What the programs attack, and how the test looks at it afterwards."""

    canary: pathlib.Path  # world-writable host directory
    secret_file: pathlib.Path  # world-readable host file holding SECRET
    tcp: socket.socket
    udp: socket.socket
    abstract: socket.socket
    abstract_name: str


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    base = tmp_path_factory.mktemp("adversarial-host")
    canary = base / "canary"
    canary.mkdir()
    os.chmod(base, 0o755)
    os.chmod(canary, 0o777)
    secret_file = base / "secret.txt"
    secret_file.write_text(SECRET)
    os.chmod(secret_file, 0o644)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    abstract_name = f"stratexec-adversarial-{os.getpid()}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind("\0" + abstract_name)
    abstract.listen(4)
    abstract.setblocking(False)
    old = os.environ.get("STRATEXEC_PLANTED_SECRET")
    os.environ["STRATEXEC_PLANTED_SECRET"] = SECRET  # in the service's own environment
    try:
        yield Host(canary, secret_file, tcp, udp, abstract, abstract_name)
    finally:
        if old is None:
            os.environ.pop("STRATEXEC_PLANTED_SECRET", None)
        for sock in (tcp, udp, abstract):
            sock.close()


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("adversarial") / "scratch"
    config = SandboxConfig.from_env().model_copy(update=dict(scratch_dir=str(scratch), pool_size=1, mode="pool",
                                 output_cap_bytes=50_000, recycle_after=1000))
    plan = isolation.probe(config)
    loop = asyncio.new_event_loop()
    runner = make_runner(config, plan)
    loop.run_until_complete(runner.start())
    data = prepare(BundledProvider(ROOT / "data" / "ohlcv"), DataRequest(("BTC-USD",), "2024-01-01", "2024-03-31"))
    yield loop, runner, plan, scratch, data
    loop.run_until_complete(runner.close())
    loop.close()
    isolation.release_uid_block(plan.uid_base)


# (name, program, layers it relies on beyond BASE, expected outcomes or None for any)
PROGRAMS = [
    # --- network, every family, and DNS
    ("tcp to the host's loopback", """
        import socket
        s = socket.create_connection(("127.0.0.1", {tcp_port}), timeout=2)
        print("ESCAPED tcp")
    """, set(), None),
    ("tcp over ipv6 loopback", """
        import socket
        socket.create_connection(("::1", {tcp_port}), timeout=2)
        print("ESCAPED tcp6")
    """, set(), None),
    ("udp datagram to the host", """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"hello", ("127.0.0.1", {udp_port}))
        print("ESCAPED udp")
    """, set(), None),
    ("abstract unix socket of the host", """
        import socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("\\0{abstract_name}")
        print("ESCAPED abstract unix socket")
    """, set(), None),
    ("raw packet socket", """
        import socket
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        print("ESCAPED packet socket")
    """, set(), None),
    ("netlink socket", """
        import socket
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        print("ESCAPED netlink")
    """, set(), None),
    ("dns lookup", """
        import socket
        socket.getaddrinfo("example.com", 443)
        print("ESCAPED dns")
    """, set(), None),
    ("vectorbt download", """
        import vectorbt as vbt
        vbt.YFData.download("BTC-USD", period="5d")
        print("ESCAPED download")
    """, set(), None),
    ("pandas reads a url", """
        import pandas as pd
        pd.read_csv("http://127.0.0.1:{tcp_port}/x.csv")
        print("ESCAPED pandas url")
    """, set(), None),
    # --- secrets: environment, /proc, host files
    ("secret in the environment", """
        import os
        if "{secret}" in repr(dict(os.environ)):
            print("ESCAPED env")
    """, set(), None),
    ("secret in any /proc/*/environ or cmdline", """
        import os
        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
            for name in ("environ", "cmdline"):
                try:
                    if b"{secret}" in open(f"/proc/{{pid}}/{{name}}", "rb").read():
                        print("ESCAPED", pid, name)
                except OSError:
                    pass
    """, set(), None),
    ("host file with the secret", """
        print("ESCAPED", open("{secret_file}").read())
    """, set(), None),
    ("service source and system files", """
        for path in ("{root}/services/sandbox/server.py", "/etc/shadow", "/etc/passwd", "/root/.bashrc",
                     "/etc/hostname", "/proc/1/root/etc/passwd"):
            try:
                open(path).read(1)
                print("ESCAPED read", path)
            except OSError:
                pass
    """, set(), None),
    ("pandas reads a host file", """
        import pandas as pd
        pd.read_csv("{secret_file}")
        print("ESCAPED pandas read")
    """, set(), None),
    ("the warm parent's memory", """
        import os
        try:
            open(f"/proc/{{os.getppid()}}/mem", "rb").read(1)
            print("ESCAPED parent memory")
        except OSError:
            pass
    """, set(), None),
    # --- writes outside the run directory
    ("write the world-writable canary", """
        open("{canary}/pwned", "w").write("x")
        print("ESCAPED canary")
    """, set(), None),
    ("write /tmp, /var/tmp, /dev/shm and /", """
        for path in ("{pwned}", "/var/tmp/pwned", "/dev/shm/pwned", "/pwned", "/sandbox/pwned"):
            try:
                open(path, "w").write("x")
                print("ESCAPED write", path)
            except OSError:
                pass
    """, set(), None),
    ("numpy and pandas writers", """
        import numpy as np, pandas as pd
        for attempt in (lambda: np.save("{canary}/a.npy", np.zeros(3)), lambda: pd.DataFrame({{"a": [1]}}).to_csv("{pwned}")):
            try:
                attempt()
                print("ESCAPED writer")
            except OSError:
                pass
    """, set(), None),
    ("overwrite the market data", """
        import glob, sys, os
        data = glob.glob(os.path.join(os.path.dirname(sys.argv[0]), "data", "*.csv"))[0]
        try:
            open(data, "a").write("forged")
            print("ESCAPED data write")
        except OSError:
            pass
        try:
            os.chmod(data, 0o666)
            print("ESCAPED chmod")
        except OSError:
            pass
    """, set(), None),
    ("symlink out of the work dir", """
        import os
        os.symlink("{canary}", "escape")
        os.symlink("/etc", "etc-link")
        try:
            open("escape/pwned", "w").write("x")
            print("ESCAPED via symlink")
        except OSError:
            pass
    """, set(), None),
    ("a work dir that fights its removal", """
        import os
        os.makedirs("a/b/c")
        open("a/b/c/f", "w").write("x")
        os.chmod("a/b/c", 0)
        os.chmod("a/b", 0)
        os.chmod("a", 0)
        os.chmod(".", 0o500)
    """, set(), None),
    # --- privileges, exec and the kernel
    ("setuid back to root", """
        import os
        try:
            os.setuid(0)
            print("ESCAPED setuid")
        except OSError:
            pass
    """, set(), None),
    ("exec a shell", """
        import subprocess
        subprocess.run(["/bin/sh", "-c", "touch {pwned}"])
        print("ESCAPED exec")
    """, set(), None),
    ("system() through ctypes", """
        import ctypes
        if ctypes.CDLL(None).system(b"touch {pwned}") == 0:
            print("ESCAPED system")
    """, set(), None),
    ("__subclasses__ walk to os.system", """
        for cls in ().__class__.__base__.__subclasses__():
            if cls.__name__ == "_wrap_close":
                if cls.__init__.__globals__["system"]("touch {pwned}") == 0:
                    print("ESCAPED subclasses")
    """, set(), None),
    ("pickle payload", """
        import pickle, os
        class P:
            def __reduce__(self):
                return (os.system, ("touch {pwned}",))
        if pickle.loads(pickle.dumps(P())) == 0:
            print("ESCAPED pickle")
    """, set(), None),
    ("marshal and base64 payload", """
        import base64, marshal
        code = compile("import os\\nrc = os.system('touch {pwned}')", "x", "exec")
        scope = {{}}
        exec(marshal.loads(base64.b64decode(base64.b64encode(marshal.dumps(code)))), scope)
        if scope["rc"] == 0:
            print("ESCAPED marshal")
    """, set(), None),
    ("new namespaces and mounts", """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        for flag in (0x10000000, 0x40000000, 0x00020000):
            if libc.unshare(flag) == 0:
                print("ESCAPED unshare", hex(flag))
        if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0:
            print("ESCAPED mount")
    """, set(), None),
    ("ptrace the parent", """
        import ctypes, os
        if ctypes.CDLL(None, use_errno=True).ptrace(16, os.getppid(), 0, 0) == 0:
            print("ESCAPED ptrace")
    """, set(), None),
    # The run's parent is pid 1 of its own pid namespace (same uid): the kernel accepts
    # kill() to it but drops the signal (init has no handler), so a kill that
    # "succeeds" is an escape only if the target is gone afterwards.
    ("signal the parent and everyone", """
        import os, signal, time
        for target in (os.getppid(), 1):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                continue
            time.sleep(0.2)
            try:
                os.kill(target, 0)
            except ProcessLookupError:
                print("ESCAPED killed", target)
            except PermissionError:
                pass
        os.kill(-1, signal.SIGKILL)
    """, set(), None),
    ("bpf and keyctl", """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(321, 0, 0, 0) >= 0:
            print("ESCAPED bpf")
        if libc.syscall(250, 0, 0, 0, 0, 0) >= 0:
            print("ESCAPED keyctl")
    """, set(), None),
    # --- resource bombs and processes that will not die
    ("fork bomb", """
        import os, time
        n = 0
        try:
            for _ in range(1000):
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                n += 1
        except OSError:
            pass
        if n >= 64:
            print("ESCAPED forks", n)
    """, set(), None),
    ("thread bomb", """
        import threading, time
        n = 0
        try:
            for _ in range(1000):
                threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
                n += 1
        except RuntimeError:
            pass
        if n >= 64:
            print("ESCAPED threads", n)
    """, set(), None),
    ("memory bomb", """
        blocks = []
        for _ in range(64):
            blocks.append(bytearray(1024 * 1024 * 1024))
        print("ESCAPED memory")
    """, set(), {Outcome.FAILED, Outcome.KILLED, Outcome.TIMED_OUT}),  # zeroing gigabytes may outlast 2 s
    ("disk bomb", """
        with open("big", "wb") as fh:
            for _ in range(1024):
                fh.write(b"x" * (1024 * 1024))
        print("ESCAPED disk")
    """, set(), {Outcome.FAILED, Outcome.KILLED}),
    ("open files bomb", """
        import os
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(100000)]
        print("ESCAPED fds", len(fds))
    """, set(), {Outcome.FAILED}),
    ("infinite loop", """
        while True:
            pass
    """, set(), {Outcome.TIMED_OUT}),
    ("loop that releases the GIL", """
        import numpy as np
        a = np.ones((400, 400))
        while True:
            a @ a
    """, set(), {Outcome.TIMED_OUT}),
    ("ignores SIGTERM and sleeps", """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        time.sleep(3600)
    """, set(), {Outcome.TIMED_OUT}),
    ("double-fork daemon with setsid", """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(3600)
            os._exit(0)
        print("daemon left behind")
    """, set(), None),
    ("daemon that keeps the result channel open", """
        import os, time
        if os.fork() == 0:
            os.setsid()
            time.sleep(3600)
        print("exiting, channel still held by the daemon")
    """, set(), {Outcome.FAILED}),
    ("output flood", """
        import sys
        while True:
            sys.stdout.write("flood " * 1000 + "\\n")
    """, set(), {Outcome.TIMED_OUT}),
    # --- other processes of the jail, and the interpreter itself
    ("signal every process it can name", """
        import os, signal
        others = []
        for pid in range(1, 4096):
            if pid in (os.getpid(), os.getppid()):  # itself, and the init of its own pid namespace
                continue
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                pass
            others.append(pid)
        if others:
            print("ESCAPED processes outside the run can be signalled:", others)
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    """, set(), None),
    ("plant a module in the working directory and read PYTHON* variables", """
        import os, sys
        open("json_helpers_planted.py", "w").write("X = 1")
        try:
            import json_helpers_planted  # noqa: F401
            print("ESCAPED a module planted in the working directory was imported")
        except ImportError:
            pass
        if not (sys.flags.isolated and sys.flags.ignore_environment and sys.flags.safe_path):
            print("ESCAPED the interpreter is not isolated:", sys.flags)
    """, set(), None),
    # --- forged results
    ("result printed on stdout", """
        import json
        print(json.dumps({{"metrics": {{"total_return": 1e6}}, "equity": [["2024-01-01", 1e6]], "trades": []}}))
    """, set(), {Outcome.FAILED}),
]


def ids(program):
    return program[0].replace(" ", "-")


@pytest.mark.parametrize("name,program,layers,outcomes", PROGRAMS, ids=[ids(p) for p in PROGRAMS])
def test_adversarial_program_is_contained(pool, host, name, program, layers, outcomes):
    loop, runner, plan, scratch, data = pool
    missing = sorted((BASE | layers) - set(runner.isolation))
    if missing:
        pytest.skip(f"isolation layers off here: {missing}")
    code = textwrap.dedent(program).format(
        tcp_port=host.tcp.getsockname()[1], udp_port=host.udp.getsockname()[1], abstract_name=host.abstract_name,
        secret=SECRET, secret_file=host.secret_file, root=ROOT, canary=host.canary, pwned=PWNED,
    )
    job = RunJob(code=code, data=data, timeout_seconds=2.0)
    out = loop.run_until_complete(runner.run(job))
    escaped = [line for line in out.logs if line.startswith("ESCAPED")]
    assert not escaped, (escaped, out.logs[-10:])
    if outcomes is not None:
        assert out.outcome in outcomes, (out.outcome, out.reason, out.logs[-5:])
    # The host afterwards.
    uid = plan.uid_for(0)
    assert processes_of_uid(uid) == []
    assert list(host.canary.iterdir()) == []
    assert not PWNED.exists()
    with pytest.raises(BlockingIOError):
        host.tcp.accept()
    with pytest.raises(BlockingIOError):
        host.udp.recv(100)
    with pytest.raises(BlockingIOError):
        host.abstract.accept()
    assert SECRET not in "\n".join(out.logs)
    assert not any(scratch.rglob("run-*"))


def test_the_pool_still_answers_after_the_programs(pool):
    loop, runner, _plan, _scratch, data = pool
    from .scripts import EXAMPLE

    out = loop.run_until_complete(runner.run(RunJob(code=EXAMPLE, data=data, timeout_seconds=30)))
    assert out.outcome is Outcome.SUCCEEDED, out.logs[-5:]
    assert verify(out.result, 10000.0)["metrics"]["final_value"] > 0


def test_a_result_with_forged_metrics_is_rejected(pool):
    loop, runner, _plan, _scratch, data = pool
    code = textwrap.dedent("""
        import json, os
        fake = {"metrics": {"total_return": 250.0, "trades": 3, "open_trades": 0, "cagr": 0.0, "max_drawdown": 0.0,
                "sharpe_ratio": None, "win_rate": None, "vs_benchmark": None},
                "equity": [["2024-01-01", 10000.0], ["2024-01-02", 10000.0]], "benchmark_equity": [], "trades": []}
        with os.fdopen(int(os.environ["STRATEXEC_RESULT_FD"]), "w") as channel:
            json.dump(fake, channel)
    """)
    out = loop.run_until_complete(runner.run(RunJob(code=code, data=data, timeout_seconds=10)))
    assert out.outcome is Outcome.SUCCEEDED
    with pytest.raises(ResultRejected):
        verify(out.result, 10000.0)
