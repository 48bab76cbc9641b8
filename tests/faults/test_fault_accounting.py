"""Nothing is lost: every measure() block is a success, a failure or cancelled; failure
groups stay bounded; reports are written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from _faults import PYTHON, Entered, check_reports, child_env
from _leaks import live_task_names, open_fds
from rich.console import Console

import trio_bots
from trio_bots.metrics import (
    Recorder,
    failures_from_snapshot,
    merge,
    stats_from_snapshot,
)
from trio_bots.report import render_console, write_csv, write_html, write_json


def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


# -- cancelled -----------------------------------------------------------------------------


@pytest.mark.trio
async def test_the_stop_counts_the_requests_it_cuts_off_as_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    entered = Entered()
    tasks_before = len(live_task_names())

    async def worker(bot: trio_bots.Bot) -> None:
        while True:
            async with entered.measure(bot, "work"):
                # bots 0..4 finish within the grace; 5..9 are cut off by it
                await trio.sleep(0.4 if bot.id < 5 else 10)

    with trio.fail_after(30):
        result = await trio_bots.swarm(worker, 10, duration=1.0, stop_grace=0.5)
    figures = entered.check(result)
    work = result.stats["work"]
    # bots 0..4 loop until the grace ends; each bot has exactly one block cut off
    assert work.cancelled == 10 and work.failure_count == 0
    assert work.count == 5 * 3  # 1.5 s of 0.4 s requests: three each, the fourth cancelled
    assert work.rps == pytest.approx(work.count / work.active_seconds)
    assert work.failure_rate == 0.0
    assert figures["work"] == (25, 15, 0, 10)
    assert len(live_task_names()) == tasks_before


@pytest.mark.trio
async def test_a_cancellation_from_outside_counts_as_cancelled_and_timeouts_as_failures(
    autojump_clock: trio.testing.MockClock,
) -> None:
    entered = Entered()

    async def worker(bot: trio_bots.Bot) -> None:
        with pytest.raises(trio_bots.RequestTimeout):
            async with entered.measure(bot, "slow"):
                await trio.sleep(10)  # longer than request_timeout: a failure at 5 s
        async with entered.measure(bot, "stuck"):
            await trio.sleep_forever()  # cut off at 8 s by the move_on_after below

    with trio.move_on_after(8) as scope:
        async with trio_bots.open_swarm(worker, 4, request_timeout=5) as running:
            pass
    assert scope.cancelled_caught and running.result is not None
    figures = entered.check(running.result)
    assert figures == {"slow": (4, 0, 4, 0), "stuck": (4, 0, 0, 4)}
    assert [f.kind for f in running.result.failures] == ["RequestTimeout"]


def test_merge_sums_cancelled_and_rates_leave_it_out() -> None:
    a, b = Recorder(0.0), Recorder(0.0)
    a.record("get", 1000)
    a.record_cancelled("get")
    b.record_failure("get", "OSError", "reset", 1)
    for _ in range(3):
        b.record_cancelled("get")
    b.record_cancelled("only-cancelled")
    snaps = [r.snapshot(2.0, bots_running=0, active_seconds=2.0) for r in (a, b)]
    merged = stats_from_snapshot(merge(*snaps))
    get = merged["get"]
    assert (get.count, get.failure_count, get.cancelled) == (1, 1, 4)
    assert get.rps == 1.0 and get.failure_rate == 0.5  # (1 + 1) / 2 s; 1 of 2
    only = merged["only-cancelled"]
    assert (only.count, only.cancelled, only.rps) == (0, 1, 0.0)
    assert math.isnan(only.failure_rate)
    assert merged.total.cancelled == 5
    # merge is commutative for cancelled too
    assert stats_from_snapshot(merge(snaps[1], snaps[0]))["get"].cancelled == 4


def cancelled_run() -> dict[str, Any]:
    rec = Recorder(start_time=0.0)
    for _ in range(7):
        rec.record("login", 2000)
    rec.record_failure("login", "OSError", "reset", 1)
    rec.record_cancelled("login")
    rec.record_cancelled("login")
    rec.tick(0, bots_running=2)
    metrics = rec.snapshot(1.0, bots_running=0, active_seconds=1.0)
    return {"schema": "trio-bots/1", "time_unit": "s", "run": {}, "metrics": metrics}


def test_every_report_has_the_cancelled_figure(tmp_path: Path) -> None:
    run = cancelled_run()
    doc = json.loads(write_json(run, tmp_path / "run.json").read_text())
    assert doc["stats"]["login"]["cancelled"] == 2 and doc["total"]["cancelled"] == 2
    assert doc["stats"]["login"]["rps"] == 8.0  # 7 ok + 1 failed, in 1 s
    stats_csv = write_csv(run, tmp_path / "run")[0]
    rows = {r["Name"]: r for r in csv.DictReader(stats_csv.read_text().splitlines())}
    assert rows["login"]["Cancelled Count"] == "2" and rows["Aggregated"]["Cancelled Count"] == "2"
    assert rows["login"]["Request Count"] == "8"
    out = io.StringIO()
    render_console(run, Console(file=out, force_terminal=False, width=160))
    text = out.getvalue()
    header = next(line for line in text.splitlines() if line.startswith("Name"))
    assert header.split()[:5] == ["Name", "Requests", "Failures", "Cancelled", "RPS"]
    assert next(line for line in text.splitlines() if line.startswith("login")).split()[1:4] == [
        "8",
        "1",
        "2",
    ]
    assert "2 cancelled" in text  # the summary line
    page = write_html(run, tmp_path / "run.html").read_text()
    assert "<th>Cancelled</th>" in page
    check_reports(tmp_path / "run.json", tmp_path / "run")


def test_the_console_has_no_cancelled_column_when_nothing_was_cancelled() -> None:
    rec = Recorder(start_time=0.0)
    rec.record("login", 2000)
    metrics = rec.snapshot(1.0, bots_running=0, active_seconds=1.0)
    run = {"schema": "trio-bots/1", "run": {}, "metrics": metrics}
    out = io.StringIO()
    render_console(run, Console(file=out, force_terminal=False, width=160))
    assert "Cancelled" not in out.getvalue() and "cancelled" not in out.getvalue()


# -- bounded failure groups ----------------------------------------------------------------


@pytest.mark.trio
async def test_fifty_thousand_distinct_errors_keep_at_most_a_thousand_groups(
    autojump_clock: trio.testing.MockClock,
) -> None:
    entered = Entered()

    async def worker(bot: trio_bots.Bot) -> None:
        for i in range(1000):
            async with entered.measure(bot, "get") as m:
                m.fail(f"bad reply from 127.0.0.1:{bot.id * 1000 + i}")  # all distinct
        with pytest.raises(ValueError):
            async with entered.measure(bot, "post"):
                raise ValueError(f"bot {bot.id}")

    with trio.fail_after(60):
        result = await trio_bots.swarm(worker, 50)
    entered.check(result)
    assert result.stats["get"].failure_count == 50_000
    groups = result.failures
    other = [g for g in groups if g.kind == "Other"]
    assert len(groups) - len(other) == 1000
    # one "other" group per name that overflowed; the counts are all kept
    assert sorted(g.name for g in other) == ["get", "post"]
    for name in ("get", "post"):
        assert sum(g.count for g in groups if g.name == name) == result.stats[name].failure_count
    assert "1000" in other[0].message

    # a merge of two such runs is bounded too, and keeps every count
    merged_snapshot = merge(result.metrics, result.metrics)
    merged = failures_from_snapshot(merged_snapshot)
    assert len([g for g in merged if g.kind != "Other"]) == 1000
    assert len([g for g in merged if g.kind == "Other"]) == 2
    assert sum(g.count for g in merged) == 2 * sum(g.count for g in groups)
    # the reports stay readable: a bounded number of failure rows
    out = io.StringIO()
    render_console(result.to_dict(), Console(file=out, force_terminal=False, width=160))
    assert len(out.getvalue().splitlines()) < 1200


# -- atomic reports --------------------------------------------------------------------------


def test_a_report_that_fails_midway_leaves_the_previous_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = cancelled_run()
    target = write_json(run, tmp_path / "run.json")
    before = target.read_text()
    fds = open_fds()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt  # a Ctrl-C while the bytes go to disk

    monkeypatch.setattr("os.fsync", interrupted)
    other = {**run, "run": {"duration": 99.0}}
    with pytest.raises(KeyboardInterrupt):
        write_json(other, target)
    with pytest.raises(KeyboardInterrupt):
        write_csv(other, tmp_path / "run")
    monkeypatch.undo()
    assert target.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
    assert open_fds() == fds


KILLED_WRITER = """
import sys
from trio_bots.metrics import Recorder
from trio_bots.report import write_csv, write_html, write_json

rec = Recorder(start_time=0.0)
for n in range(300):  # a few MB of JSON: the write takes a while
    for us in range(1, 400):
        rec.record(f"name-{n}", us * 37)
    rec.record_failure(f"name-{n}", "OSError", f"reset {n}", n)
run = {"schema": "trio-bots/1", "time_unit": "s", "run": {}, "thresholds": [],
       "metrics": rec.snapshot(1.0, bots_running=0, active_seconds=1.0)}
out = sys.argv[1]
print("ready", flush=True)
while True:
    write_json(run, out + ".json")
    write_csv(run, out)
"""


def test_a_sigkill_while_reports_are_written_never_leaves_a_truncated_file(
    tmp_path: Path,
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    out = tmp_path / "reports" / "run"
    out.parent.mkdir()
    for delay in (0.05, 0.2, 0.45, 0.7, 1.1):
        proc = subprocess.Popen(
            [PYTHON, str(script), str(out)], stdout=subprocess.PIPE, text=True, env=child_env()
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        json_file = out.with_suffix(".json")
        if json_file.exists():  # the previous file, whole, or none yet
            assert json.loads(json_file.read_text())["schema"] == "trio-bots/1"
        for path in out.parent.glob("run_*.csv"):
            rows = list(csv.reader(path.read_text().splitlines()))
            assert rows and all(len(row) == len(rows[0]) for row in rows)
    # a SIGKILL cannot clean up: at most one temporary file per kill stays behind
    assert len(list(out.parent.glob(".*.tmp"))) <= 5
