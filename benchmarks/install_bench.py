"""Install figures from a fresh clone: time of `make install` and the virtualenv's size.

    python benchmarks/install_bench.py [--repo .] [--keep]

Clones the repository's HEAD into a temporary directory, runs `make install`
there (a new .venv; pip's cache is whatever this machine has, so the second
run on a machine is the "warm cache" figure), and prints one table.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time


def du(path: pathlib.Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], check=True, capture_output=True, text=True).stdout.split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(pathlib.Path(__file__).resolve().parents[1]))
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = parser.parse_args()
    root = pathlib.Path(tempfile.mkdtemp(prefix="stratexec-install-"))
    clone = root / "stratexec"
    try:
        subprocess.run(["git", "clone", "-q", args.repo, str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        started = time.monotonic()
        run = subprocess.run(["make", "install"], cwd=clone, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - started
        if run.returncode != 0:
            print(run.stdout[-3000:], run.stderr[-3000:], file=sys.stderr)
            return run.returncode
        venv = clone / ".venv"
        packages = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                                  capture_output=True, text=True).stdout.split()
        printed = len([line for line in (run.stdout + run.stderr).splitlines() if line.strip()])
        print("| measure | value |")
        print("|---|---|")
        print(f"| `make install` from a fresh clone | {seconds:.0f} s |")
        print(f"| virtualenv size | {du(venv) / 2**30:.2f} GiB |")
        print(f"| packages installed | {len(packages)} |")
        print(f"| lines printed by the install | {printed} |")
        print(f"| cores | {os.cpu_count()} |")
        if args.keep:
            print(f"clone kept at {clone}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
