"""The HDR log (hdr_log=, --hdr-log): HdrHistogram's own reader reads it, its figures equal
the run's own, it is flushed every second, and trio-bots report rebuilds the reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

import trio_bots
from trio_bots import ConfigError
from trio_bots.metrics import read_hdr_log, stats_from_snapshot
from trio_bots.metrics._hdr import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS
from trio_bots.metrics._hdrlog import decode_tag, encode_tag

SCENARIOS = Path(__file__).parent / "scenarios"
ODD = "GET /item, first;\r\n100%"  # every character a tag must encode


async def worker(bot: trio_bots.Bot) -> None:
    for i in range(40):
        async with bot.measure("login"):
            await trio.sleep(0.01 * (1 + (bot.id * 7 + i) % 13))
        async with bot.measure(ODD, tags={"region": "eu" if bot.id % 2 else "us"}):
            await trio.sleep(0.003)
        if i % 9 == 0:
            try:
                async with bot.measure("login"):
                    raise ValueError("refused")
            except ValueError:
                pass
        bot.count("loops")
        bot.gauge("depth", float(i))


def run(log: Path, **options: Any) -> trio_bots.SwarmResult:
    async def main() -> trio_bots.SwarmResult:
        with trio.fail_after(600):
            return await trio_bots.swarm(worker, 6, hdr_log=log, **options)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def reference() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def read_with_hdrh(path: Path) -> dict[str | None, HdrHistogram]:
    """Every interval in the log, summed per tag, by hdrh's own reader."""
    reader = HistogramLogReader(str(path), reference())
    summed: dict[str | None, HdrHistogram] = {}
    while (hist := reader.get_next_interval_histogram()) is not None:
        tag = hist.get_tag()
        if tag not in summed:
            summed[tag] = reference()
        summed[tag].add(hist)
    reader.close()
    return summed


def test_tags_are_percent_encoded() -> None:
    assert encode_tag(ODD) == "GET%20/item%2C%20first%3B%0D%0A100%25"
    assert decode_tag(encode_tag(ODD)) == ODD
    assert encode_tag("login") == "login"


def test_hdrh_reads_the_log_and_its_figures_equal_the_runs(tmp_path: Path) -> None:
    log = tmp_path / "run.hlog"
    result = run(log)
    summed = read_with_hdrh(log)
    names = {decode_tag(tag): hist for tag, hist in summed.items() if tag is not None}
    assert set(names) == {"login", f"{ODD}{{region=eu}}", f"{ODD}{{region=us}}"}
    for name, hist in names.items():
        key = name.split("{")[0]
        stats = result.stats[name] if "{" in name else result.stats[key]
        assert hist.get_total_count() == stats.count
        for q in (50, 90, 99, 99.9):
            # the run's figures are clamped into its exact min and max; the log's are not
            assert hist.get_value_at_percentile(q) / 1e6 == pytest.approx(
                stats.percentile(q), rel=1e-3
            )
    # the untagged lines hold the total of the request names
    assert summed[None].get_total_count() == result.stats.total.count
    text = log.read_text()
    assert text.startswith("#[Histogram log format version 1.3]\n#[StartTime: ")
    assert f"{result.started_wall:.3f}" in text.splitlines()[1]


def test_read_back_the_run_is_the_same(tmp_path: Path) -> None:
    log = tmp_path / "run.hlog"
    result = run(log)
    snapshot, info = read_hdr_log(log)
    stats = stats_from_snapshot(snapshot)
    assert sorted(stats) == sorted(result.stats)
    for name in ["login", ODD]:
        mine, theirs = stats[name], result.stats[name]
        assert (mine.count, mine.failure_count) == (theirs.count, theirs.failure_count)
        for q in (0, 50, 90, 99, 99.9, 100):
            assert mine.percentile(q) == theirs.percentile(q)
        assert mine.max == theirs.max and mine.min == theirs.min
    assert stats.total.count == result.stats.total.count
    assert [b.count for b in result.timeline] == [
        b["count"] for b in snapshot["timeline"]
    ]
    assert snapshot["counters"] == result.metrics["counters"] == {"loops": 240}
    assert snapshot["gauges"] == result.metrics["gauges"]
    assert info["size"] == 6 and info["bots_started"] == info["bots_finished"] == 6
    assert info["duration"] == pytest.approx(result.duration)


def test_the_open_model_writes_raw_lines(tmp_path: Path) -> None:
    async def slow(bot: trio_bots.Bot) -> None:
        async for it in bot.iterations():
            with it:
                async with bot.measure("get"):
                    await trio.sleep(0.2)

    log = tmp_path / "open.hlog"

    async def main() -> trio_bots.SwarmResult:
        with trio.fail_after(60):
            return await trio_bots.swarm(slow, 1, rate=20, duration=3, max_bots=2, hdr_log=log)

    result = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    summed = read_with_hdrh(log)
    assert {"get", "get;raw"} <= set(summed)
    assert summed["get;raw"].get_total_count() == result.stats["get"].count
    raw = result.stats["get"].raw
    assert summed["get;raw"].get_value_at_percentile(99) / 1e6 == pytest.approx(
        raw.percentile(99), rel=1e-3
    )
    snapshot, _ = read_hdr_log(log)
    again = stats_from_snapshot(snapshot)["get"]
    assert again.raw.percentile(99) == raw.percentile(99)
    assert again.percentile(99) == result.stats["get"].percentile(99)


def test_each_second_is_flushed_as_it_ends(tmp_path: Path) -> None:
    log = tmp_path / "live.hlog"
    seen: list[int] = []

    async def main() -> None:
        async with trio_bots.open_swarm(worker, 2, hdr_log=log, duration=3) as swarm:

            def tick(t: Any) -> None:
                lines = [ln for ln in log.read_text().splitlines() if ln.startswith("#[trio-bots ")]
                seen.append(json.loads(lines[-1][len("#[trio-bots ") : -1])["t"])

            swarm.on_tick(tick)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert seen[:3] == [0, 1, 2]


def test_an_unwritable_log_is_a_config_error_before_the_start(tmp_path: Path) -> None:
    started: list[int] = []

    async def noted(bot: trio_bots.Bot) -> None:
        started.append(bot.id)

    with pytest.raises(ConfigError, match=r"hdr_log .*no/such/run.hlog.*folder exists"):
        trio.run(lambda: trio_bots.swarm(noted, 1, hdr_log=tmp_path / "no/such/run.hlog"))
    assert started == []


def test_reading_a_file_that_is_not_a_log(tmp_path: Path) -> None:
    other = tmp_path / "other.hlog"
    other.write_text("#[StartTime: 1.0 (seconds since epoch), x]\n0.0,1.0,1.0,HISTF\n")
    with pytest.raises(ConfigError, match="not an HDR log written by trio-bots"):
        read_hdr_log(other)
    with pytest.raises(ConfigError, match="cannot read the HDR log"):
        read_hdr_log(tmp_path / "missing.hlog")


# -- trio-bots report


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_bots.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=SCENARIOS,
    )


def test_report_rebuilds_the_reports_and_judges_thresholds(tmp_path: Path) -> None:
    log = tmp_path / "run.hlog"
    ran = cli("run", "ok.py", "--duration", "1.5", "--hdr-log", str(log), "--quiet",
              "--json", str(tmp_path / "run.json"))
    assert ran.returncode == 0, ran.stderr
    rebuilt = cli("report", str(log), "--threshold", "p99(nap) < 10s", "--threshold",
                  "count(nap) > 0", "--json", str(tmp_path / "again.json"))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "PASS" in rebuilt.stdout and "nap" in rebuilt.stdout
    first = json.loads((tmp_path / "run.json").read_text())
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["metrics"]["names"]["nap"]["count"] == first["metrics"]["names"]["nap"]["count"]
    assert again["metrics"]["names"]["nap"]["hist"] == first["metrics"]["names"]["nap"]["hist"]
    assert [t["passed"] for t in again["thresholds"]] == [True, True]
    failing = cli("report", str(log), "--threshold", "p99(nap) < 1us", "--quiet")
    assert failing.returncode == 1, failing.stderr
    bad = cli("report", str(tmp_path / "run.json"))
    assert bad.returncode == 2 and "not an HDR log written by trio-bots" in bad.stderr
    malformed = cli("report", str(log), "--threshold", "p99(nap) <")
    assert malformed.returncode == 2 and "bad threshold" in malformed.stderr
