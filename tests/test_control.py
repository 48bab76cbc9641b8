"""Live control from Python: Swarm.set_target, Swarm.set_rate and stop(grace=0)."""

from __future__ import annotations

import functools
import resource
import threading
import time
from typing import Any

import pytest
import trio
import trio.testing

import trio_bots
from trio_bots import ConfigError


def run_mock(fn: Any, *args: Any, **kwargs: Any) -> Any:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(functools.partial(fn, *args, **kwargs), clock=clock)


async def idle(bot: trio_bots.Bot) -> None:
    await bot.stopping.wait()


def running(swarm: Any) -> int:
    return int(swarm.statistics(metrics=False).bots_running)


# -- set_target --------------------------------------------------------------------------------


def test_set_target_ramps_up_at_spawn_rate_then_retires_newest_first() -> None:
    retired: list[tuple[int, float]] = []

    async def worker(bot: trio_bots.Bot) -> None:
        await bot.stopping.wait()
        retired.append((bot.id, trio.current_time()))

    async def main() -> list[tuple[float, int]]:
        seen = []
        with trio.fail_after(100):
            async with trio_bots.open_swarm(
                worker, 2, spawn_rate=2, duration=20, stop_grace=1
            ) as swarm:
                await trio.sleep(3)
                seen.append((trio.current_time(), running(swarm)))
                swarm.set_target(6)  # 4 more: one now, then one every 0.5 s
                await trio.sleep(0.25)
                for _ in range(4):
                    seen.append((trio.current_time(), running(swarm)))
                    await trio.sleep(0.5)
                swarm.set_target(3)  # at 5.25
                await trio.sleep(0.01)
                seen.append((trio.current_time(), running(swarm)))
        return seen

    seen = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert seen == [(3.0, 2), (3.25, 3), (3.75, 4), (4.25, 5), (4.75, 6), (5.26, 3)]
    # the newest three retired at once; the rest at the duration
    assert sorted(retired[:3]) == [(3, 5.25), (4, 5.25), (5, 5.25)]
    assert sorted(bot for bot, at in retired[3:]) == [0, 1, 2]
    assert {at for _, at in retired[3:]} == {20.0}


def test_set_target_at_once_without_spawn_rate_and_not_replacing_ended_bots() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        if bot.id % 2:
            return  # ends on its own
        await bot.stopping.wait()

    async def main() -> tuple[int, int, Any]:
        async with trio_bots.open_swarm(worker, 4, duration=10) as swarm:
            await trio.sleep(1)
            before = running(swarm)
            swarm.set_target(8)
            await trio.sleep(1)
            after = running(swarm)
        return before, after, swarm.result

    before, after, result = run_mock(main)
    # 2 of 4 ended; the target 8 starts 6 more at once, of which 3 end on their own
    assert (before, after) == (2, 5)
    assert result.bots_started == 10
    assert result.duration == 10.0 and not result.interrupted


def test_set_target_abandons_the_stages_and_keeps_the_run_until_duration() -> None:
    async def main() -> tuple[list[int], Any]:
        counts = []
        async with trio_bots.open_swarm(
            idle, 0, stages=[(10, 10), (10, 0)], duration=30, stop_grace=0
        ) as swarm:
            await trio.sleep(5.5)
            counts.append(running(swarm))  # halfway up the first stage
            swarm.set_target(0)
            await trio.sleep(14.5)
            counts.append(running(swarm))  # the stages would have gone to 10 and back
            swarm.set_target(2)
            await trio.sleep(1)
            counts.append(running(swarm))
        return counts, swarm.result

    counts, result = run_mock(main)
    assert counts == [5, 0, 2]
    assert result.duration == 30.0  # not the stages' 20 s, nor the end of the last bot


async def looping(bot: trio_bots.Bot) -> None:
    async for _ in bot.iterations():
        await trio.sleep(0.1)


def test_set_target_in_a_plain_run_keeps_going_until_stop() -> None:
    async def main() -> Any:
        async with trio_bots.open_swarm(looping, 3, stop_grace=0) as swarm:
            swarm.set_target(0)
            await trio.sleep(50)
            assert running(swarm) == 0  # no bot left, and the run goes on
            swarm.stop()
        return swarm.result

    result = run_mock(main)
    assert result.duration == 50.0 and result.interrupted
    assert result.warnings == []


def test_bots_from_before_the_first_set_target_cannot_be_cancelled_and_say_so() -> None:
    # A plain run gives its first bots no cancel scope (memory): one that holds on to the
    # run's stop event from before the change keeps running, and the run warns once.
    async def stubborn(bot: trio_bots.Bot) -> None:
        await trio.sleep_forever()

    async def main() -> Any:
        async with trio_bots.open_swarm(stubborn, 3, stop_grace=1, duration=10) as swarm:
            await trio.sleep(0.5)
            swarm.set_target(5)
            await trio.sleep(0.5)
            swarm.set_target(2)  # the two new bots are cancelled; the third is not
            await trio.sleep(2)
            assert running(swarm) == 3
        return swarm.result

    result = run_mock(main)
    assert len(result.warnings) == 1 and "no cancel scope" in result.warnings[0]


def test_set_target_refuses_the_open_model_and_bad_counts() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        async for _ in bot.iterations():
            pass

    async def main() -> None:
        async with trio_bots.open_swarm(worker, 1, rate=5, duration=1) as swarm:
            with pytest.raises(ConfigError, match=r"open model.*set_rate"):
                swarm.set_target(3)
        async with trio_bots.open_swarm(idle, 1, duration=1) as swarm:
            for bad in (-1, 2.5, True, "3"):
                with pytest.raises(ConfigError, match="int >= 0"):
                    swarm.set_target(bad)  # type: ignore[arg-type]
            with pytest.raises(ConfigError, match=r"closed model.*set_target"):
                swarm.set_rate(3)

    run_mock(main)


def test_set_target_refuses_the_seeds_fixed_awaitables() -> None:
    async def task(index: int) -> None:
        await trio.sleep(1)

    async def main() -> None:
        async with trio_bots.open_swarm(
            task, 2, factory=lambda worker, size: [worker(i) for i in range(size)]
        ) as swarm:
            with pytest.raises(ConfigError, match="one bot per awaitable"):
                swarm.set_target(5)

    run_mock(main)


def test_set_target_runs_the_fd_preflight_again() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files here")

    async def main() -> int:
        async with trio_bots.open_swarm(idle, 1, duration=1) as swarm:
            with pytest.raises(ConfigError, match="open-file limit"):
                swarm.set_target(hard + 1)
            return running(swarm)

    assert run_mock(main) == 1  # nothing changed


def test_set_target_and_stop_from_another_thread() -> None:
    async def main() -> tuple[int, Any]:
        async with trio_bots.open_swarm(idle, 1, duration=30, stop_grace=0) as swarm:
            thread = threading.Thread(target=swarm.set_target, args=(4,))
            with trio.fail_after(10):
                thread.start()
                await trio.to_thread.run_sync(thread.join)
                await trio.sleep(0.01)
                count = running(swarm)
                stopper = threading.Thread(target=swarm.stop, kwargs={"grace": 0})
                stopper.start()
                await trio.to_thread.run_sync(stopper.join)
        return count, swarm.result

    count, result = trio.run(main)
    assert count == 4
    assert result.interrupted and result.duration < 30


# -- stop(grace=0) ------------------------------------------------------------------------------


def test_stop_now_cuts_a_graceful_stop_short() -> None:
    async def stubborn(bot: trio_bots.Bot) -> None:
        await trio.sleep_forever()

    async def main() -> Any:
        async with trio_bots.open_swarm(stubborn, 3, stop_grace=60) as swarm:
            await trio.sleep(1)
            swarm.stop()
            await trio.sleep(2)
            swarm.stop(grace=0)
        return swarm.result

    result = run_mock(main)
    assert result.interrupted and not result.aborted
    assert result.duration == 3.0
    with pytest.raises(ConfigError, match="seconds >= 0"):
        run_mock(_stop_with, -1)


async def _stop_with(grace: Any) -> None:
    async with trio_bots.open_swarm(idle, 1, duration=1) as swarm:
        swarm.stop(grace=grace)


# -- set_rate ------------------------------------------------------------------------------------


def _arrivals_worker(times: list[float]) -> Any:
    async def worker(bot: trio_bots.Bot) -> None:
        async for it in bot.iterations():
            times.append(it.intended_start)

    return worker


def test_set_rate_changes_the_rate_exactly_from_the_change_on() -> None:
    times: list[float] = []

    async def main() -> Any:
        async with trio_bots.open_swarm(_arrivals_worker(times), 2, rate=4, duration=5) as swarm:
            await trio.sleep(1.1)
            swarm.set_rate(10)
            await trio.sleep(1)
            swarm.set_rate(0)  # a pause
            await trio.sleep(1.9)
            swarm.set_rate(2)
        return swarm.result

    result = run_mock(main)
    expected = [0.0, 0.25, 0.5, 0.75, 1.0]  # 4/s
    # N(1.1) = 4.4: the next arrival (5) is due 0.6 / 10 s after the change
    expected += [round(1.1 + (k - 4.4) / 10, 9) for k in range(5, 15)]
    # paused from 2.1 to 4.0; N stays 14.4; at 2/s arrival 15 at 4.0 + 0.6 / 2
    expected += [4.3, 4.8]
    assert [round(t, 9) for t in times] == expected
    assert result.duration == 5.0 and result.dropped_arrivals == 0


def test_set_rate_abandons_the_rate_stages() -> None:
    times: list[float] = []

    async def main() -> Any:
        async with trio_bots.open_swarm(
            _arrivals_worker(times), 1, rate=[(2, 10), (2, 0)], duration=10
        ) as swarm:
            await trio.sleep(2)
            swarm.set_rate(1)
        return swarm.result

    result = run_mock(main)
    late = [t for t in times if t >= 2]
    # without the change the rate would fall to 0 at 4 s; the run would end there
    assert late[-1] == pytest.approx(9.0) and result.duration == 10.0
    for bad in (-1, float("inf"), float("nan"), "2", None):
        with pytest.raises(ConfigError, match="number >= 0"):
            run_mock(_set_rate_with, bad)


async def _set_rate_with(rate: Any) -> None:
    async with trio_bots.open_swarm(_arrivals_worker([]), 1, rate=5, duration=1) as swarm:
        swarm.set_rate(rate)


# -- over shard processes -----------------------------------------------------------------------


def test_set_target_and_set_rate_reach_every_shard() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "scenarios"))
    import shards

    async def closed() -> tuple[int, Any]:
        async with trio_bots.open_swarm(shards.idle, 2, processes=2, stop_grace=0) as swarm:
            with trio.fail_after(30):
                await trio.sleep(1)
                swarm.set_target(6)
                while swarm.statistics(metrics=False).bots_running != 6:  # noqa: ASYNC110
                    await trio.sleep(0.1)
                with pytest.raises(ConfigError, match="open model"):
                    swarm.set_rate(3)
                swarm.stop(grace=0)
        return 6, swarm.result

    _count, result = trio.run(closed)
    assert result.bots_started == 6 and result.interrupted

    async def opened() -> tuple[float, Any]:
        async with trio_bots.open_swarm(
            shards.iterate, 2, processes=2, rate=[(60, 0)], duration=3
        ) as swarm:
            with trio.fail_after(30):
                while time.time() - swarm.start_wall < 1:  # noqa: ASYNC110
                    await trio.sleep(0.05)
                at = time.time() - swarm.start_wall
                swarm.set_rate(20)  # from the same instant of the run in both shards
        return at, swarm.result

    at, result = trio.run(opened)
    # the stage alone would give no arrival: 20/s over both shards from `at` to 3 s
    assert abs(result.stats["work"].count - 20 * (3 - at)) <= 2
