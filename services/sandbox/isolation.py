"""Every isolation layer of a run, in one place.

A run of untrusted code gets, from outside in:

  layer               how                                                  where
  ------------------  ---------------------------------------------------  ----------------
  process-group       own session and process group (start_new_session)    runner
  timeout-kill        wall-clock timeout, SIGKILL to the group             runner
  pid-namespace       bwrap --unshare-pid / unshare --pid --kill-child:    outer jail
                      everything the run started dies with it
  network-namespace   own network namespace, only a down loopback          outer jail
  mount-namespace     bwrap view: system read-only, the interpreter and    outer jail (bwrap)
                      the runtime helper read-only, market data read-only,
                      only the private work dir writable, no service
                      files, databases or home directories
  ipc-uts-namespace   own IPC and UTS namespaces                           outer jail (bwrap)
  no-capabilities     bwrap --cap-drop ALL (only SETUID/SETGID kept for    outer jail + boot
                      the boot step, gone after it switches uid)
  non-root-uid        a uid per slot (uid_base + slot): RLIMIT_NPROC only  boot
                      counts for non-root, files are checked for it
  rlimits             CPU s, address space, processes, file size, open     boot
                      files, no core dumps
  no-new-privs        prctl(PR_SET_NO_NEW_PRIVS)                            boot
  seccomp             no exec, no sockets but AF_UNIX, no ptrace, mount,   boot (when a
                      unshare, bpf                                         binding exists)
  clean-env           only PATH, HOME, TMPDIR, thread vars,                runner
                      STRATEXEC_RESULT_FD: no keys, no DATABASE_URL; the
                      interpreter runs isolated (-I: no PYTHON* variables,
                      no user site, no working directory on sys.path)
  run-pid-namespace   pool: each run in a user+pid namespace of its own    jail_boot
                      below its warm parent (kill(-1) reaches only it)
  closed-fds          only stdio and the result pipe are inherited         runner + boot
  private-workdir     a fresh directory per run, removed afterwards        RunDir
  read-only-data      prepared <SYMBOL>.csv files 0444 in a 0555 dir       RunDir
  output-cap          stdout+stderr captured up to a cap, then a marker    runner
  result-channel      the result travels on its own pipe, never stdout     runner

``probe()`` finds which layers this host can provide; every layer that is
off is logged at start-up and missing from each response's ``isolation``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile

from services.sandbox.config import Limits, SandboxConfig
from services.sandbox.jail_boot import BOOT_FAILED as BOOT_FAILED_EXIT  # noqa: F401 (the runner reads it here)
from services.sandbox.jail_boot import processes_of_uid  # noqa: F401 (one implementation, used in and out of the jail)

BOOT_SCRIPT = pathlib.Path(__file__).with_name("jail_boot.py")
RUNTIME_PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "stratexec_runtime"

ALL_LAYERS = (
    "process-group", "timeout-kill", "pid-namespace", "network-namespace", "mount-namespace",
    "ipc-uts-namespace", "no-capabilities", "non-root-uid", "rlimits", "no-new-privs", "seccomp",
    "clean-env", "closed-fds", "private-workdir", "read-only-data", "output-cap", "result-channel",
)
ALWAYS = ("process-group", "timeout-kill", "rlimits", "no-new-privs", "clean-env", "closed-fds",
          "private-workdir", "output-cap", "result-channel")

# Paths of the jail as the script sees them under bwrap.
JAIL_ROOT = "/sandbox"
JAIL_BOOT = f"{JAIL_ROOT}/boot.py"
JAIL_INPUT = f"{JAIL_ROOT}/input"
JAIL_WORK = f"{JAIL_ROOT}/work"
JAIL_RUNTIME_PARENT = "/opt/stratexec"

THREAD_VARS = {
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1",
}


@dataclasses.dataclass(frozen=True)
class IsolationPlan:
    """What this host provides, decided once at start-up."""

    outer: str  # "bwrap" | "unshare" | "none"
    active: tuple[str, ...]
    missing: dict[str, str]  # layer -> why it is off
    run_as_root: bool  # the service is root, so runs can get their own uids
    uid_base: int
    seccomp: bool
    python: str = sys.executable

    def uid_for(self, slot: int) -> int | None:
        return self.uid_base + slot if "non-root-uid" in self.active else None

    def log(self, logger: logging.Logger) -> None:
        logger.info("isolation layers", extra={"fields": {"outer": self.outer, "active": list(self.active)}})
        for layer, why in self.missing.items():
            logger.warning(f"isolation layer OFF: {layer}", extra={"fields": {"layer": layer, "reason": why}})


def _run_ok(argv: list[str]) -> tuple[bool, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=20, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, repr(exc)
    return proc.returncode == 0, proc.stderr.decode(errors="replace").strip()[-300:]


def _world_traversable(path: pathlib.Path) -> bool:
    """True when a non-root uid can reach and read ``path``."""
    for part in [path, *path.parents]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            return False
    return True


def _seccomp_binding() -> tuple[bool, str]:
    reason = ""
    for module in ("seccomp", "pyseccomp"):
        try:
            if hasattr(__import__(module), "SyscallFilter"):
                return True, module
        except Exception as exc:  # ImportError, or libseccomp missing (OSError)
            reason = repr(exc)
    return False, f"no seccomp binding for {sys.executable} ({reason}); pip install pyseccomp or apt-get install python3-seccomp"


UID_BLOCK = 64  # uids per service instance (one per slot), claimed with a lock file
UID_BLOCKS = 64
_claimed: dict[int, int] = {}  # first uid -> lock fd, held for the life of the process


def claim_uid_block(base: int, slots: int) -> int:
    """First uid of a block of ``UID_BLOCK`` uids that no other sandbox on this host uses.

    Runs of a slot are swept by uid (kill every process of it), so two
    services, or two runners in one process, must never share a uid: each
    holds an flock on ``<lock dir>/uids-<first>.lock`` for as long as it lives.
    """
    import fcntl

    if slots > UID_BLOCK:
        raise SystemExit(f"at most {UID_BLOCK} slots per sandbox (SANDBOX_POOL_SIZE)")
    lock_dir = pathlib.Path("/run/stratexec-sandbox" if os.geteuid() == 0 else tempfile.gettempdir())
    lock_dir.mkdir(parents=True, exist_ok=True)
    for block in range(UID_BLOCKS):
        first = base + block * UID_BLOCK
        if first in _claimed:
            continue
        fd = os.open(lock_dir / f"uids-{first}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _claimed[first] = fd
        return first
    raise SystemExit(f"no free block of run uids from {base}: {UID_BLOCKS} sandboxes already run on this host")


def release_uid_block(first: int) -> None:
    fd = _claimed.pop(first, None)
    if fd is not None:
        os.close(fd)


def probe(config: SandboxConfig) -> IsolationPlan:
    missing: dict[str, str] = {}
    active = list(ALWAYS)
    wanted = config.isolation
    outer = "none"
    bwrap = shutil.which("bwrap")
    if wanted in ("auto", "bwrap"):
        if bwrap:
            ok, why = _run_ok([bwrap, *_bwrap_namespaces(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"])
            if ok:
                outer = "bwrap"
            else:
                missing["mount-namespace"] = f"bwrap failed here: {why}"
        else:
            missing["mount-namespace"] = "bubblewrap is not installed (apt-get install -y bubblewrap)"
    if outer == "none" and wanted in ("auto", "unshare"):
        unshare = shutil.which("unshare")
        user_ns = [] if os.geteuid() == 0 else ["--map-root-user"]
        if unshare:
            ok, why = _run_ok([unshare, *user_ns, "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "true"])
            if ok:
                outer = "unshare"
            else:
                missing["network-namespace"] = f"unshare failed here: {why}"
        else:
            missing["network-namespace"] = "unshare(1) not found"
    if wanted == "none":
        missing["network-namespace"] = "SANDBOX_ISOLATION=none"
    if outer in ("bwrap", "unshare"):
        active += ["pid-namespace", "network-namespace"]
        missing.pop("network-namespace", None)
    else:
        missing.setdefault("network-namespace", "no namespace tool available")
        missing["pid-namespace"] = "no namespace tool available: a double-forked daemon is killed by the group kill only"
    if outer == "bwrap":
        active += ["mount-namespace", "ipc-uts-namespace", "no-capabilities"]
    else:
        missing.setdefault("mount-namespace", f"outer jail is {outer}: the run sees the host filesystem as its uid")
        missing["ipc-uts-namespace"] = "needs bubblewrap"
        if os.geteuid() != 0:
            active.append("no-capabilities")
        elif "non-root-uid" not in missing:
            missing["no-capabilities"] = "needs bubblewrap, or the switch to a run uid"
    run_as_root = os.geteuid() == 0
    if not run_as_root:
        missing["non-root-uid"] = "the service is not root: runs share its uid (RLIMIT_NPROC counts all its processes)"
    elif outer == "bwrap" or (_world_traversable(pathlib.Path(sys.base_prefix)) and _world_traversable(pathlib.Path(sys.prefix))):
        active.append("non-root-uid")
        if outer != "bwrap":
            active.append("no-capabilities")  # switching from root to a run uid clears every capability
    else:
        missing["non-root-uid"] = f"the interpreter under {sys.base_prefix} is not readable by other uids and bubblewrap is off"
    if outer == "bwrap" or "non-root-uid" in active:
        active.append("read-only-data")
    else:
        missing["read-only-data"] = "the run is root on the host filesystem: file modes do not bind it"
    has_seccomp, why = _seccomp_binding()
    if has_seccomp:
        active.append("seccomp")
    else:
        missing["seccomp"] = why
    order = {name: i for i, name in enumerate(ALL_LAYERS)}
    uid_base = claim_uid_block(config.uid_base, config.pool_size) if "non-root-uid" in active else config.uid_base
    return IsolationPlan(
        outer=outer,
        active=tuple(sorted(set(active), key=order.__getitem__)),
        missing={k: v for k, v in missing.items() if k not in active},
        run_as_root=run_as_root,
        uid_base=uid_base,
        seccomp=has_seccomp,
    )


def require(plan: IsolationPlan, required: str) -> None:
    """Start-up fails when a layer named in SANDBOX_REQUIRE_LAYERS is off."""
    wanted = [name.strip() for name in required.split(",") if name.strip()]
    off = [name for name in wanted if name not in plan.active]
    if off:
        details = ", ".join(f"{n} ({plan.missing.get(n, 'unknown layer')})" for n in off)
        raise SystemExit(f"required isolation layers are off: {details}")


# ---------------------------------------------------------------------------
# The instance's scratch directory and the per-run directories


INSTANCES = 64  # sandboxes that may share one scratch setting on a host


@dataclasses.dataclass
class Scratch:
    """``<scratch>/instance-<k>``: this service instance's own run directories.

    An flock on ``<scratch>/instance-<k>.lock`` is held for as long as the
    instance lives, so two sandboxes configured with the same scratch
    directory never share (or clean up) each other's runs; a dead
    instance's directory is emptied by the next one that claims it."""

    path: pathlib.Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def claim_scratch(root: str | os.PathLike) -> Scratch:
    import fcntl

    root = private_dir(root, 0o711)
    for index in range(INSTANCES):
        fd = os.open(root / f"instance-{index}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        path = root / f"instance-{index}"
        if path.exists():
            RunDir(path).remove()  # the previous owner is dead: whatever it left is stale
        private_dir(path, 0o711)
        return Scratch(path, fd)
    raise SystemExit(f"no free instance directory under {root}: {INSTANCES} sandboxes already use it")


def check_reachable(plan: "IsolationPlan", scratch: pathlib.Path) -> None:
    """Without bubblewrap a run uid opens its files at their host paths: every parent must let it through."""
    if plan.outer != "bwrap" and "non-root-uid" in plan.active and not _world_traversable(scratch):
        raise SystemExit(f"SANDBOX_SCRATCH_DIR {scratch.parent} is not traversable by the run uids "
                         f"(a parent directory lacks o+x) and bubblewrap is off: choose a directory they can reach")


def private_dir(path: str | os.PathLike, mode: int) -> pathlib.Path:
    """Create ``path`` (or accept it) only when it is a real directory owned by this
    service: under a shared /tmp another user could otherwise plant files in it."""
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise SystemExit(f"{path} must be a directory owned by uid {os.geteuid()} (it is not): refusing to use it")
    os.chmod(path, mode)
    return path


@dataclasses.dataclass
class RunDir:
    """``<scratch>/run-XXXX/{input/{strategy.py,data/}, work/}``: input read-only, work private."""

    root: pathlib.Path

    @property
    def input(self) -> pathlib.Path:
        return self.root / "input"

    @property
    def data(self) -> pathlib.Path:
        return self.input / "data"

    @property
    def work(self) -> pathlib.Path:
        return self.root / "work"

    @property
    def script(self) -> pathlib.Path:
        return self.input / "strategy.py"

    @classmethod
    def create(cls, scratch: str | os.PathLike, uid: int | None) -> "RunDir":
        scratch = private_dir(scratch, 0o711)
        run = cls(pathlib.Path(tempfile.mkdtemp(prefix="run-", dir=scratch)))
        os.chmod(run.root, 0o711)
        run.input.mkdir(mode=0o755)
        run.data.mkdir(mode=0o755)
        run.work.mkdir(mode=0o700)
        if uid is not None:
            os.chown(run.work, uid, uid)
        return run

    def seal_input(self, code: str) -> None:
        """Write the script and make the input tree read-only."""
        self.script.write_text(code, encoding="utf-8")
        os.chmod(self.script, 0o444)
        os.chmod(self.data, 0o555)
        os.chmod(self.input, 0o555)

    def remove(self) -> None:
        def fix(func, path, _exc):
            try:
                os.chmod(os.path.dirname(path), 0o700)
                os.chmod(path, 0o700)
            except OSError:
                pass
            func(path)

        if self.root.exists():
            shutil.rmtree(self.root, onerror=fix)


# ---------------------------------------------------------------------------
# The command line of one run


def _bwrap_namespaces() -> list[str]:
    return ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent"]


def _parents(path: str) -> list[str]:
    parts = pathlib.PurePosixPath(path).parents
    return [str(p) for p in reversed(parts) if str(p) != "/"]


def _bwrap_view(plan: IsolationPlan, binds: list[tuple[str, str, bool]]) -> list[str]:
    """The jail's filesystem: read-only system and interpreter, plus ``binds``
    (source, destination, writable): the run's input (read-only) and work dir."""
    args = ["--tmpfs", "/"]
    made: set[str] = set()

    def dirs_for(dest: str) -> list[str]:
        out = []
        for parent in _parents(dest):
            if parent not in made:
                made.add(parent)
                out += ["--perms", "0755", "--dir", parent]
        return out

    for top in ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin"):
        path = pathlib.Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf"):
        if os.path.exists(etc):
            args += dirs_for(etc) + ["--ro-bind", etc, etc]
    # The interpreter and the venv, at their own paths (shebangs and pyvenv.cfg name them).
    for prefix in dict.fromkeys([os.path.realpath(sys.base_prefix), sys.prefix]):
        if not prefix.startswith("/usr/"):
            args += dirs_for(prefix) + ["--ro-bind", prefix, prefix]
    runtime_dest = f"{JAIL_RUNTIME_PARENT}/stratexec_runtime"
    args += dirs_for(runtime_dest) + ["--ro-bind", str(RUNTIME_PACKAGE), runtime_dest]
    for source, dest, writable in binds:
        args += dirs_for(dest) + ["--bind" if writable else "--ro-bind", str(source), dest]
    args += ["--proc", "/proc", "--dev", "/dev", "--chdir", "/", "--remount-ro", "/"]
    return args


# -I: isolated (no PYTHON* variables, no user site, neither the script's directory nor the
# working directory on sys.path); the boot scripts put the runtime package on the path themselves.
PYTHON_FLAGS = ["-I", "-B", "-X", "frozen_modules=on"]


def _outer_prefix(plan: IsolationPlan) -> list[str]:
    if plan.outer == "unshare":
        user_ns = [] if os.geteuid() == 0 else ["--map-root-user"]
        return [shutil.which("unshare") or "unshare", *user_ns, "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    return []


def run_env(home: str, result_fd: int) -> dict[str, str]:
    """The whole environment of a run: nothing inherited from the service (and no PYTHON*
    variable: the interpreter runs isolated and would ignore them)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": home,
        "JOBLIB_MULTIPROCESSING": "0",
        # pyarrow (pandas' strings) starts a jemalloc background thread: none in a process that forks
        "ARROW_DEFAULT_MEMORY_POOL": "system",
        "JE_ARROW_MALLOC_CONF": "background_thread:false",
        "NUMBA_CACHE_DIR": os.path.join(home, ".numba"),
        **THREAD_VARS,
        "STRATEXEC_RESULT_FD": str(result_fd),
    }


def boot_config(plan: IsolationPlan, limits: Limits, *, script: str, data: str, workdir: str,
                uid: int | None, result_fd: int, path: str, run_id: str = "") -> dict:
    return {
        "run_id": run_id,  # names the run's processes in ps (and lets tests find survivors)
        "uid": uid,
        "gid": uid,
        "limits": limits.model_dump(),
        "seccomp": plan.seccomp,
        "script": script,
        "args": ["--data", data],
        "workdir": workdir,
        "result_fd": result_fd,
        "path": [path],  # prepended to sys.path: the runtime package (the interpreter is isolated)
    }


def command(plan: IsolationPlan, limits: Limits, run: RunDir, uid: int | None, result_fd: int,
            run_id: str = "") -> tuple[list[str], dict[str, str]]:
    """argv and environment that start one fresh-interpreter run."""
    python_flags = PYTHON_FLAGS
    if plan.outer == "bwrap":
        caps = ["--cap-drop", "ALL"]
        if uid is not None:  # kept for the boot step only: it switches uid, which clears them
            caps += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        conf = boot_config(plan, limits, script=f"{JAIL_INPUT}/strategy.py", data=f"{JAIL_INPUT}/data",
                           workdir=JAIL_WORK, uid=uid, result_fd=result_fd, run_id=run_id, path=JAIL_RUNTIME_PARENT)
        binds = [(str(BOOT_SCRIPT), JAIL_BOOT, False), (str(run.input), JAIL_INPUT, False), (str(run.work), JAIL_WORK, True)]
        argv = [shutil.which("bwrap") or "bwrap", *_bwrap_namespaces(), "--hostname", "sandbox", *caps,
                *_bwrap_view(plan, binds), plan.python, *python_flags, JAIL_BOOT, json.dumps(conf)]
        return argv, run_env(JAIL_WORK, result_fd)
    conf = boot_config(plan, limits, script=str(run.script), data=str(run.data), workdir=str(run.work),
                       uid=uid, result_fd=result_fd, run_id=run_id, path=str(RUNTIME_PACKAGE.parent))
    argv = [*_outer_prefix(plan), plan.python, *python_flags, str(BOOT_SCRIPT), json.dumps(conf)]
    # Without bwrap the runtime package is found next to the service code.
    return argv, run_env(str(run.work), result_fd)


# ---------------------------------------------------------------------------
# The warm parents of the pool (pool.py): the same outer jail, shared by the
# runs of one slot, each run a fresh fork that confines itself (jail_boot).

PARENT_SCRIPT = pathlib.Path(__file__).with_name("warm_parent.py")
JAIL_LIB = f"{JAIL_ROOT}/lib"
JAIL_SLOT = f"{JAIL_ROOT}/slot"
JAIL_HOME = f"{JAIL_ROOT}/home"
JAIL_NUMBA_CACHE = f"{JAIL_ROOT}/numba-cache"


@dataclasses.dataclass(frozen=True)
class SlotDirs:
    """Host directories of one pool slot: runs are created in ``runs``; ``home`` is the parent's."""

    runs: pathlib.Path
    home: pathlib.Path

    @classmethod
    def create(cls, scratch: pathlib.Path, slot: int) -> "SlotDirs":
        """In the instance's own scratch (claim_scratch), which was emptied when claimed."""
        dirs = cls(scratch / f"slot-{slot}", scratch / f"home-{slot}")
        for path in (dirs.runs, dirs.home):
            path.mkdir(exist_ok=True)
        os.chmod(dirs.runs, 0o711)
        os.chmod(dirs.home, 0o700)  # the parent's caches: not for the runs
        return dirs

    def jail_path(self, plan: IsolationPlan, host: pathlib.Path) -> str:
        """Where a path under ``runs`` appears inside the parent's jail."""
        if plan.outer != "bwrap":
            return str(host)
        return f"{JAIL_SLOT}/{host.relative_to(self.runs)}"


def numba_cache_dir(path: str) -> pathlib.Path:
    """numba's on-disk cache of compiled kernels, shared by the warm parents (the service's uid only).

    Unlike the scratch it is deliberately per host, not per instance: an
    empty cache costs about 85 s of compiling at every start. numba writes
    each index and data file to a temporary name and renames it into place,
    so concurrent instances (and restarts) only ever see whole files."""
    return private_dir(path, 0o700)


def parent_command(plan: IsolationPlan, limits: Limits, dirs: SlotDirs, uid: int | None, control_fd: int,
                   token: str, numba_cache: pathlib.Path) -> tuple[list[str], dict[str, str]]:
    """argv and environment of a warm parent for one slot."""
    bwrap = plan.outer == "bwrap"
    home = JAIL_HOME if bwrap else str(dirs.home)
    pythonpath = JAIL_RUNTIME_PARENT if bwrap else str(RUNTIME_PACKAGE.parent)
    env = run_env(home, 3)
    env.pop("STRATEXEC_RESULT_FD")
    conf = {
        "token": token,  # names the parent in ps
        "control_fd": control_fd,
        "home": home,
        "numba_cache": JAIL_NUMBA_CACHE if bwrap else str(numba_cache),
        "uid": uid,
        "limits": limits.model_dump(),
        "seccomp": plan.seccomp,
        "env": env,
        "path": [pythonpath],
    }
    if bwrap:
        caps = ["--cap-drop", "ALL"]
        if uid is not None:  # the parent switches each child to the slot uid
            caps += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        binds = [
            (str(BOOT_SCRIPT), f"{JAIL_LIB}/jail_boot.py", False),
            (str(PARENT_SCRIPT), f"{JAIL_LIB}/warm_parent.py", False),
            (str(dirs.runs), JAIL_SLOT, True),
            (str(dirs.home), JAIL_HOME, True),
            (str(numba_cache), JAIL_NUMBA_CACHE, True),
        ]
        argv = [shutil.which("bwrap") or "bwrap", *_bwrap_namespaces(), "--hostname", "sandbox", *caps,
                *_bwrap_view(plan, binds), plan.python, *PYTHON_FLAGS, f"{JAIL_LIB}/warm_parent.py", json.dumps(conf)]
    else:
        argv = [*_outer_prefix(plan), plan.python, *PYTHON_FLAGS, str(PARENT_SCRIPT), json.dumps(conf)]
    return argv, env


def sweep_uid_command(uid: int) -> list[str]:
    """Host-side: kill every process of a run uid (used when a run must die now)."""
    code = f"import os, signal; os.setgroups([]); os.setresgid({uid},{uid},{uid}); os.setresuid({uid},{uid},{uid}); os.kill(-1, signal.SIGKILL)"
    return [sys.executable, "-S", "-c", code]
