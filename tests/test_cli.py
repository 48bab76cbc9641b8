"""The ``trio-bots`` command, run as a real subprocess: flags, reports, exit codes, signals."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from trio_bots import ConfigError
from trio_bots._core.parse import (
    parse_duration,
    parse_host,
    parse_max_failures,
    parse_rate,
    parse_schedule,
    parse_think_time,
)
from trio_bots.cli._parse import load_scenario, split_spec
from trio_bots.cli._run import HOST_CHECK_TIMEOUT, Outcome

SCENARIOS = Path(__file__).parent / "scenarios"
#: Upper bound for one CLI run in these tests; runs last about a second.
TIMEOUT = 60


def trio_bots_cmd(
    *args: str, cwd: Path | None = None, timeout: float = TIMEOUT, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_bots.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or SCENARIOS,
        **kwargs,
    )


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- value parsers (in-process)


def test_parse_duration() -> None:
    assert parse_duration("500ms") == 0.5
    assert parse_duration("30s") == 30.0
    assert parse_duration("2m") == 120.0
    assert parse_duration("1h") == 3600.0
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("2.5") == 2.5
    assert parse_duration("250us") == pytest.approx(0.00025)
    for bad in ("", "5x", "-1", "s", "1s2", "ms500"):
        with pytest.raises(ConfigError, match="expected a duration"):
            parse_duration(bad)


def test_parse_schedule_rate_think_time_max_failures_host() -> None:
    assert parse_schedule("30s:100,1m:100,10s:0", what="bots") == [
        (30.0, 100.0),
        (60.0, 100.0),
        (10.0, 0.0),
    ]
    with pytest.raises(ConfigError, match="DURATION:BOTS"):
        parse_schedule("30s", what="bots")
    with pytest.raises(ConfigError, match="number >= 0"):
        parse_schedule("30s:-5", what="bots")
    assert parse_rate("20") == 20.0
    assert parse_rate("30s:100,1m:500") == [(30.0, 100.0), (60.0, 500.0)]
    with pytest.raises(ConfigError, match="rate"):
        parse_rate("fast")
    assert parse_think_time("2s") == 2.0
    assert parse_think_time("500ms-2s") == (0.5, 2.0)
    assert parse_max_failures("none") is None
    assert parse_max_failures("4") == 4
    with pytest.raises(ConfigError, match="'none'"):
        parse_max_failures("-1")
    assert parse_host("localhost") == ("localhost", None)
    assert parse_host("10.0.0.1:80") == ("10.0.0.1", 80)
    assert parse_host("[::1]:8080") == ("::1", 8080)
    assert parse_host("::1") == ("::1", None)
    for bad in ("host:0", "host:http", "host:70000", ":80", "[::1"):
        with pytest.raises(ConfigError, match="host"):
            parse_host(bad)


def test_scenario_specs() -> None:
    assert split_spec("a/b.py:player") == ("a/b.py", "player")
    assert split_spec("a/b.py") == ("a/b.py", "worker")
    assert split_spec("pkg.mod:fn") == ("pkg.mod", "fn")
    scenario = load_scenario(str(SCENARIOS / "ok.py") + ":short")
    assert scenario.worker.__name__ == "short"
    assert scenario.options == {"size": 2, "duration": 1}
    with pytest.raises(ConfigError, match="has no nothing_here"):
        load_scenario(str(SCENARIOS / "ok.py") + ":nothing_here")
    with pytest.raises(ConfigError, match=r"ModuleNotFoundError.*broken_import\.py:3"):
        load_scenario(str(SCENARIOS / "broken_import.py"))


def test_exit_code_precedence() -> None:
    class Result:
        def __init__(
            self, *, interrupted: bool, aborted: bool, sig: int | None, by: str | None = None
        ) -> None:
            self.interrupted, self.aborted, self.signal = interrupted, aborted, sig
            self.aborted_by = by

    class Check:
        def __init__(self, passed: bool) -> None:
            self.passed = passed

    failed = [Check(True), Check(False)]
    assert Outcome(Result(interrupted=False, aborted=False, sig=None), None, failed).code() == 1
    assert Outcome(Result(interrupted=False, aborted=True, sig=None), None, failed).code() == 3
    both = Result(interrupted=True, aborted=True, sig=signal.SIGINT)
    assert Outcome(both, None, failed).code() == 130
    term = Result(interrupted=True, aborted=False, sig=signal.SIGTERM)
    assert Outcome(term, None, []).code() == 143
    # Swarm.stop() from a worker is a normal end, not a signal.
    stopped = Result(interrupted=True, aborted=False, sig=None)
    assert Outcome(stopped, None, [Check(True)]).code() == 0
    # abort-on-fail exits 1, even when the threshold passed again by the end ...
    by_threshold = Result(interrupted=False, aborted=False, sig=None, by="p99 < 1s")
    assert Outcome(by_threshold, None, [Check(True)]).code() == 1
    # ... and a signal (130/143) or an abort (3) during its stop still wins
    signalled = Result(interrupted=True, aborted=False, sig=signal.SIGINT, by="p99 < 1s")
    assert Outcome(signalled, None, failed).code() == 130
    aborted = Result(interrupted=False, aborted=True, sig=None, by="p99 < 1s")
    assert Outcome(aborted, None, failed).code() == 3


# -- exit 0


def test_version() -> None:
    script = Path(sys.executable).parent / "trio-bots"
    if not script.exists():
        pytest.skip("the trio-bots console script is not installed next to this Python")
    proc = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("trio-bots 0.")


def test_help_says_max_failures_defaults_to_zero() -> None:
    proc = trio_bots_cmd("run", "--help", env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0
    assert "--max-failures" in proc.stdout
    assert "default: (0, fail fast" in proc.stdout


def test_run_ok_writes_every_report(tmp_path: Path) -> None:
    proc = trio_bots_cmd(
        "run",
        "ok.py",
        "--bots",
        "3",
        "--duration",
        "1500ms",
        "--seed",
        "7",
        "--json",
        str(tmp_path / "run.json"),
        "--csv",
        str(tmp_path / "run"),
        "--html",
        str(tmp_path / "run.html"),
    )
    assert proc.returncode == 0, proc.stderr
    # Not a terminal: plain periodic lines, then the console report.
    assert "bots 3/3" in proc.stdout
    assert "Aggregated" in proc.stdout
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["run"]["size"] == 3
    assert doc["run"]["interrupted"] is False
    assert doc["run"]["aborted"] is False
    assert doc["run"]["options"]["seed"] == 7
    assert doc["run"]["options"]["duration"] == 1.5
    assert doc["stats"]["nap"]["count"] > 0
    assert list(tmp_path.glob("run*.csv"))
    assert "<html" in (tmp_path / "run.html").read_text().lower()


def test_module_options_and_flag_override(tmp_path: Path) -> None:
    # A module spec imported from the working folder; its options give size 2.
    proc = trio_bots_cmd("run", "ok:short", "--json", str(tmp_path / "a.json"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # --quiet
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["run"]["size"] == 2
    assert doc["stats"]["short"]["count"] == 2
    proc = trio_bots_cmd("run", "ok.py:short", "--bots", "5", "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "b.json").read_text())["stats"]["short"]["count"] == 5


def test_init_writes_a_runnable_scenario(tmp_path: Path, echo_server: tuple[str, int]) -> None:
    proc = trio_bots_cmd("init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    starter = tmp_path / "scenario.py"
    text = starter.read_text()
    assert "async def worker(bot" in text and "options = {" in text
    again = trio_bots_cmd("init", cwd=tmp_path)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert starter.read_text() == text  # not overwritten
    host, port = echo_server
    proc = trio_bots_cmd(
        "run",
        "scenario.py",
        "--host",
        f"{host}:{port}",
        "--bots",
        "2",
        "--duration",
        "1",
        "--json",
        "run.json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["run"]["options"]["host"] == f"{host}:{port}"
    assert doc["stats"]["echo"]["count"] >= 2
    assert doc["stats"]["echo"]["failure_count"] == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bots", "2", "--iterations", "3", "--think-time", "1ms-2ms"], (2, 6)),
        (["--bots", "2", "--iterations", "2", "--pace", "50ms", "--spawn-rate", "20"], (2, 4)),
        (["--rate", "20", "--duration", "1", "--max-bots", "2"], (None, 20)),
        (["--stages", "0.5s:2,0.5s:0"], (2, None)),
    ],
)
def test_load_shape_flags(
    tmp_path: Path, args: list[str], expected: tuple[int | None, int | None]
) -> None:
    proc = trio_bots_cmd("run", "steps.py", *args, "--json", str(tmp_path / "run.json"))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "run.json").read_text())
    bots, steps = expected
    if bots is not None:
        assert doc["run"]["bots_started"] == bots
    if steps is not None:
        assert doc["stats"]["step"]["count"] == steps
    else:
        assert doc["stats"]["step"]["count"] > 0
    assert doc["stats"]["step"]["failure_count"] == 0


FANOUT_SCENARIO = """\
import trio_bots


async def worker(bot):
    room = f"room-{bot.id % 2}"
    bot.join(room)
    await bot.step()
    await bot.send(trio_bots.send_group(room), "hello")
    await bot.receive(trio_bots.recv_group(room))
"""


def test_fanout_detail_shows_a_row_per_group(tmp_path: Path) -> None:
    (tmp_path / "rooms.py").write_text(FANOUT_SCENARIO)
    wide = {**os.environ, "COLUMNS": "200"}
    summary = trio_bots_cmd(
        "run", "rooms.py", "--bots", "4", "--html", "summary.html", cwd=tmp_path, env=wide
    )
    assert summary.returncode == 0, summary.stderr
    assert "fan-out (2 groups)" in summary.stdout
    assert "group:room-0" not in summary.stdout
    assert "group:room-1" not in (tmp_path / "summary.html").read_text()
    detail = trio_bots_cmd(
        *("run", "rooms.py", "--bots", "4", "--fanout-detail", "--html", "run.html"),
        cwd=tmp_path,
        env=wide,
    )
    assert detail.returncode == 0, detail.stderr
    assert "group:room-0" in detail.stdout and "group:room-1" in detail.stdout
    assert "fan-out (2 groups)" not in detail.stdout
    assert "group:room-1" in (tmp_path / "run.html").read_text()


LOOP_SCENARIO = """\
import asyncio
import trio_bots


async def worker(bot):
    if "uvloop" in type(asyncio.get_running_loop()).__module__:
        bot.count("on uvloop")
    async with bot.measure("nap"):
        await asyncio.sleep(0.01)
"""


@pytest.mark.parametrize("processes", [[], ["--processes", "2"]], ids=["one process", "shards"])
def test_uvloop_runs_every_bot_on_uvloop(tmp_path: Path, processes: list[str]) -> None:
    (tmp_path / "loop.py").write_text(LOOP_SCENARIO)
    args = ["run", "loop.py", "--bots", "4", "--backend", "asyncio", "--json", "run.json"]
    proc = trio_bots_cmd(*args, "--uvloop", *processes, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["metrics"]["counters"] == {"on uvloop": 4}  # the shards' bots too
    plain = trio_bots_cmd(*args, *processes, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert json.loads((tmp_path / "run.json").read_text())["metrics"]["counters"] == {}


def test_uvloop_missing_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from trio_bots.cli import app

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now fails
    result = CliRunner().invoke(
        app, ["run", str(SCENARIOS / "ok.py"), "--backend", "asyncio", "--uvloop"]
    )
    assert result.exit_code == 2
    assert "--uvloop needs uvloop; install it with: pip install 'trio-bots[uvloop]'" in (
        result.output
    )


# -- exit 1


def test_failed_threshold_exits_1(tmp_path: Path) -> None:
    proc = trio_bots_cmd(
        "run",
        "ok.py",
        "--duration",
        "0.5",
        "--threshold",
        "p99(nap) < 1us",
        "--threshold",
        "p50(nap) < 10s",
        "--json",
        str(tmp_path / "run.json"),
    )
    assert proc.returncode == 1, proc.stderr
    results = json.loads((tmp_path / "run.json").read_text())["thresholds"]
    assert [r["passed"] for r in results] == [False, True]
    assert "FAIL" in proc.stdout


def test_threshold_on_a_name_never_recorded_fails_and_keeps_the_reports(tmp_path: Path) -> None:
    proc = trio_bots_cmd(
        "run",
        "ok.py",
        "--duration",
        "0.5",
        "--threshold",
        "p99(login) < 1s",
        "--json",
        str(tmp_path / "run.json"),
    )
    assert proc.returncode == 1, proc.stderr
    assert "'login', which was never recorded" in proc.stderr
    [result] = json.loads((tmp_path / "run.json").read_text())["thresholds"]
    assert result == {
        "expression": "p99(login) < 1s",
        "passed": False,
        "measured": None,
        "required": 1.0,
        "unit": "s",
    }


# -- exit 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "ok.py", "--bogus"], "No such option"),
        (["run", "ok.py", "--duration", "5x"], "expected a duration"),
        (["run", "ok.py", "--stages", "30s"], "DURATION:BOTS"),
        (["run", "ok.py", "--max-failures", "many"], "'none'"),
        (["run", "ok.py", "--fanout", "all"], "--fanout"),
        (["run", "ok.py", "--threshold", "p99(nap) <<< 5ms"], "p99(nap) <<< 5ms"),
        (["run", "missing.py"], "scenario file not found: missing.py"),
        (["run", "no_such_module_xyz"], "scenario module not found"),
        (["run", "broken_import.py"], "No module named 'no_such_module_for_trio_bots'"),
        (["run", "ok.py:nothing_here"], "has no nothing_here()"),
        (["run", "bad_options.py"], "did you mean 'duration'"),
        (["run", "not_async.py"], "worker must be an async function"),
        (["run", "ok.py", "--json", "no/such/folder/run.json"], "does not exist"),
        (["run", "ok.py", "--host", "127.0.0.1:http"], "port"),
        (["run", "steps.py", "--rate", "20", "--duration", "1"], "--rate needs bots"),
        (["run", "steps.py", "--rate", "20", "--max-bots", "2"], "needs --duration"),
        (["run", "ok.py", "--bots", "-1"], "--bots"),
        (["run", "ok.py", "--on-full", "wait"], "--on-full"),
        (["run", "ok.py", "--inbox-size", "0"], "inbox_size must be >= 1, got 0"),
        (["run", "steps.py", "--think-time", "1s", "--pace", "2s"], "give either --think-time"),
        (["run", "steps.py", "--max-queue", "3"], "--max-queue belongs to the open model"),
        (["run", "steps.py", "--rate", "2s:5", "--stages", "1s:2"], "give either --stages"),
        (["run", "ok.py", "--uvloop"], "--uvloop goes with --backend asyncio"),
        (["run"], "Usage"),
    ],
)
def test_usage_and_config_errors_exit_2(args: list[str], message: str) -> None:
    proc = trio_bots_cmd(*args, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr + proc.stdout
    no_traceback(proc)
    assert "Aggregated" not in proc.stdout  # nothing ran


def test_debug_shows_the_import_traceback() -> None:
    proc = trio_bots_cmd("run", "broken_import.py", "--debug")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert "ModuleNotFoundError" in proc.stderr


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_too_many_bots_for_the_fd_limit_exits_2() -> None:
    proc = trio_bots_cmd("run", "ok.py", "--bots", "1000", preexec_fn=_low_fd_limit)
    assert proc.returncode == 2, proc.stderr
    assert "ulimit -n" in proc.stderr
    no_traceback(proc)


# -- exit 3


def test_bot_failure_aborts_with_exit_3(tmp_path: Path) -> None:
    proc = trio_bots_cmd(
        "run",
        "boom.py",
        # A failing threshold too: aborted (3) wins over it (1).
        "--threshold",
        "p99(nap) < 1us",
        "--json",
        str(tmp_path / "run.json"),
    )
    assert proc.returncode == 3, proc.stderr
    assert "bot 1 failed: ValueError: boom" in proc.stderr
    assert "boom.py:12 in worker" in proc.stderr
    no_traceback(proc)
    run = json.loads((tmp_path / "run.json").read_text())["run"]
    assert run["aborted"] is True
    assert run["bot_failures"] == [{"bot_id": 1, "type": "ValueError", "message": "boom"}]


def test_max_failures_none_lets_the_run_finish() -> None:
    proc = trio_bots_cmd("run", "boom.py", "--max-failures", "none", "--duration", "0.5")
    assert proc.returncode == 0, proc.stderr


def test_unreachable_host_exits_3() -> None:
    port = closed_port()
    start = time.monotonic()
    proc = trio_bots_cmd("run", "ok.py", "--host", f"127.0.0.1:{port}")
    assert proc.returncode == 3, proc.stderr
    assert f"cannot reach 127.0.0.1:{port}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Aggregated" not in proc.stdout  # the swarm never started
    # A refused connection fails at once; the check waits HOST_CHECK_TIMEOUT at most.
    assert time.monotonic() - start < HOST_CHECK_TIMEOUT + 15


def test_host_without_port_is_not_checked(tmp_path: Path) -> None:
    proc = trio_bots_cmd(
        "run", "ok.py:short", "--host", "example.invalid", "--json", str(tmp_path / "r.json")
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["run"]["options"]["host"] == (
        "example.invalid"
    )


# -- 130 / 143: signals


def _start_stubborn(tmp_path: Path, backend: str, stop_grace: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trio_bots.cli",
            "run",
            "stubborn.py",
            "--bots",
            "3",
            "--stop-grace",
            stop_grace,
            "--backend",
            backend,
            "--json",
            str(tmp_path / "run.json"),
            "--csv",
            str(tmp_path / "run"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=SCENARIOS,
    )


def read_until(proc: subprocess.Popen[str], marker: str) -> None:
    """Read the child's stdout up to the line `marker` (within TIMEOUT)."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + TIMEOUT
    while (line := proc.stdout.readline()) and line.strip() != marker:
        seen.append(line)
        assert time.monotonic() < deadline, seen
    assert line.strip() == marker, seen


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The child's stdout and stderr once it ends (killed after TIMEOUT)."""
    try:
        return proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("signum", "backend"),
    [(signal.SIGINT, "trio"), (signal.SIGTERM, "trio"), (signal.SIGINT, "asyncio")],
)
def test_one_signal_stops_gracefully(tmp_path: Path, signum: int, backend: str) -> None:
    proc = _start_stubborn(tmp_path, backend, stop_grace="0.3")
    read_until(proc, "ready")
    proc.send_signal(signum)
    out, err = finish(proc)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in out + err
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["run"]["interrupted"] is True
    assert doc["stats"]["tick"]["count"] > 0
    assert list(tmp_path.glob("run*.csv"))


@pytest.mark.parametrize(
    ("signum", "backend"), [(signal.SIGINT, "trio"), (signal.SIGTERM, "asyncio")]
)
def test_second_signal_cancels_at_once(tmp_path: Path, signum: int, backend: str) -> None:
    # The bots ignore the graceful stop and the grace is long: only the
    # second signal can end this run in time.
    proc = _start_stubborn(tmp_path, backend, stop_grace="60")
    read_until(proc, "ready")
    proc.send_signal(signum)
    read_until(proc, "stopping")
    start = time.monotonic()
    proc.send_signal(signum)
    _, err = finish(proc)
    assert proc.returncode == 128 + signum, err
    assert time.monotonic() - start < 30  # far less than the 60 s grace
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["run"]["interrupted"] is True
    assert doc["stats"]["tick"]["count"] > 0


def test_ctrl_c_before_the_swarm_starts_exits_130() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "trio_bots.cli", "run", "slow_import.py"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=SCENARIOS,
    )
    read_until(proc, "importing")
    proc.send_signal(signal.SIGINT)
    out, err = finish(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err
