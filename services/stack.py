"""Start and stop the four services as real processes.

Used by ``make up`` / ``make down`` (fixed ports, pid files and logs under
one run directory) and by the tests (port 0: each service picks a free port
and writes it to a port file, so tests never collide on fixed ports).

    python -m services.stack up [--run-dir .run]
    python -m services.stack down [--run-dir .run]
    python -m services.stack status [--run-dir .run]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.config import project_root
from services.common.env import QUIET

ORDER = ["codegen", "sandbox", "memory", "orchestrator"]  # the orchestrator needs the others
DEFAULT_PORTS = {"orchestrator": 50051, "codegen": 50052, "sandbox": 50053, "memory": 50054}


@dataclasses.dataclass
class ServiceProcess:
    name: str
    proc: subprocess.Popen
    port: int
    log_path: pathlib.Path

    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, then SIGKILL the process group."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def wait_serving(address: str, timeout: float, proc: subprocess.Popen | None = None, log_path=None) -> None:
    """Block until grpc.health.v1 says SERVING, the process dies, or time runs out."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                tail = pathlib.Path(log_path).read_text()[-3000:] if log_path else ""
                raise RuntimeError(f"{address}: process exited with {proc.returncode}\n{tail}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"{address} not SERVING after {timeout:.0f}s")


def start_service(name: str, run_dir: pathlib.Path, port: int, env: dict[str, str] | None = None) -> ServiceProcess:
    """Start ``python -m services.<name>`` in its own process group; returns once it listens."""
    run_dir.mkdir(parents=True, exist_ok=True)
    port_file = run_dir / f"{name}.port"
    port_file.unlink(missing_ok=True)
    log_path = run_dir / f"{name}.log"
    child_env = {**os.environ, **QUIET, **(env or {})}
    child_env[f"{name.upper()}_PORT"] = str(port)
    child_env["STRATEXEC_PORT_FILE"] = str(port_file)
    child_env.setdefault("STRATEXEC_DATA_DIR", str(run_dir / "data"))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=project_root(),
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while not port_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"{name} did not bind a port")
        time.sleep(0.05)
    return ServiceProcess(name, proc, int(port_file.read_text()), log_path)


def start_stack(run_dir: pathlib.Path, ports: dict[str, int] | None = None, env: dict[str, str] | None = None,
                names: list[str] | None = None, ready_timeout: float = 180.0) -> dict[str, ServiceProcess]:
    """Start the services (all four by default), wiring the orchestrator to the others."""
    ports = ports or {}
    started: dict[str, ServiceProcess] = {}
    try:
        for name in names or ORDER:
            extra = dict(env or {})
            if name == "orchestrator":
                for dep in ("codegen", "sandbox", "memory"):
                    if dep in started:
                        extra.setdefault(f"{dep.upper()}_ADDR", started[dep].address)
            started[name] = start_service(name, run_dir, ports.get(name, 0), extra)
            if name == "orchestrator":
                for svc in started.values():
                    wait_serving(svc.address, ready_timeout, svc.proc, svc.log_path)
        for svc in started.values():
            wait_serving(svc.address, ready_timeout, svc.proc, svc.log_path)
    except BaseException:
        for svc in reversed(list(started.values())):
            svc.stop()
        raise
    return started


def _pid_path(run_dir: pathlib.Path, name: str) -> pathlib.Path:
    return run_dir / f"{name}.pid"


def up(run_dir: pathlib.Path) -> None:
    """Start the services that are not running (all four, or only the ones that died)."""
    ports = {n: int(os.environ.get(f"{n.upper()}_PORT", DEFAULT_PORTS[n])) for n in ORDER}
    running = [n for n in ORDER if _alive(run_dir, n)]
    dead = [n for n in ORDER if n not in running]
    for name in running:
        print(f"  {name:<13} localhost:{ports[name]}  pid {_pid_path(run_dir, name).read_text()}  already running")
    if not dead:
        print("all four already running")
        return
    print(f"starting {', '.join(dead)} (a first start compiles vectorbt's kernels and loads the embedder) ...",
          flush=True)
    t0 = time.monotonic()
    addresses = {f"{n.upper()}_ADDR": f"localhost:{ports[n]}" for n in running}  # the orchestrator finds them
    stack = start_stack(run_dir, ports, env=addresses, names=dead)
    for name, svc in stack.items():
        _pid_path(run_dir, name).write_text(str(svc.proc.pid))
        print(f"  {name:<13} localhost:{svc.port}  pid {svc.proc.pid}  log {svc.log_path}")
    print(f"{', '.join(dead)} SERVING after {time.monotonic() - t0:.1f}s")


def _alive(run_dir: pathlib.Path, name: str) -> bool:
    path = _pid_path(run_dir, name)
    if not path.exists():
        return False
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError):
        return False
    try:  # a zombie (dead, not yet reaped by its parent) is not running
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def down(run_dir: pathlib.Path, timeout: float = 15.0) -> None:
    """SIGTERM every service at once; SIGKILL what is left of a process group after ``timeout``.

    A service is stopped when its whole process group is gone (the sandbox's
    warm parents and runs included), not only its first process.
    """
    groups = {}
    for name in reversed(ORDER):
        path = _pid_path(run_dir, name)
        if path.exists():
            groups[name] = int(path.read_text())
            try:
                os.killpg(groups[name], signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    while groups:
        for name, pgid in list(groups.items()):
            if _group_alive(pgid) and time.monotonic() < deadline:
                continue
            if _group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
                print(f"  killed {name} (still running {timeout:.0f}s after SIGTERM)")
            else:
                print(f"  stopped {name}")
            _pid_path(run_dir, name).unlink(missing_ok=True)
            del groups[name]
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--run-dir", default=str(project_root() / ".run"))
    args = parser.parse_args()
    run_dir = pathlib.Path(args.run_dir).resolve()
    if args.command == "up":
        up(run_dir)
    elif args.command == "down":
        down(run_dir)
    else:
        for name in ORDER:
            print(f"  {name:<13} {'running' if _alive(run_dir, name) else 'stopped'}")


if __name__ == "__main__":
    main()
