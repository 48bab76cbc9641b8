"""run.py's plumbing: pinning with taskset, the tools it needs, and its child processes.

Example:
    >>> from _run_tools import Pinning
    >>> Pinning().client   # unpinned: no prefix
    []
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import BUILD_SCRIPT, ECHO_BINARY, Result

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LOCUST_VENV = HERE / ".locust-venv"


# -- pinning ------------------------------------------------------------------------------


@dataclass
class Pinning:
    """The command prefixes that pin the client and the target, or none (and why)."""

    client: list[str] = field(default_factory=list)
    target: list[str] = field(default_factory=list)
    note: str = ""

    @classmethod
    def detect(cls) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        taskset = shutil.which("taskset")
        if taskset is None:
            return cls(note="taskset is not installed (apt-get install util-linux): unpinned")
        if len(cpus) < 2:
            return cls(note=f"only {len(cpus)} CPU is available here: client and target unpinned")
        client, target = str(cpus[0]), str(cpus[1])
        return cls(
            client=[taskset, "-c", client],
            target=[taskset, "-c", target],
            note=f"client pinned to CPU {client}, target to CPU {target} (taskset)",
        )

    def pin_target_pid(self, pid: int) -> None:
        """Pin an already running target (every thread of `pid`) to the target's core."""
        if self.target:
            taskset, _, cpu = self.target
            cmd = [taskset, "-a", "-p", "-c", cpu, str(pid)]
            subprocess.run(cmd, check=True, capture_output=True, timeout=10)


# -- tools ----------------------------------------------------------------------------------


class Skip(Exception):
    """A side or workload cannot run here: a tool is missing. Its rows say SKIPPED."""


def ensure_echo() -> None:
    """Build the C echo server when it is missing; Skip when it cannot be built."""
    if ECHO_BINARY.exists():
        return
    proc = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not ECHO_BINARY.exists():
        raise Skip(f"no echo server: {BUILD_SCRIPT.name} failed: {proc.stderr.strip()[-300:]}")


def ensure_locust(enabled: bool) -> str:
    """The locust command of benchmarks/.locust-venv, made on demand; Skip when impossible."""
    if not enabled:
        raise Skip("--no-locust")
    command = LOCUST_VENV / "bin" / "locust"
    if os.access(command, os.X_OK):
        return str(command)
    print(f"making {LOCUST_VENV} (python -m venv, pip install locust)...", flush=True)
    python = LOCUST_VENV / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(LOCUST_VENV)],
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "locust"],
    ]
    started = time.monotonic()
    for step in steps:
        try:
            proc = subprocess.run(step, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(LOCUST_VENV, ignore_errors=True)
            raise Skip(f"could not make the Locust venv: {exc}") from None
        if proc.returncode != 0:
            shutil.rmtree(LOCUST_VENV, ignore_errors=True)
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise Skip(f"could not make the Locust venv ({step[-1]}): {' / '.join(tail)}")
    print(f"made {LOCUST_VENV} in {time.monotonic() - started:.0f} s", flush=True)
    return str(command)


def need(path: str, package: str) -> None:
    if not os.access(path, os.X_OK):
        raise Skip(f"{path} is not installed (apt-get install {package})")


# -- children ------------------------------------------------------------------------------


def run_child(cmd: list[str], timeout: float) -> Result:
    """Run `cmd` in a session of its own; its last stdout line is the JSON result.

    Its stderr goes to ours. Whatever happens, the child and its own children
    (wrk, locust) are killed before this returns.
    """
    # The checkout's trio_bots, whatever the venv has installed.
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{cmd[-4:]} ran for more than {timeout:.0f} s") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the child exited with {proc.returncode} (its stderr is above)")
    lines = out.strip().splitlines()
    if not lines:
        raise RuntimeError("the child printed no result")
    result: Result = json.loads(lines[-1])
    return result
