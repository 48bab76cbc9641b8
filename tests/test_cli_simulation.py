"""``trio-bots run --serve FILE.py:HANDLER --host HOST:PORT --virtual-time``, as a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import no_traceback, trio_bots_cmd

SERVE = ["--serve", "sim_echo.py:handler"]


def test_ten_virtual_minutes_end_in_seconds_and_replay(tmp_path: Path) -> None:
    reports = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.json"
        proc = trio_bots_cmd(
            "run", "sim_echo.py", *SERVE, "--host", "sim.test:7", "--virtual-time",
            "--duration", "10m", "--seed", "3", "--json", str(out), "-q",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        no_traceback(proc)
        reports.append(json.loads(out.read_text()))
    first, second = reports
    assert 600 <= first["run"]["duration"] <= 600 + 5  # virtual seconds (the stop grace)
    assert first["metrics"]["names"]["echo"]["count"] > 10_000
    assert first["run"]["options"]["network"] == "Network(latency=0.0, jitter=0.0, seed=None)"
    for data in (first, second):  # the wall-clock fields, the only ones that may differ
        del data["run"]["started_wall"], data["run"]["started_iso"]
        for bucket in data["timeline"]:
            del bucket["time"]
    assert first == second


def test_serve_skips_the_host_check_and_uses_no_real_server() -> None:
    # Nothing listens on sim.test: only the in-process handler answers there.
    proc = trio_bots_cmd(
        "run", "sim_echo.py", *SERVE, "--host", "sim.test:7", "--duration", "1", "--no-live",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "echo" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--virtual-time"], "--virtual-time needs --serve"),
        ([*SERVE], "--serve needs --host HOST:PORT"),
        ([*SERVE, "--host", "sim.test"], "with a port, got 'sim.test'"),
        ([*SERVE, "--host", "sim.test:7", "--virtual-time", "--backend", "asyncio"],
         "--serve and --virtual-time need the trio backend"),
        (["--serve", "sim_echo.py:nope", "--host", "sim.test:7"],
         "must define a module-level `async def nope(stream)`"),
        (["--serve", "missing.py:handler", "--host", "sim.test:7"],
         "--serve: scenario file not found: missing.py"),
        ([*SERVE, "--host", "sim.test:7", "--virtual-time", "--processes", "2"],
         "cannot be combined with --processes"),
    ],
)  # fmt: skip
def test_simulation_usage_errors_exit_2(args: list[str], message: str) -> None:
    proc = trio_bots_cmd("run", "sim_echo.py", *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stderr.count("\n") == 1
    no_traceback(proc)
