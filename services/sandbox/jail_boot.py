"""First code that runs inside the jail, before the untrusted script.

Standard library only: it is bind-mounted alone into the jail (no service
code is visible there). Invoked as

    python -I -B jail_boot.py '<json config>'

and, in order: closes every inherited descriptor but stdio and the result
channel, sets the resource limits, drops to the run's uid (when started as
root), sets no_new_privs, installs the seccomp filter when asked, then runs
the script as ``__main__`` with its argv. Every step that fails aborts the
run (exit 120): a jail that cannot be built does not run code.

The same ``confine()`` is applied by a forked child of a warm pool parent.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import runpy
import signal
import sys

BOOT_FAILED = 120
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def close_inherited_fds(keep: set[int]) -> None:
    keep = set(keep) | {0, 1, 2}
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def set_limits(limits: dict) -> None:
    mb = 1024 * 1024
    table = [
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_CPU, int(limits["cpu_seconds"])),
        (resource.RLIMIT_AS, int(limits["address_space_mb"]) * mb),
        (resource.RLIMIT_FSIZE, int(limits["file_size_mb"]) * mb),
        (resource.RLIMIT_NOFILE, int(limits["open_files"])),
        (resource.RLIMIT_NPROC, int(limits["processes"])),
    ]
    for which, value in table:
        resource.setrlimit(which, (value, value))


def drop_privileges(uid: int | None, gid: int | None) -> None:
    if uid is None or os.geteuid() != 0:
        return
    gid = uid if gid is None else gid
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise RuntimeError("could not drop root")
    try:  # regaining root must fail
        os.setuid(0)
    except PermissionError:
        return
    raise RuntimeError("could regain root after dropping it")


CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
PR_SET_PDEATHSIG = 1


def _write_proc(name: str, text: str) -> None:
    fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _mirror(status: int) -> None:
    """End this process the way the run ended (the exit code, or the same signal)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def own_pid_namespace(uid: int | None, gid: int | None) -> None:
    """Put the rest of this run in a pid namespace of its own, below the caller's.

    Called in a warm parent's forked child, before anything else of the run:
    it takes the run's uid, makes a user+pid namespace (no privilege needed),
    and forks an init (pid 1 there) that forks the run (pid 2) and returns in
    it. This process stays outside, waits and ends as the run did. The run sees
    no process but its own: kill(-1) reaches nothing of the warm parent, its
    spare or other slots, and nothing it starts outlives its init. Returns only
    in the run; every failure raises (the jail is then incomplete)."""
    drop_privileges(uid, gid)
    libc = _libc()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # a uid change cleared it
    real_uid, real_gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWPID) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER|CLONE_NEWPID)")
    if real_uid != 0:  # the run keeps its uid inside (uid 0 may not be mapped without CAP_SETFCAP)
        libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # /proc/self/*_map belong to us only while dumpable
        try:
            _write_proc("setgroups", "deny")
            _write_proc("uid_map", f"{real_uid} {real_uid} 1")
            _write_proc("gid_map", f"{real_gid} {real_gid} 1")
        finally:
            libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    status_r, status_w = os.pipe()
    init = os.fork()
    if init:  # outside: wait for the namespace's init, which reports the run's status
        os.close(status_w)
        for fd in (0, 1, 2):  # the run's output ends when the run does, not when this process does
            os.close(fd)
        close_inherited_fds({status_r})
        _, init_status = os.waitpid(init, 0)
        data = os.read(status_r, 16)
        _mirror(int(data) if data else init_status)
    os.close(status_r)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    run = os.fork()
    if run:  # pid 1 of the namespace: reap orphans until the run ends, then report it
        close_inherited_fds({status_w})
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == run:
                os.write(status_w, str(status).encode())
                os._exit(0)  # everything else in the namespace dies with its init
    os.close(status_w)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    drop_capabilities()


def drop_capabilities() -> None:
    """No capability left, not even those a new user namespace grants its creator."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    if _libc().capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def no_new_privs() -> None:
    if _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def install_seccomp() -> None:
    """No exec, no sockets but AF_UNIX, no ptrace, mount, unshare, bpf and friends."""
    try:
        import seccomp  # Debian python3-seccomp
    except ImportError:
        import pyseccomp as seccomp  # PyPI pyseccomp (binds the system libseccomp)
    import errno
    import socket

    filt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    deny = seccomp.ERRNO(errno.EPERM)
    for name in (
        "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2",
        "unshare", "setns", "bpf", "pivot_root", "chroot", "kexec_load", "init_module",
        "finit_module", "delete_module", "keyctl", "add_key", "request_key", "perf_event_open",
        "userfaultfd", "fanotify_init", "open_by_handle_at", "name_to_handle_at", "syslog",
        "swapon", "swapoff", "reboot", "settimeofday", "clock_settime", "acct", "quotactl",
        "io_uring_setup", "io_uring_enter", "io_uring_register", "mount_setattr", "fsopen",
        "fsmount", "move_mount", "open_tree",
    ):
        try:
            filt.add_rule(deny, name)
        except Exception:  # unknown on this architecture
            pass
    # socket(2): only AF_UNIX; socketpair likewise.
    filt.add_rule(deny, "socket", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    filt.add_rule(deny, "socketpair", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    # clone with namespace flags (CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP).
    for flag in (0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x02000000):
        filt.add_rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    try:
        filt.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")  # glibc falls back to clone
    except Exception:
        pass
    filt.load()


def confine(config: dict, keep_fds: set[int]) -> None:
    """Everything but running the script: fds, limits, uid, no_new_privs, seccomp."""
    close_inherited_fds(keep_fds)
    set_limits(config["limits"])
    drop_privileges(config.get("uid"), config.get("gid"))
    no_new_privs()
    if config.get("seccomp"):
        install_seccomp()


def run_script(config: dict) -> None:
    script = config["script"]
    os.chdir(config["workdir"])
    sys.argv = [script, *config.get("args", [])]
    # Isolated interpreter (-I): neither PYTHONPATH nor the working directory is on the path;
    # the script's read-only input directory and the runtime package are, from the config.
    sys.path[:0] = [os.path.dirname(script), *config.get("path", [])]
    runpy.run_path(script, run_name="__main__")


def main() -> None:
    try:
        config = json.loads(sys.argv[1])
        keep = {int(config["result_fd"])} if config.get("result_fd") is not None else set()
        confine(config, keep)
    except Exception as exc:  # the jail is incomplete: refuse to run the code
        sys.stderr.write(f"sandbox: could not build the jail: {exc!r}\n")
        sys.stderr.flush()
        os._exit(BOOT_FAILED)
    del config["limits"]
    run_script(config)


def processes_of_uid(uid: int) -> list[int]:
    """Host pids of live processes (zombies aside) whose real, effective or saved uid is ``uid``."""
    wanted = str(uid)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as fh:
                status = fh.read()
        except OSError:
            continue
        state = uid_line = ""
        for line in status.splitlines():
            if line.startswith("State:"):
                state = line
            elif line.startswith("Uid:"):
                uid_line = line
                break
        if wanted in uid_line.split()[1:4] and "Z" not in state.split()[1:2]:
            found.append(int(name))
    return found


if __name__ == "__main__":
    main()
