"""The CLI's live view: rendering, its refresh loop on a mock clock, and a real terminal."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path
from typing import Any

import pexpect
import pytest
import trio
import trio.testing
from rich.console import Console

from trio_bots import Bot, open_swarm
from trio_bots._core.swarm import SwarmStatistics
from trio_bots.cli._live import plain_line, render_live, watch_swarm
from trio_bots.metrics import Recorder

SCENARIOS = Path(__file__).parent / "scenarios"


def statistics(metrics: dict[str, Any], **overrides: Any) -> SwarmStatistics:
    fields: dict[str, Any] = {
        "elapsed": 2.2,
        "duration": 10.0,
        "bots_running": 5,
        "bots_target": 8,
        "bots_started": 6,
        "bots_finished": 1,
        "dropped_messages": 0,
        "dropped_arrivals": 0,
        "stopping": False,
        "metrics": metrics,
    }
    fields.update(overrides)
    return SwarmStatistics(**fields)


def two_seconds() -> dict[str, Any]:
    """100 logins (and 4 failures) in the first second, 7 in the current one."""
    rec = Recorder(start_time=0.0)
    for _ in range(100):
        rec.record("login", 2_000)
    for _ in range(4):
        rec.record_failure("login", "ValueError", "nope", 3)
    rec.record_fanout("group:lobby", 50)
    rec.tick(1.0, bots_running=5)
    for _ in range(7):
        rec.record("login", 9_000)
    return rec.snapshot(2.2, bots_running=5, active_seconds=2.2)


def render(renderable: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=100, force_terminal=True, color_system=None).print(renderable)
    return out.getvalue()


def test_live_panel_shows_bar_bots_and_the_last_complete_second() -> None:
    text = render(render_live(statistics(two_seconds())))
    assert "━" in text  # the progress bar
    assert "2.2s / 10s" in text
    assert "bots 5/8" in text
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.split()}
    # The last complete second: 100 + 4 requests, not the 7 of the current one.
    assert lines["login"][1:] == ["104", "4", "2.00", "ms", "2.00", "ms"]
    assert lines["group:lobby"][1:3] == ["1", "0"]
    assert lines["Total"][1:3] == ["104", "4"]
    assert "requests 111  failures 4" in text  # cumulative
    assert "dropped arrivals" not in text


def test_live_panel_open_model_and_stopping() -> None:
    stats = statistics(two_seconds(), dropped_arrivals=12, stopping=True, duration=None)
    text = render(render_live(stats, planned=40.0, open_model=True))
    assert "2.2s / 40s" in text
    assert "dropped arrivals 12" in text
    assert "stopping" in text


def test_live_panel_in_the_first_second_uses_the_partial_bucket() -> None:
    rec = Recorder(start_time=0.0)
    for _ in range(5):
        rec.record("login", 1_000)
    stats = statistics(rec.snapshot(0.5, bots_running=1, active_seconds=0.5), elapsed=0.5)
    text = render(render_live(stats))
    login = next(line.split() for line in text.splitlines() if line.startswith(" login"))
    assert login[1] == "10"  # 5 requests in half a second


def test_plain_line() -> None:
    line = plain_line(statistics(two_seconds(), dropped_arrivals=3))
    assert line.startswith("[2.2s/10s] bots 5/8")
    assert "rps 104" in line
    assert "failures 4 (total 4)" in line
    assert "p50 2.00 ms" in line
    assert "dropped arrivals 3" in line
    empty = plain_line(statistics({"names": {}, "timeline": []}, duration=None), planned=None)
    assert empty.startswith("[2.2s/?]")


async def _napper(bot: Bot) -> None:
    while not bot.stopping.is_set():
        async with bot.measure("nap"):
            await trio.sleep(0.1)


async def _watched_run(mode: Any, console: Console) -> None:
    async with trio.open_nursery() as nursery:
        async with open_swarm(_napper, 3, duration=3.2, stop_grace=1) as swarm:
            nursery.start_soon(watch_swarm, swarm, console, mode)
        nursery.cancel_scope.cancel()


def test_plain_lines_once_a_second_on_the_swarm_clock() -> None:
    out = io.StringIO()

    async def main() -> None:
        with trio.fail_after(60):
            await _watched_run("plain", Console(file=out, width=200))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    lines = out.getvalue().splitlines()
    assert [line.split("]")[0] for line in lines] == ["[1.0s/3.2s", "[2.0s/3.2s", "[3.0s/3.2s"]
    assert all("bots 3/3" in line for line in lines)
    # 3 bots, one 0.1 s nap each: about 30 requests in every complete second
    # (a nap ending right on a tick may fall into the next second).
    rps = [int(line.split("rps ")[1].split()[0]) for line in lines]
    assert all(27 <= value <= 33 for value in rps), lines


def test_live_mode_redraws_twice_a_second() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system=None)

    async def main() -> None:
        with trio.fail_after(60):
            await _watched_run("live", console)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    text = out.getvalue()
    # The first frame, then one every 0.5 s until the run ends at 3.2 s
    # (and rich's last refresh as the transient panel is cleared).
    assert 7 <= text.count("last second") <= 8
    assert "3.0s / 3.2s" in text


def test_off_mode_shows_nothing() -> None:
    out = io.StringIO()

    async def main() -> None:
        with trio.fail_after(60):
            await _watched_run("off", Console(file=out, force_terminal=True))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert out.getvalue() == ""


def test_live_view_in_a_real_terminal() -> None:
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "trio_bots.cli", "run", "ok.py", "--bots", "2", "--duration", "2"],
        cwd=str(SCENARIOS),
        env=env,
        dimensions=(40, 120),
        encoding="utf-8",
        timeout=60,
    )
    try:
        output = child.read()  # until the command exits
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, output
    assert "━" in output  # the progress bar
    assert output.count("last second") >= 3  # the table, redrawn
    assert "bots 2/2" in output
    for heading in ("Name", "RPS", "Failures", "p50", "p99"):
        assert heading in output
    assert " nap " in output
    assert "Aggregated" in output  # then the console report
    assert "[1.0s/" not in output  # no plain lines on a terminal


@pytest.mark.parametrize("flag", ["--no-live", "--quiet"])
def test_no_live_in_a_terminal(flag: str) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "trio_bots.cli", "run", "ok.py", "--duration", "1.5", flag],
        cwd=str(SCENARIOS),
        env={**os.environ, "TERM": "xterm-256color"},
        dimensions=(40, 120),
        encoding="utf-8",
        timeout=60,
    )
    try:
        output = child.read()
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, output
    assert "last second" not in output
    if flag == "--no-live":
        # The first plain line, about a second in (the view starts a moment after the swarm).
        assert re.search(r"\[1\.[01]s/1\.5s\] bots 2/2", output), output
        assert "Aggregated" in output
    else:
        assert output.strip() == ""
