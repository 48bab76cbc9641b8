"""Runs over local shard processes: exact totals, merged percentiles, global steps, split
groups, lost shards, Ctrl-C, and the errors for workers that cannot travel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

import trio_bots
from trio_bots import ConfigError, SwarmAborted
from trio_bots.metrics import Recorder, stats_from_snapshot

SCENARIOS = Path(__file__).parent / "scenarios"
sys.path.insert(0, str(SCENARIOS))
import shards  # noqa: E402  (the workers live at module level, for the shard processes)

ROOT = Path(__file__).parent.parent


def run(worker: Any, size: int, **options: Any) -> trio_bots.SwarmResult:
    async def main() -> trio_bots.SwarmResult:
        with trio.fail_after(60):
            return await trio_bots.swarm(worker, size, **options)

    return trio.run(main)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_exact_arrivals_over_three_processes() -> None:
    result = run(shards.iterate, 3, processes=3, rate=40, duration=1.5)
    assert result.stats["work"].count == 60
    assert [row["count"] for row in result.shards] == [1, 1, 1]
    assert sorted(row["requests"] for row in result.shards) == [20, 20, 20]
    assert all(gone(row["pid"]) for row in result.shards)  # nothing outlives the swarm


def test_merged_percentiles_equal_one_recorder(capfd: pytest.CaptureFixture[str]) -> None:
    result = run(shards.worker, 10, processes=3, duration=1.2, stop_grace=0.5, shard_align=1)
    alone = Recorder(0.0)
    for bot_id in range(10):
        for i in range(5):
            alone.record("known", (bot_id * 5 + i + 1) * 1000)
    alone.tick(0, bots_running=0)
    expected = stats_from_snapshot(alone.snapshot(1.0, bots_running=0, active_seconds=1.0))
    merged = result.stats["known"]
    assert merged.count == expected["known"].count == 50
    for q in (0, 25, 50, 90, 99, 100):
        assert merged.percentile(q) == expected["known"].percentile(q)
    assert result.stats["after-step"].count == 10
    assert [(r["first_bot"], r["last_bot"]) for r in result.shards] == [(0, 3), (4, 6), (7, 9)]
    assert result.bots_started == result.bots_finished == 10


def test_step_is_global_across_processes(capfd: pytest.CaptureFixture[str]) -> None:
    result = run(shards.steps, 6, processes=2)
    out = capfd.readouterr().out
    assert sorted(line.split("] ")[0] for line in out.splitlines() if "released" in line) == [
        "[shard 0",
    ] * 3 + ["[shard 1"] * 3
    # every bot left the step after the last one (bot 5, 0.5 s in) arrived
    first = min(r["first_bot"] for r in result.shards)
    assert first == 0
    assert result.stats["released"].count == 6
    assert result.bots_finished == 6


def test_a_split_group_is_warned_about_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    result = run(shards.worker, 8, processes=2, duration=1, stop_grace=0.2)  # 4/4: table-1
    assert result.split_groups == [{"group": "table-1", "shards": [0, 1]}]
    assert any("group 'table-1' spans shards 0, 1" in w for w in result.warnings)
    assert result.to_dict()["run"]["split_groups"] == [{"group": "table-1", "shards": [0, 1]}]
    aligned = run(shards.worker, 8, processes=2, duration=1, stop_grace=0.2, shard_align=3)
    assert aligned.split_groups == []
    assert [r["count"] for r in aligned.shards] == [6, 2]


def test_strict_groups_aborts_on_a_split() -> None:
    with pytest.raises(SwarmAborted, match="group 'table-1' spans shards 0, 1") as caught:
        run(shards.worker, 8, processes=2, duration=20, strict_groups=True)
    assert caught.value.result.aborted
    assert caught.value.result.duration < 15


def test_a_killed_shard_is_reported_and_the_others_stop() -> None:
    started = time.monotonic()
    with pytest.raises(SwarmAborted) as caught:
        run(shards.die_in_shard_1, 6, processes=2, duration=20, stop_grace=1)
    assert time.monotonic() - started < 15  # nothing hangs
    result = caught.value.result
    pid = result.shards[1]["pid"]
    assert str(caught.value) == f"shard 1 (pid {pid}) died: SIGKILL"
    assert result.shards[1]["lost"] == "died: SIGKILL"
    assert result.shards[0]["lost"] is None
    assert result.aborted and result.bot_failures == []
    assert result.bots_finished == result.bots_started == 6  # its bots count as ended
    # shard 1's first second reached the driver before it died
    assert result.stats["before"].count == 6
    assert result.to_dict()["shards"][1]["lost"] == "died: SIGKILL"
    assert all(gone(row["pid"]) for row in result.shards)


def test_a_bot_failure_in_a_shard_aborts_the_run() -> None:
    with pytest.raises(SwarmAborted, match="shard 1: bot 4 failed: ValueError") as caught:
        run(shards.fail, 6, processes=2, duration=20)
    [failure] = caught.value.result.bot_failures
    assert failure.bot_id == 4 and isinstance(failure.exception, ValueError)


def test_max_failures_counts_the_failures_of_every_shard() -> None:
    # 2 failures in each shard: within max_failures=3 for each, but 4 in all
    with pytest.raises(SwarmAborted) as caught:
        run(shards.fail_four, 6, processes=2, duration=20, max_failures=3)
    assert str(caught.value) == (
        "shard 0: bot 0 failed: ValueError: bot 0 (and 3 more bot failures); "
        "max_failures=3 was exceeded, so the swarm was aborted"
    )
    result = caught.value.result
    assert [f.bot_id for f in result.bot_failures] == [0, 1, 3, 4]
    assert result.aborted and result.duration < 10
    result = run(shards.fail_four, 6, processes=2, duration=1.5, max_failures=4)
    assert not result.aborted and len(result.bot_failures) == 4


def test_workers_that_cannot_travel_are_config_errors() -> None:
    async def local(bot: trio_bots.Bot) -> None:
        pass

    with pytest.raises(ConfigError, match="is a closure"):
        run(local, 2, processes=2)
    with pytest.raises(ConfigError, match="lambda"):
        run(lambda bot: local(bot), 2, processes=2)
    with pytest.raises(ConfigError, match="generator function"):
        run(shards.idle, 2, processes=2, factory=shards.generator_factory)


def test_each_shard_counts_its_cancelled_measures() -> None:
    result = run(shards.measure_forever, 5, processes=2, duration=1, stop_grace=0.2)
    assert [row["cancelled"] for row in result.shards] == [3, 2]
    assert result.stats["forever"].cancelled == 5
    assert result.to_dict()["shards"][1]["cancelled"] == 2


def test_the_open_model_merges_each_seconds_raw_figures_over_the_shards(tmp_path: Path) -> None:
    from trio_bots.metrics import read_hdr_log
    from trio_bots.metrics._hdr import decode_hist

    log = tmp_path / "run.hlog"
    ticks: list[Any] = []

    async def main() -> trio_bots.SwarmResult:
        with trio.fail_after(60):
            async with trio_bots.open_swarm(
                shards.iterate, 2, processes=2, rate=40, duration=2.5, hdr_log=str(log)
            ) as swarm:
                swarm.on_tick(ticks.append)
        assert swarm.result is not None
        return swarm.result

    result = trio.run(main)
    seconds = [t for t in ticks if t.bucket["names"].get("work", {}).get("count")]
    assert len(seconds) >= 2
    for tick in seconds:
        work = tick.bucket["names"]["work"]
        assert set(tick.raw_percentiles) == set(tick.raw) == {"work"}
        # both shards' raw samples of the second: as many as the corrected ones
        assert decode_hist(tick.raw["work"]).get_total_count() == work["count"]
        raw = tick.raw_percentiles["work"]
        assert 0.001 <= raw["p50"] <= raw["p99"] <= work["p99"] * 1.01  # raw <= corrected
    # the driver's HDR log has the raw series too, as a run in one process does
    stats = stats_from_snapshot(read_hdr_log(log)[0])
    assert stats["work"].raw.count == stats["work"].count == result.stats["work"].count


def test_reports_have_a_row_per_shard_and_the_total(tmp_path: Path) -> None:
    import csv

    from trio_bots.report import write_csv, write_html

    result = run(shards.iterate, 3, processes=3, rate=40, duration=1.5)
    paths = write_csv(result, tmp_path / "run")
    assert paths[-1].name == "run_shards.csv"
    rows = list(csv.DictReader(paths[-1].read_text().splitlines()))
    assert [r["Shard"] for r in rows] == ["0", "1", "2", "Total"]
    assert [r["Bot ids"] for r in rows] == ["0-0", "1-1", "2-2", ""]
    assert [int(r["Requests"]) for r in rows] == [20, 20, 20, 60]
    assert [r["PID"] for r in rows[:3]] == [str(row["pid"]) for row in result.shards]
    page = write_html(result, tmp_path / "run.html").read_text()
    section = page.split("<h2>Shards</h2>", 1)[1].split("</table>", 1)[0]
    assert section.count("<tr") == 5 and '<tr class="total"><td class="text">Total' in section


def test_ray_missing_is_one_line_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as when not installed
    with pytest.raises(ConfigError) as caught:
        run(shards.idle, 2, ray="auto")
    assert str(caught.value) == "ray= needs Ray: pip install 'trio-bots[ray]'"


def _cli(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "trio_bots.cli", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def test_cli_processes_writes_shard_rows(tmp_path: Path) -> None:
    report = tmp_path / "run.json"
    proc = _cli(
        f"{SCENARIOS / 'shards.py'}:iterate", "--processes", "2", "--rate", "20",
        "--duration", "1", "--json", str(report), "--quiet",
    )
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    data = json.loads(report.read_text())
    assert data["schema"] == "trio-bots/1"
    assert [s["index"] for s in data["shards"]] == [0, 1]
    assert sum(s["requests"] for s in data["shards"]) == 20
    assert data["run"]["options"]["processes"] == 2


def test_cli_a_killed_shard_exits_3(tmp_path: Path) -> None:
    report = tmp_path / "run.json"
    proc = _cli(
        f"{SCENARIOS / 'shards.py'}:die_in_shard_1", "--json", str(report), "--quiet",
    )
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "died: SIGKILL" in err
    data = json.loads(report.read_text())
    assert data["shards"][1]["lost"] == "died: SIGKILL"


def test_ctrl_c_in_the_driver_stops_every_shard(tmp_path: Path) -> None:
    report = tmp_path / "run.json"
    proc = _cli(f"{SCENARIOS / 'shards.py'}:idle", "--json", str(report), "--no-live")
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:  # the first status line: the shards run
        if "bots" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    data = json.loads(report.read_text())
    assert data["run"]["interrupted"] and data["run"]["signal"] == signal.SIGINT
    assert all(gone(row["pid"]) for row in data["shards"])
    assert data["run"]["bots_finished"] == 6


def test_a_second_signal_cancels_at_once(tmp_path: Path) -> None:
    report = tmp_path / "run.json"
    proc = _cli(
        f"{SCENARIOS / 'shards.py'}:stubborn", "--json", str(report), "--no-live",
        "--stop-grace", "30",
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "bots" in line:
            break
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10  # not the 30 s grace
    assert proc.returncode == 130, err
    data = json.loads(report.read_text())
    assert all(gone(row["pid"]) for row in data["shards"])
    assert data["run"]["bots_started"] == 6


@pytest.mark.slow
def test_a_silent_shard_is_lost_after_the_heartbeat() -> None:
    started = time.monotonic()
    with pytest.raises(SwarmAborted, match=r"shard 1 \(pid \d+\) sent no snapshot for 5 s"):
        run(shards.hang_shard_1, 6, processes=2, duration=30, stop_grace=0.5)
    assert time.monotonic() - started < 15
