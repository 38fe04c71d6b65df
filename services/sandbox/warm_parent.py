"""A warm parent of the pool: imports vectorbt once, compiles its kernels with a
warm-up backtest, then forks one fresh child per run.

Runs inside the same outer jail as a fresh run (bwrap: own mount, network,
pid, IPC and UTS namespaces, every capability dropped but SETUID/SETGID),
started by services/sandbox/pool.py as

    python -s -B warm_parent.py '<json config>'

with a Unix socket (``control_fd``) to the service. Protocol, one JSON
object per message, SOCK_SEQPACKET:

    parent -> service  {"ready": true, "warm_ms": ..., "threads": 1}
    service -> parent  {"run": id, "script": ..., "data": ..., "workdir": ...}
                       + two fds (SCM_RIGHTS): output pipe, result pipe
    parent -> service  {"started": id, "pid": ...}
    parent -> service  {"done": id, "status": <wait status>}

Every child: own session, stdout/stderr on the output pipe, the result pipe
as fd 3, then jail_boot.confine() (fds, rlimits, the slot's uid,
no_new_privs, seccomp) before the script runs as ``__main__``. A child never
returns into this loop: it leaves with os._exit. This process is never
dumpable, so a child cannot read its memory through /proc.
"""
from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I: the script's directory is not on the path
import jail_boot  # noqa: E402 (beside this file, inside the jail too)

RESULT_FD = 3
PR_SET_NAME = 15
PR_SET_PDEATHSIG = 1
MAX_MESSAGE = 65536

def send(sock: socket.socket, message: dict) -> None:
    sock.send(json.dumps(message).encode())


# Every form of Portfolio.from_signals that services/codegen/emit.py writes: (name, columns, keyword
# arguments). The warm parent runs each once and builds its result, so their numba kernels are compiled
# (and in the shared cache) before the pool serves. tests/sandbox/kernel_families.py runs the compiler's
# matching strategies through the pool and fails when a run had to compile a kernel itself. When the
# compiler learns a new form (shorts, next-open fills, ...), add its entry here. "atr" stands for a
# per-bar stop distance (an array, as the ATR stops are emitted). Long and short signals (direction short
# or both, with lock_cash and an explicit call sequence) need no entry of their own: they run the same
# kernels, which the families of tests/sandbox/kernel_families.py with shorts show.
EMITTED = {"stop_entry_price": "close", "stop_exit_price": "stopmarket", "direction": "longonly",
           "accumulate": False, "upon_long_conflict": "exit"}
SHARED_CASH = {"cash_sharing": True, "group_by": True, "call_seq": "auto"}
KERNEL_FAMILIES: list[tuple[str, int, dict]] = [
    ("one column, exit signals only", 1, {}),
    ("one column, take profit and stop loss", 1, {**EMITTED, "tp_stop": 0.07, "sl_stop": 0.05, "sl_trail": False}),
    ("one column, trailing stop", 1, {**EMITTED, "sl_stop": 0.05, "sl_trail": True}),
    ("one column, ATR stop", 1, {**EMITTED, "sl_stop": "atr", "sl_trail": False}),
    ("several columns, shared cash, exit signals only", 2, {**SHARED_CASH}),
    ("several columns, shared cash, stops", 2, {**SHARED_CASH, **EMITTED, "tp_stop": 0.07, "sl_stop": 0.08, "sl_trail": False}),
    ("several columns, shared cash, trailing stop", 2, {**SHARED_CASH, **EMITTED, "sl_stop": 0.1, "sl_trail": True}),
    ("several columns, shared cash, ATR stop", 2, {**SHARED_CASH, **EMITTED, "sl_stop": "atr", "sl_trail": False}),
    ("several columns, shared cash, equal value", 2, {**SHARED_CASH, **EMITTED, "sl_stop": 0.08, "sl_trail": False,
                                                      "size": 5000.0, "size_type": "value"}),
]


def _synthetic_bars(seed: int, index):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, len(index))))
    return pd.DataFrame({"open": close * 0.999, "high": close * 1.01, "low": close * 0.99, "close": close,
                         "adj_close": close, "volume": 1000.0}, index=index)


def warm_kernel_families(bars: dict) -> None:
    """Run every entry of KERNEL_FAMILIES on synthetic bars (``bars``: symbol -> OHLCV frame), with its result."""
    import pandas as pd
    import vectorbt as vbt

    from stratexec_runtime.report import build_result

    symbols = list(bars)
    for _name, columns, family in KERNEL_FAMILIES:
        chosen = symbols[:columns]
        frame = {field: pd.DataFrame({s: bars[s][field] for s in chosen}) for field in ("open", "high", "low", "close")}
        close = frame["close"] if columns > 1 else frame["close"][chosen[0]]
        ohlc = {field: (f if columns > 1 else f[chosen[0]]) for field, f in frame.items()}
        sma = close.rolling(20).mean()
        entries, exits = close <= 0.95 * sma, close > sma * 1.1
        kwargs = {"size": 1.0, "size_type": "percent", **family}
        if kwargs.get("sl_stop") == "atr":
            kwargs["sl_stop"] = (ohlc["high"] - ohlc["low"]).ewm(alpha=1 / 14, adjust=False).mean() * 2 / close
        pf = vbt.Portfolio.from_signals(close, entries, exits, open=ohlc["open"], high=ohlc["high"], low=ohlc["low"],
                                        price=close, init_cash=10000.0, fees=0.001, slippage=0.0005, freq="1D", **kwargs)
        bench = vbt.Portfolio.from_holding(ohlc["close"] if columns == 1 else frame["close"][chosen[0]],
                                           init_cash=10000.0, fees=0.001, slippage=0.0005, freq="1D")
        build_result(pf, bench, 10000.0, chosen)
        pf.trades.records_arr


def warm_up(home: str) -> None:
    """Import everything a backtest uses and compile vectorbt's kernels on synthetic prices."""
    try:  # tqdm (used by vectorbt) starts a monitor thread: no threads in a process that forks
        import tqdm

        tqdm.tqdm.monitor_interval = 0
    except ImportError:
        pass
    import numpy as np
    import pandas as pd
    import vectorbt as vbt

    from stratexec_runtime import load_prices

    index = pd.date_range("2023-01-01", periods=400, freq="D")
    bars = {}
    for seed, symbol in enumerate(("WARM-USD", "WARM2-USD"), start=7):
        path = os.path.join(home, f"{symbol}.csv")
        _synthetic_bars(seed, index).to_csv(path, index_label="date")
        load_prices(path, [symbol], "2023-03-01", "2024-01-31", "1w", warmup_bars=5)
        bars[symbol] = load_prices(path, [symbol], "2023-01-01", "2024-12-31", "1d")[symbol]
        os.remove(path)
    warm_kernel_families(bars)
    close = bars["WARM-USD"]["close"]
    ohlc = bars["WARM-USD"]
    pf = vbt.Portfolio.from_signals(close, close < close.rolling(20).mean(), close > close.rolling(20).mean(), freq="1D")
    pf.stats()
    pf.drawdowns.records_readable
    sma = close.rolling(20).mean()
    # Sweeps (stratexec_runtime.sweep): 2-D signals with a stop level per column compile other kernels.
    wide = np.column_stack([(close <= 0.95 * sma).to_numpy(), (close <= 0.9 * sma).to_numpy()])
    # Then the sweep's own kernels: the equity of every column from the order records, the trade counts and
    # the column-wise metrics (stratexec_runtime.sweep.run_columns, here on one thread: none may outlive the
    # warm-up, this process forks).
    sweep_runtime = importlib.import_module("stratexec_runtime.sweep")  # the package exports the function sweep
    filled = np.ascontiguousarray(close.ffill().bfill().to_numpy(dtype=float))
    for stops in ({"tp_stop": np.array([0.05, 0.07]), "sl_stop": np.array([0.05, 0.04])},
                  {"sl_stop": np.array([0.05, 0.04]), "sl_trail": True}, {"tp_stop": np.array([0.05, 0.07])}, {}):
        pf = vbt.Portfolio.from_signals(close, wide, np.zeros_like(wide), open=ohlc["open"], high=ohlc["high"], low=ohlc["low"],
                                        price=close, direction="longonly", accumulate=False, upon_long_conflict="exit",
                                        stop_entry_price="close", stop_exit_price="stopmarket", size=1.0, size_type="percent",
                                        init_cash=10000.0, fees=0.001, slippage=0.0005, freq="1D", **stops)
        pf.value()
        v, counts = sweep_runtime._equity_and_trades(pf, filled, 10000.0, wide.shape[1])
        sweep_runtime._blocks(sweep_runtime.column_metrics(v, close.index, 10000.0, *counts)[1])
    fast, slow = vbt.MA.run(close, 10), vbt.MA.run(close, 50)
    fast.ma_crossed_above(slow)
    fast.ma_crossed_below(slow)
    vbt.MA.run(close, 20, ewm=True)
    vbt.RSI.run(close, 14).rsi_crossed_below(30)
    vbt.RSI.run(close, 14, ewm=True)
    vbt.MACD.run(close, 12, 26, 9, macd_ewm=True, signal_ewm=True)
    vbt.BBANDS.run(close, 20, alpha=2)
    vbt.ATR.run(ohlc["high"], ohlc["low"], close, 14, ewm=True)
    close.vbt.crossed_above(sma)
    try:  # the seccomp binding, so children need not import it
        import pyseccomp  # noqa: F401
    except ImportError:
        try:
            import seccomp  # noqa: F401
        except ImportError:
            pass


def run_without_shared_numba_cache() -> list[str]:
    """In a child: numba never reads or writes the warm parent's on-disk cache.

    That cache belongs to the service's uid (a run must not plant kernels a later parent
    loads, nor can it read them once it has its slot's uid). A kernel the parent did not
    compile is compiled in the run's memory instead of failing on the cache's permissions;
    the returned list names each one, for a line in the run's logs."""
    from numba.core import caching

    compiled: list[str] = []

    def load_overload(cache, sig, target_context):
        return None

    def save_overload(cache, sig, data):
        func = cache._py_func
        compiled.append(f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}")

    caching.Cache.load_overload = load_overload
    caching.Cache.save_overload = save_overload
    return compiled


def child(config: dict, job: dict, out_fd: int, result_fd: int, control: socket.socket) -> None:
    """In the forked child: never returns."""
    code = 1
    try:
        os.setsid()
        control.close()
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.dup2(result_fd, RESULT_FD)
        os.environ.clear()
        os.environ.update(config["env"])
        os.environ.update({"HOME": job["workdir"], "TMPDIR": job["workdir"], "MPLCONFIGDIR": job["workdir"],
                           "NUMBA_CACHE_DIR": os.path.join(job["workdir"], ".numba"),
                           "STRATEXEC_RESULT_FD": str(RESULT_FD)})
        not_warm = run_without_shared_numba_cache()
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        limits = dict(config["limits"])
        if job.get("cpu_seconds"):  # a sweep: RLIMIT_CPU sized by the service for its threads and timeout
            limits["cpu_seconds"] = int(job["cpu_seconds"])
        boot = {"limits": limits, "uid": config.get("uid"), "gid": config.get("uid"),
                "seccomp": config.get("seccomp", False)}
        jail_boot.own_pid_namespace(boot["uid"], boot["gid"])  # returns in the run, pid 2 of its own namespace
        jail_boot.confine(boot, {RESULT_FD})
    except BaseException as exc:
        try:
            os.write(2, f"sandbox: could not build the jail: {exc!r}\n".encode())
        finally:
            os._exit(jail_boot.BOOT_FAILED)
    try:
        jail_boot.run_script({"script": job["script"], "args": ["--data", job["data"]], "workdir": job["workdir"],
                              "path": config["path"]})
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            if not_warm:
                print(f"sandbox: {len(not_warm)} numba kernels were not warm and were compiled in this run: "
                      f"{', '.join(sorted(set(not_warm)))}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        os._exit(code)


class Spare:
    """A child forked ahead of its run: the fork's cost is paid while the service
    is busy with the previous result. It waits, still unconfined, for one job on
    its own socket; it runs nothing else and dies with the parent."""

    def __init__(self, config: dict, control: socket.socket):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()  # nothing of ours may reach a child's output
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                ours.close()
                control.close()
                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                libc.prctl(PR_SET_NAME, b"sandbox-spare", 0, 0, 0)
                if os.getppid() != parent:  # the parent died before PDEATHSIG was set
                    os._exit(0)
                message, fds, _flags, _addr = socket.recv_fds(theirs, MAX_MESSAGE, 2)
                if message and len(fds) == 2:
                    libc.prctl(PR_SET_NAME, b"sandbox-run", 0, 0, 0)
                    child(config, json.loads(message), fds[0], fds[1], theirs)  # never returns
            except BaseException:
                code = 1
            os._exit(code)
        theirs.close()
        self.pid = pid
        self.sock = ours

    def alive(self) -> bool:
        try:
            return os.waitpid(self.pid, os.WNOHANG) == (0, 0)
        except ChildProcessError:
            return False

    def start(self, job: dict, out_fd: int, result_fd: int) -> bool:
        try:
            socket.send_fds(self.sock, [json.dumps(job).encode()], [out_fd, result_fd])
            return True
        except OSError:
            return False
        finally:
            self.sock.close()


def serve(config: dict, control: socket.socket) -> None:
    spare = Spare(config, control)
    backlog: list[tuple[bytes, list[int]]] = []  # jobs that arrived while a run was being killed
    while True:
        try:
            if backlog:
                message, fds = backlog.pop(0)
            else:
                message, fds, _flags, _addr = socket.recv_fds(control, MAX_MESSAGE, 2)
        except (ConnectionError, OSError):
            return
        if not message:
            return  # the service went away
        job = json.loads(message)
        if job.get("stop"):
            return
        if "kill" in job:  # for a run that has already ended
            continue
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            send(control, {"done": job.get("run"), "status": -1, "error": "expected two descriptors"})
            continue
        out_fd, result_fd = fds
        if spare is None or not spare.alive():
            spare = Spare(config, control)
        runner, spare = spare, None
        if not runner.start(job, out_fd, result_fd):  # it died just now: one more, at once
            runner = Spare(config, control)
            runner.start(job, out_fd, result_fd)
        pid = runner.pid
        os.close(out_fd)
        os.close(result_fd)
        send(control, {"started": job["run"], "pid": pid})
        status = wait_for_child(pid, job["run"], control, config.get("uid"), backlog)
        sweep(config.get("uid"))
        if config.get("uid") is None:  # no uid of its own: its group (it called setsid) goes
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        reap_orphans()
        send(control, {"done": job["run"], "status": status})
        spare = Spare(config, control)


def wait_for_child(pid: int, run_id: str, control: socket.socket, uid: int | None,
                   backlog: list[tuple[bytes, list[int]]]) -> int:
    """Wait for the run's end; a {"kill": run_id} from the service (its timeout) kills it.
    Any other message (the next job, sent once the service gave up on this run) is kept."""
    import select

    pidfd = os.pidfd_open(pid)
    try:
        while True:
            ready, _, _ = select.select([pidfd, control], [], [])
            if pidfd in ready:
                break
            try:
                message, fds, _flags, _addr = socket.recv_fds(control, MAX_MESSAGE, 2)
            except OSError:
                message, fds = b"", []
            if message and "kill" not in json.loads(message):
                backlog.append((message, fds))
                continue
            for fd in fds:
                os.close(fd)
            if not message or json.loads(message).get("kill") == run_id:
                for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                    try:
                        target()
                    except (ProcessLookupError, PermissionError):
                        pass
                sweep(uid)
                if not message:  # the service is gone: so are we, once the run is dead
                    os.waitpid(pid, 0)
                    os._exit(0)
    finally:
        os.close(pidfd)
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return -1


def reap_orphans() -> None:
    """When this process is pid 1 of its namespace (unshare), orphans of a run become
    its children: collect their zombies. No spare exists at this point."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def sweep(uid: int | None) -> None:
    """Kill whatever the run left behind (setsid daemons included): every process of its uid.

    A forked helper takes the run's uid and calls kill(-1, SIGKILL), which
    reaches every process of that uid in this pid namespace but itself.
    Without a uid of its own the run shares ours, and only its group is killed.
    """
    if uid is None or not jail_boot.processes_of_uid(uid):
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        except BaseException:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def main() -> None:
    config = json.loads(sys.argv[1])
    sys.path[1:1] = config["path"]  # the runtime package, right after this script's directory
    control = socket.socket(fileno=int(config["control_fd"]))
    jail_boot.close_inherited_fds({control.fileno()})
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(jail_boot.PR_SET_DUMPABLE, 0, 0, 0, 0)  # children cannot read this process
    jail_boot.no_new_privs()
    home = config["home"]
    os.environ.update({"HOME": home, "TMPDIR": home, "MPLCONFIGDIR": home, "NUMBA_CACHE_DIR": config["numba_cache"]})
    os.chdir(home)
    started = time.monotonic()
    try:
        warm_up(home)
    except BaseException as exc:
        send(control, {"ready": False, "error": repr(exc)})
        raise
    # Everything imported so far lives as long as this process: out of the
    # collector's sight, so that a child's collections do not touch (and
    # copy-on-write) every page of the parent's heap.
    gc.collect()
    gc.freeze()
    # Forking is only safe from a single-threaded process.
    threads = len(os.listdir("/proc/self/task"))
    send(control, {"ready": True, "warm_ms": (time.monotonic() - started) * 1000.0, "threads": threads,
                   "python_threads": threading.active_count()})
    # A SIGTERM from the service ends the loop; children are swept by uid.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    serve(config, control)


if __name__ == "__main__":
    main()
