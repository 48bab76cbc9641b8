"""The engine's runtime: barriers after joins, the ticker, read-only statistics, run checks.

Each test here was written against a defect of the review: it fails on the engine before
the runtime refactor.
"""

from __future__ import annotations

import functools
import io
import json
import threading
import time
from typing import Any

import pytest
import trio
import trio.testing
from rich.console import Console

import trio_bots
from trio_bots import Bot, ConfigError, recv_group, send_group
from trio_bots.report import render_console


def run(fn: Any, *args: Any, **options: Any) -> trio_bots.SwarmResult:
    return trio.run(
        functools.partial(trio_bots.swarm, fn, *args, **options),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )


# -- barriers ------------------------------------------------------------------------------


def test_join_then_group_barrier_waits_for_every_roommate() -> None:
    """20 bots in rooms of 5: join, barrier over the room, send, hear the 4 roommates.

    trio runs the bots in random order, so the first bot at the barrier may be the only
    member of its room so far; the barrier must still wait for the roommates."""
    heard: dict[int, set[int]] = {}

    async def worker(bot: Bot) -> None:
        room = f"room-{bot.id // 5}"
        bot.join(room)
        await bot.barrier("in", group=room)
        await bot.send(send_group(room), bot.id)
        got = set()
        for _ in range(4):
            msg = await bot.receive(recv_group(room))
            got.add(msg.sender)
        heard[bot.id] = got
        await bot.barrier("done", group=room)

    for attempt in range(5):  # several schedules: trio randomises the order each run
        heard.clear()

        async def main() -> None:
            with trio.fail_after(5):
                await trio_bots.swarm(worker, 20)

        trio.run(main)
        assert len(heard) == 20, f"attempt {attempt}"
        for bot_id, got in heard.items():
            room = bot_id // 5
            assert got == {b for b in range(room * 5, room * 5 + 5) if b != bot_id}


def test_barrier_parties_waits_for_that_many_arrivals() -> None:
    released: list[tuple[int, float]] = []

    async def worker(bot: Bot) -> None:
        await trio.sleep(bot.id)  # arrivals at 0, 1, 2, 3 s
        await bot.barrier("pair", parties=2)
        released.append((bot.id, trio.current_time()))
        await trio.sleep(10)

    run(worker, 4)
    # Pairs release together: bots 0 and 1 at 1 s, bots 2 and 3 at 3 s.
    assert sorted(released) == [(0, 1.0), (1, 1.0), (2, 3.0), (3, 3.0)]


def test_barrier_parties_never_waits_for_dead_bots() -> None:
    async def worker(bot: Bot) -> None:
        if bot.id == 2:
            return  # never arrives
        await bot.barrier("all", parties=3)

    assert run(worker, 3).bots_finished == 3


def test_barrier_parties_must_agree() -> None:
    async def worker(bot: Bot) -> None:
        await bot.barrier("b", parties=1 + bot.id)

    with pytest.raises(trio_bots.SwarmAborted, match="parties"):
        run(worker, 2)


# -- the ticker and read-only statistics ---------------------------------------------------


async def _steady(bot: Bot) -> None:
    while not bot.stopping.is_set():
        async with bot.measure("op"):
            await trio.sleep(0.01)


def test_statistics_writes_nothing() -> None:
    """Polling statistics() must not change the timeline the run ends with."""

    async def run_once(poll: bool) -> list[tuple[int, int]]:
        async with trio_bots.open_swarm(_steady, 3, duration=3, stop_grace=0) as swarm:
            if poll:
                for _ in range(300):
                    await trio.sleep(0.0101)
                    swarm.statistics()
        assert swarm.result is not None
        return [(b.t, b.count) for b in swarm.result.timeline]

    quiet = trio.run(run_once, False, clock=trio.testing.MockClock(autojump_threshold=0))
    polled = trio.run(run_once, True, clock=trio.testing.MockClock(autojump_threshold=0))
    assert polled == quiet
    assert [t for t, _ in quiet] == [0, 1, 2]


def test_statistics_sees_what_is_not_ticked_yet() -> None:
    async def main() -> tuple[int, int]:
        async with trio_bots.open_swarm(_steady, 2, duration=1) as swarm:
            await trio.sleep(0.5)
            stats = swarm.statistics()
        return stats.metrics["names"]["op"]["count"], len(stats.metrics["timeline"])

    count, buckets = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert count > 90 and buckets == 0


@pytest.mark.slow
def test_timeline_files_each_second_under_itself_when_the_loop_is_late() -> None:
    """One bot blocks the loop across every whole second, while a poller reads
    statistics() 2 ms after each: the per-second counts of a steady run stay steady."""

    def swarm_start(swarm: trio_bots.Swarm) -> float:
        return trio.current_time() - swarm.statistics().elapsed

    async def blocker(bot: Bot) -> None:
        start = swarm_start(bot.swarm)
        for second in range(1, 5):
            await trio.sleep_until(start + second - 0.05)
            time.sleep(0.1)  # noqa: ASYNC251 - the point: the loop is late at the whole second

    async def poller(swarm: trio_bots.Swarm) -> None:
        start = swarm_start(swarm)
        for second in range(1, 5):
            await trio.sleep_until(start + second + 0.002)
            swarm.statistics()

    async def main() -> list[int]:
        workers = {_steady: 4, blocker: 1}
        async with trio.open_nursery() as nursery:
            async with trio_bots.open_swarm(workers, 5, duration=5, stop_grace=0.5) as swarm:
                nursery.start_soon(poller, swarm)
        assert swarm.result is not None
        return [b.count for b in swarm.result.timeline]

    async def bounded() -> list[int]:
        with trio.fail_after(30):
            return await main()

    counts = trio.run(bounded)
    inner = counts[1:4]
    assert min(inner) > 0.6 * max(inner), counts


def test_on_tick_sees_each_second_once_in_order() -> None:
    ticks: list[tuple[int, int, bool]] = []

    async def main() -> None:
        async with trio_bots.open_swarm(_steady, 2, duration=3.5, stop_grace=0) as swarm:
            swarm.on_tick(lambda t: ticks.append((t.second, t.bucket["t"], t.final)))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert [(s, t) for s, t, _ in ticks] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert [final for *_, final in ticks] == [False, False, False, True]


# -- checks before any bot starts ----------------------------------------------------------


def test_handle_sigint_off_the_main_thread_is_a_config_error_before_any_bot() -> None:
    started: list[int] = []
    errors: list[BaseException] = []

    async def worker(bot: Bot) -> None:
        started.append(bot.id)

    def in_thread() -> None:
        try:
            trio.run(functools.partial(trio_bots.swarm, worker, 3, handle_sigint=True))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(10)
    assert started == []
    assert len(errors) == 1 and isinstance(errors[0], ConfigError)
    assert "main thread" in str(errors[0])


def test_a_plain_def_worker_is_refused_before_it_runs() -> None:
    calls: list[int] = []

    def worker(bot: Bot) -> None:
        calls.append(bot.id)

    class Callable:
        def __call__(self, bot: Bot) -> None:
            calls.append(bot.id)

    for bad in (worker, functools.partial(worker), Callable(), {worker: 1}):
        with pytest.raises(ConfigError, match="async def"):
            run(bad, 3)
    assert calls == []


def test_a_callable_returning_a_coroutine_is_a_worker() -> None:
    seen: list[int] = []

    async def work(bot: Bot, tag: str) -> None:
        seen.append(bot.id)

    assert run(lambda bot: work(bot, "x"), 3).bots_finished == 3
    assert sorted(seen) == [0, 1, 2]


def test_a_callable_returning_no_awaitable_fails_the_bot_with_a_clear_error() -> None:
    result = run(lambda bot: None, 2, max_failures=None)
    assert len(result.bot_failures) == 2
    error = result.bot_failures[0].exception
    assert isinstance(error, TypeError) and "not an awaitable" in str(error)


def test_swarm_has_no_timeout_option() -> None:
    async def worker(bot: Bot) -> None:
        pass

    with pytest.raises(ConfigError, match="unknown swarm option 'timeout'"):
        run(worker, 1, timeout=3)


# -- warnings go to the report --------------------------------------------------------------


def test_the_fanout_fallback_warning_is_in_the_result_and_json(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def worker(bot: Bot) -> None:
        bot.join(f"g{bot.id // 2}")
        await bot.step()
        if bot.id % 2 == 0:
            await bot.send(send_group(f"g{bot.id // 2}"), "x")
        else:
            await bot.receive()

    with caplog.at_level("WARNING", logger="trio_bots"):
        result = run(worker, 2 * 110)
    assert len(result.warnings) == 1 and "fanout='total'" in result.warnings[0]
    assert any("fanout='total'" in r.getMessage() for r in caplog.records)
    assert json.loads(json.dumps(result.to_dict()))["run"]["warnings"] == result.warnings
    out = io.StringIO()
    render_console(result, Console(file=out, width=120))
    assert "warning: more than 100 groups carry messages" in out.getvalue()


# -- public names ---------------------------------------------------------------------------


def test_public_names_have_public_modules() -> None:
    for name in trio_bots.__all__:
        obj = getattr(trio_bots, name)
        module = getattr(obj, "__module__", None)
        if module is not None:
            assert module in ("trio_bots", "trio_bots.metrics"), (name, module)
    assert repr(trio_bots.SwarmAborted) == "<class 'trio_bots.SwarmAborted'>"
