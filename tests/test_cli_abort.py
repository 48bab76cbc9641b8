"""``--abort-on-fail`` end to end: a real loopback server that turns slow 3 s after it
starts, and the ``trio-bots run`` command that should stop soon after (or not before
``--abort-delay``). Both runs are bounded: the server stops with the test, and each
command has a timeout well below its --duration."""

from __future__ import annotations

import json
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCENARIOS = Path(__file__).parent / "scenarios"
SLOW_AFTER = 3.0  # seconds after the first connection: the run's start
FAST, SLOW = 0.02, 0.2  # seconds per answer: slow ones pass 1% of them at once


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        with self.server.lock:  # type: ignore[attr-defined]
            if self.server.started is None:  # type: ignore[attr-defined]
                self.server.started = time.monotonic()  # type: ignore[attr-defined]
        started: float = self.server.started  # type: ignore[attr-defined]
        sock.settimeout(30)
        try:
            while data := sock.recv(4096):
                time.sleep(SLOW if time.monotonic() - started >= SLOW_AFTER else FAST)
                sock.sendall(data)
        except OSError:
            pass  # the client went away


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def turns_slow() -> Iterator[str]:
    """A line echo server on 127.0.0.1 that answers in 20 ms, and in 200 ms from 3 s after
    its first connection on (the CLI's own host check)."""
    server = _Server(("127.0.0.1", 0), _Echo)
    server.started = None  # type: ignore[attr-defined]
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def run_cli(
    host: str, tmp_path: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = tmp_path / "run.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "trio_bots.cli", "run", "echo_client.py",
            "--host", host, "--duration", "60s", "--no-live",
            "--threshold", "p99(x) < 50ms", "--abort-on-fail", *extra,
            "--json", str(report),
        ],
        capture_output=True, text=True, timeout=40, cwd=SCENARIOS,
    )
    return proc, json.loads(report.read_text())


def test_the_run_stops_a_few_seconds_after_the_server_turns_slow(
    turns_slow: str, tmp_path: Path
) -> None:
    proc, report = run_cli(turns_slow, tmp_path)
    assert proc.returncode == 1, proc.stderr
    run = report["run"]
    assert run["aborted_by"] == "p99(x) < 50ms"
    assert run["interrupted"] is False and run["aborted"] is False
    # the server turned slow about 3 s into the run: one of the next seconds fails
    assert SLOW_AFTER - 0.5 <= run["aborted_at"] <= SLOW_AFTER + 2.5
    assert run["duration"] <= run["aborted_at"] + 1.0  # the stop: the bots' last answers
    assert "threshold p99(x) < 50ms failed at" in proc.stderr
    assert "--abort-on-fail stopped the run" in proc.stderr
    assert "STOPPED by threshold p99(x) < 50ms at" in " ".join(proc.stdout.split())
    assert report["thresholds"][0]["passed"] is False


def test_no_abort_before_the_delay(turns_slow: str, tmp_path: Path) -> None:
    proc, report = run_cli(turns_slow, tmp_path, "--abort-delay", "10s")
    assert proc.returncode == 1, proc.stderr
    run = report["run"]
    assert run["aborted_by"] == "p99(x) < 50ms"
    assert 10.0 <= run["aborted_at"] <= 12.0
    assert run["duration"] >= 10.0
