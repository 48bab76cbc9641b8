"""Thresholds judged live: the windowed form, the live rules, abort-on-fail and its delay,
the results it leaves, the live view, the pytest fixture and a run over shard processes.

Everything but the last runs in virtual time (MockClock): a worker whose requests
turn slow at a given second stands in for a server that does.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from rich.console import Console

import trio_bots
from trio_bots import ConfigError, ThresholdError
from trio_bots.cli._live import plain_line, render_live
from trio_bots.metrics import (
    LiveThresholds,
    Recorder,
    RunFigures,
    check_thresholds,
    stats_from_snapshot,
)

SCENARIOS = Path(__file__).parent / "scenarios"

pytest_plugins = ["pytester"]


def render(renderable: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=100, force_terminal=True, color_system=None).print(renderable)
    return out.getvalue()


def slow_between(start: float, end: float, *, slow: float = 0.3, fast: float = 0.01) -> Any:
    """A worker whose "x" requests take `slow` seconds when they start in [start, end)."""

    async def worker(bot: trio_bots.Bot) -> None:
        while not bot.stopping.is_set():
            now = trio.current_time()
            async with bot.measure("x"):
                await trio.sleep(slow if start <= now < end else fast)

    return worker


def run(worker: Any, size: int, *, hook: Callable[[Any, Any], None] | None = None,
        **options: Any) -> trio_bots.SwarmResult:
    """Run a swarm in virtual time; `hook(tick, swarm)` sees every second after the monitor."""

    async def main() -> trio_bots.SwarmResult:
        with trio.fail_after(7200):
            async with trio_bots.open_swarm(worker, size, **options) as swarm:
                if hook is not None:
                    swarm.on_tick(lambda tick: hook(tick, swarm))
        assert swarm.result is not None
        return swarm.result

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


#: How `states_per_second` writes each state.
MARKS = {"pending": ".", "passed": "P", "failed": "F"}


def states_per_second(worker: Any, size: int, **options: Any) -> tuple[list[str], Any]:
    """Each whole second's threshold states, one mark per threshold (`MARKS`), and the result."""
    seen: list[str] = []

    def hook(tick: Any, swarm: Any) -> None:
        if not tick.final:
            states = swarm.statistics(metrics=False).thresholds
            seen.append("".join(MARKS[s.status] for s in states))

    return seen, run(worker, size, hook=hook, **options)


# -- the windowed form


def test_a_windowed_threshold_fails_and_recovers_while_a_cumulative_one_stays_failed() -> None:
    seen, result = states_per_second(
        slow_between(2.51, 5.51, fast=0.04),  # slow requests end within seconds 2 to 5
        4,
        duration=14,
        thresholds=["max[3s](x) < 100ms", "max(x) < 100ms", "p95[3s](x) < 100ms"],
    )
    windowed = "".join(s[0] for s in seen)
    cumulative = "".join(s[1] for s in seen)
    # the 3 s window sees seconds 2..5 from second 2 to second 7; then it recovers
    assert windowed == "PP" + "F" * 6 + "P" * 6
    assert cumulative == "PP" + "F" * 12
    p95 = "".join(s[2] for s in seen)
    assert p95.startswith("PP") and p95.endswith("PPPPPP") and "F" in p95
    final = {r.expression: r.passed for r in result.thresholds}
    assert final == {
        "max[3s](x) < 100ms": True,
        "max(x) < 100ms": False,
        "p95[3s](x) < 100ms": True,
    }
    assert result.aborted_by is None


def test_windowed_figures_equal_those_of_the_last_seconds_of_the_timeline() -> None:
    result = run(slow_between(2, 4), 3, duration=10)
    exprs = ["p99[5s](x) < 1s", "rps[5s](x) > 0", "count[5s](x) > 0", "max[10m](x) < 1s"]
    at_end = {r.expression: r.measured for r in result.check(*exprs)}
    # the same figures, fed second by second
    live = LiveThresholds(exprs)
    complete = [b for b in result.metrics["timeline"] if b["t"] + 1 <= result.duration]
    assert len(complete) == 10  # the last, partial second (the bots' last requests) is not
    for bucket in complete:
        live.update(bucket, active_seconds=10.0)
    assert {s.result.expression: s.result.measured for s in live.states} == at_end
    last5 = [b for b in result.timeline if 5 <= b.t < 10]
    assert at_end["count[5s](x) > 0"] == sum(b.names["x"].count for b in last5)
    assert at_end["rps[5s](x) > 0"] == sum(b.names["x"].count for b in last5) / 5
    assert at_end["max[600s](x) < 1s"] == result.stats["x"].max


def test_windowed_reads_the_tag_sets_a_selector_names() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        for _ in range(5):
            region = "eu" if bot.id % 2 else "us"
            async with bot.measure("get", tags={"region": region}):
                await trio.sleep(0.2 if region == "eu" else 0.01)

    result = run(worker, 4)
    eu, us = result.check("max[5s](get{region=eu}) < 1s", "max[5s](get{region=us}) < 1s")
    assert eu.measured == pytest.approx(0.2, rel=1e-3)
    assert us.measured == pytest.approx(0.01, rel=1e-3)
    [both] = result.check("count[5s](get) > 0")
    assert both.measured == 20


# -- the live rules


def test_a_name_not_recorded_yet_is_pending_then_judged() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        await trio.sleep(3)
        while not bot.stopping.is_set():
            async with bot.measure("late"):
                await trio.sleep(0.5)

    seen, result = states_per_second(
        worker, 2, thresholds=["p99(late) < 1ms"], abort_on_fail=True, stop_grace=0
    )
    assert seen == [".", ".", ".", "F"]  # pending (no abort, although abort_on_fail), failed
    assert result.aborted_by == "p99(late) < 1ms"
    assert result.aborted_at == 4.0


def test_counts_that_must_reach_a_value_are_judged_at_the_end_only() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        await trio.sleep(0.05)
        while not bot.stopping.is_set():
            async with bot.measure("x"):
                await trio.sleep(0.1)

    seen, result = states_per_second(
        worker,  # 20 requests a second: 20 k - 2 by the end of second k
        2,
        duration=20,
        thresholds=["count(x) >= 100000", "count(x) > 30", "count(x) == 58", "count(x) < 150"],
        abort_on_fail=True,
    )
    # never failed live (pending), passed once it got there; and a count past its bound
    # fails at once, which aborts the run
    assert seen == ["...P", ".P.P", ".PPP", ".P.P", ".P.P", ".P.P", ".P.P", ".P.F"]
    assert result.aborted_by == "count(x) < 150"
    assert [r.passed for r in result.thresholds] == [False, True, False, False]


def test_a_windowed_count_waits_for_its_window() -> None:
    seen, result = states_per_second(
        slow_between(0, 0), 1, duration=6, thresholds=["count[3s](x) >= 250"], abort_on_fail=True
    )
    # about 100 a second: 300 per full window; pending until the window is full
    assert seen == [".", ".", "P", "P", "P", "P"]
    assert result.aborted_by is None and result.thresholds[0].passed


def test_counters_gauges_and_dropped_counts() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        await trio.sleep(0.5)
        for i in range(6):
            bot.count("retries")
            bot.gauge("queue", float(i))
            await trio.sleep(1)

    seen, result = states_per_second(
        worker,
        1,
        thresholds=[
            "counter(retries) < 4",
            "gauge(queue) <= 3",
            "counter(never) == 0",
            "dropped_arrivals == 0",
            "dropped_messages < 1",
        ],
    )
    assert [s[:2] for s in seen] == ["PP", "PP", "PP", "FP", "FF", "FF"]
    assert {s[2:] for s in seen} == {"PPP"}
    assert [r.measured for r in result.thresholds] == [6.0, 5.0, 0.0, 0.0, 0.0]
    assert [r.passed for r in result.thresholds] == [False, False, True, True, True]
    assert result.thresholds[1].unit == "value"


def test_a_gauge_never_set_is_pending_then_fails_at_the_end() -> None:
    seen, result = states_per_second(slow_between(0, 0), 1, duration=2,
                                     thresholds=["gauge(depth) < 5"])
    assert seen == [".", "."]
    [final] = result.thresholds
    assert not final.passed and final.measured is None
    assert "never set" in str(final)


def test_count_of_a_counter_suggests_counter() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        bot.count("retries")
        await trio.sleep(1.5)

    seen, result = states_per_second(worker, 1, thresholds=["count(retries) < 5"])
    assert seen == ["F"]
    [final] = result.thresholds
    assert not final.passed and "write counter(retries) < 5" in final.reason
    with pytest.raises(ConfigError, match=r"custom counter .* write counter\(retries\) < 5"):
        result.check("count(retries) < 5")


def test_check_thresholds_says_what_a_threshold_needs() -> None:
    rec = Recorder(0.0)
    rec.record("x", 1000)
    stats = stats_from_snapshot(rec.snapshot(1.0, bots_running=0, active_seconds=1.0))
    with pytest.raises(ConfigError, match="reads the last 10 s: check it on the run's result"):
        check_thresholds(stats, ["p99[10s](x) < 1s"])
    with pytest.raises(ConfigError, match="reads the run's counter"):
        check_thresholds(stats, ["counter(x) < 1"])
    [r] = check_thresholds(stats, ["counter(x) < 1"], figures=RunFigures(counters={"x": 3}))
    assert (r.passed, r.measured) == (False, 3.0)


# -- abort on fail


def test_abort_on_fail_stops_the_run_soon_after_the_breach() -> None:
    result = run(
        slow_between(3, 1000, fast=0.02),
        5,
        duration=60,
        thresholds=["failure_rate < 1%", "p99(x)<50ms"],
        abort_on_fail=True,
    )
    assert result.aborted_by == "p99(x)<50ms"  # as written
    assert result.aborted_at == 4.0  # the first second that saw a slow request
    assert 4.0 <= result.duration <= 4.0 + 0.3 + 1e-9  # the stop: the bots' last requests
    assert not result.interrupted and not result.aborted
    assert [r.passed for r in result.thresholds] == [True, False]
    run_data = result.to_dict()["run"]
    assert (run_data["aborted_by"], run_data["aborted_at"]) == ("p99(x)<50ms", 4.0)
    assert run_data["interrupted"] is False and run_data["aborted"] is False


def test_no_abort_before_the_delay() -> None:
    result = run(
        slow_between(3, 1000),
        5,
        duration=60,
        thresholds=["p99(x) < 50ms"],
        abort_on_fail=True,
        abort_delay=10,
    )
    assert result.aborted_at == 10.0
    assert result.duration >= 10.0


def test_a_window_that_recovered_during_the_stop_still_fails_the_run() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        while trio.current_time() < 6:  # not stopping at once: the window moves on
            async with bot.measure("x"):
                await trio.sleep(0.3 if 3 <= trio.current_time() < 4 else 0.01)

    result = run(
        worker,
        5,
        duration=60,
        stop_grace=30,
        thresholds=["max[1s](x) < 100ms"],
        abort_on_fail=True,
    )
    assert result.aborted_at == 4.0
    [final] = result.thresholds
    assert not final.passed
    assert "failed at 4.0 s, which stopped the run" in final.reason


def test_without_abort_on_fail_the_run_goes_on() -> None:
    result = run(slow_between(3, 1000), 2, duration=8, thresholds=["p99(x) < 50ms"])
    assert result.duration >= 8.0 and result.aborted_by is None
    assert not result.thresholds[0].passed


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"abort_on_fail": True}, "abort_on_fail= stops the run when a threshold fails: give"),
        ({"thresholds": ["p99 < 1s"], "abort_delay": 5}, "abort_delay= delays the abort"),
        ({"thresholds": ["p99[0s](x) < 1s"]}, "a window of whole seconds from 1s to 10m"),
        ({"thresholds": "p99 <"}, "bad threshold 'p99 <'"),
    ],
)
def test_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        run(slow_between(0, 0), 1, duration=1, **options)


def test_a_single_expression_is_accepted_as_the_list_of_one() -> None:
    result = run(slow_between(0, 0), 1, duration=1, thresholds=" p99(x) < 1s ")
    assert [r.expression for r in result.thresholds] == ["p99(x) < 1s"]


def test_a_swarm_aborted_by_its_failure_policy_still_gets_its_thresholds() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        async with bot.measure("x"):
            await trio.sleep(0.1)
        raise ValueError("boom")

    async def main() -> None:
        await trio_bots.swarm(worker, 2, thresholds=["count(x) >= 1"])

    with pytest.raises(trio_bots.SwarmAborted) as info:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert [r.passed for r in info.value.result.thresholds] == [True]


# -- what the live view shows


def test_the_live_view_shows_each_threshold_state() -> None:
    shown: list[tuple[str, str]] = []

    def hook(tick: Any, swarm: Any) -> None:
        if tick.second == 4:
            stats = swarm.statistics()
            shown.append((render(render_live(stats)), plain_line(stats)))

    run(slow_between(3, 1000), 2, duration=6, hook=hook,
        thresholds=["p99(x) < 50ms", "failure_rate < 1%", "count(x) > 1000000"])
    [(panel, line)] = shown
    assert "✗ p99(x) < 50ms  300 ms" in panel
    assert "✓ failure_rate < 1%  0%" in panel
    assert "… count(x) > 1000000" in panel
    assert "thresholds 1 failed (p99(x) < 50ms)" in line


# -- the pytest fixture


def test_swarm_runner_raises_threshold_error_when_a_threshold_stops_the_run() -> None:
    from trio_bots.pytest_plugin import _run_swarm

    async def main() -> None:
        await _run_swarm(
            slow_between(3, 1000), 3, thresholds=["p99(x) < 50ms"], abort_on_fail=True,
            duration=60,
        )

    with pytest.raises(ThresholdError, match=r"1 of 1 thresholds failed:\n  p99.x. < 50ms failed"):
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_swarm_runner_takes_the_live_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest, trio

        async def worker(bot):
            while not bot.stopping.is_set():
                async with bot.measure("x"):
                    await trio.sleep(0.3 if trio.current_time() >= 2 else 0.01)

        @pytest.mark.trio
        async def test_stops_early(swarm_runner, autojump_clock):
            await swarm_runner(worker, 2, duration=600, thresholds=["p99(x) < 50ms"],
                               abort_on_fail=True, abort_delay=5)
        """
    )
    outcome = pytester.runpytest("-p", "trio_bots", "-p", "pytest_trio")
    outcome.assert_outcomes(failed=1)
    outcome.stdout.fnmatch_lines(["*ThresholdError: 1 of 1 thresholds failed:*"])
    outcome.stdout.fnmatch_lines(["*p99(x) < 50ms failed: measured 300 ms, required < 50ms*"])


# -- over shard processes: the driver judges the merged seconds


def test_the_driver_of_a_run_over_processes_judges_and_aborts() -> None:
    sys.path.insert(0, str(SCENARIOS))
    import shards

    async def main() -> trio_bots.SwarmResult:
        with trio.fail_after(60):
            return await trio_bots.swarm(
                shards.tick_counter,
                4,
                processes=2,
                duration=30,
                stop_grace=1,
                thresholds=["counter(ticks) < 12"],
                abort_on_fail=True,
            )

    result = trio.run(main)
    assert result.aborted_by == "counter(ticks) < 12"
    assert result.duration < 10  # not 30
    [final] = result.thresholds
    assert not final.passed and final.measured is not None and final.measured >= 12
    assert json.loads(json.dumps(result.to_dict()["run"]))["aborted_by"] == result.aborted_by
