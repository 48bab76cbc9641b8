"""The engine's hooks for sharding, with explicit in-process shards: ids, load split, arrivals,
the seed factory, messages and global barriers. No processes here (see test_distributed.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

import pytest
import trio
import trio.testing

import trio_bots
from trio_bots import ConfigError
from trio_bots._core.shard import Shard, split
from trio_bots._core.swarm import open_shard


async def run_shards(
    worker: Any, size: int, count: int, *, link: Callable[[int], Any] | None = None, **options: Any
) -> list[trio_bots.SwarmResult]:
    """Every shard of a run, side by side in this event loop."""
    results: list[Any] = [None] * count

    async def one(index: int) -> None:
        shard = Shard(
            index=index,
            count=count,
            size=size,
            align=options.get("shard_align", 1),
            link=None if link is None else link(index),
        )
        async with open_shard(worker, shard, **options) as running:
            pass
        results[index] = running.result

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for index in range(count):
                nursery.start_soon(one, index)
    return results


@pytest.mark.parametrize("size", [0, 1, 2, 10, 11, 100])
@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_the_split_covers_every_id_once(size: int, count: int) -> None:
    shards = [Shard(index=k, count=count, size=size) for k in range(count)]
    ids = [shard.first_bot + i for shard in shards for i in range(shard.local_size)]
    assert ids == list(range(size))
    assert [s.local_size for s in shards] == [split(size, k, count) for k in range(count)]
    later = [shard.bot_id(shard.local_size + j) for shard in shards for j in range(5)]
    assert len(set(later)) == len(later) and min(later, default=size) >= size
    for bot_id in [*ids, *later]:
        owners = [s.index for s in shards if s.owns(bot_id)]
        assert len(owners) == 1


def test_shard_align_keeps_groups_of_ids_whole() -> None:
    shards = [Shard(index=k, count=3, size=95, align=10) for k in range(3)]
    assert [(s.first_bot, s.local_size) for s in shards] == [(0, 40), (40, 30), (70, 25)]
    for shard in shards:
        assert shard.first_bot % 10 == 0


@pytest.mark.trio
async def test_global_ids_over_three_shards() -> None:
    seen: dict[int, list[int]] = {}

    async def worker(bot: trio_bots.Bot) -> None:
        seen.setdefault(bot.id, []).append(1)

    results = await run_shards(worker, 10, 3)
    assert sorted(seen) == list(range(10))
    assert all(len(v) == 1 for v in seen.values())
    assert [r.bots_started for r in results] == [4, 3, 3]


@pytest.mark.trio
async def test_seeded_randomness_follows_the_global_id() -> None:
    def draw(results: dict[int, float]) -> Any:
        async def worker(bot: trio_bots.Bot) -> None:
            results[bot.id] = bot.random.random()

        return worker

    alone: dict[int, float] = {}
    await trio_bots.swarm(draw(alone), 9, seed=7)
    sharded: dict[int, float] = {}
    await run_shards(draw(sharded), 9, 3, seed=7)
    assert sharded == alone


@pytest.mark.trio
async def test_a_weighted_mix_follows_the_global_id() -> None:
    kinds: dict[int, str] = {}

    async def a(bot: trio_bots.Bot) -> None:
        kinds[bot.id] = "a"

    async def b(bot: trio_bots.Bot) -> None:
        kinds[bot.id] = "b"

    await trio_bots.swarm({a: 3, b: 1}, 8)
    alone = dict(kinds)
    kinds.clear()
    await run_shards({a: 3, b: 1}, 8, 3)
    assert kinds == alone


def _arrivals(results: list[trio_bots.SwarmResult]) -> int:
    return sum(r.stats["work"].count for r in results if "work" in r.stats)


async def _iterate(bot: trio_bots.Bot) -> None:
    async for it in bot.iterations():
        with it:
            async with bot.measure("work"):
                await trio.sleep(0.001)


@pytest.mark.parametrize(
    "options",
    [
        {"rate": 200, "duration": 3},
        {"rate": 3, "duration": 1},
        {"rate": [(1.5, 50), (1, 50), (0.7, 0)]},
    ],
)
@pytest.mark.trio
async def test_arrivals_split_exactly_over_three_shards(
    options: dict[str, Any], autojump_clock: trio.testing.MockClock
) -> None:
    alone = await trio_bots.swarm(_iterate, 3, **options)
    results = await run_shards(_iterate, 3, 3, **options)
    expected = alone.stats["work"].count
    assert _arrivals(results) == expected
    shares = [r.stats["work"].count if "work" in r.stats else 0 for r in results]
    assert max(shares) - min(shares) <= 1  # k ≡ i (mod K): round robin


@pytest.mark.trio
async def test_one_arrival_count_runs_across_rate_stages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 1.5 arrivals are due in the first stage (0 -> 3/s): 2 arrive, at 0 and 0.816 s; the
    # next comes when N = 2, at 1.174 s, not at the second stage's start (1 s), where a
    # count per stage would put it.
    starts: list[float] = []

    async def worker(bot: trio_bots.Bot) -> None:
        async for it in bot.iterations():
            starts.append(it.intended_start)

    await trio_bots.swarm(worker, 1, rate=[(1, 3), (2, 0)], duration=3)
    start = min(starts)
    assert [round(t - start, 3) for t in sorted(starts)[:3]] == [0.0, 0.816, 1.174]


@pytest.mark.trio
async def test_max_bots_and_stage_targets_split(autojump_clock: trio.testing.MockClock) -> None:
    async def hold(bot: trio_bots.Bot) -> None:
        await bot.stopping.wait()

    results = await run_shards(hold, 0, 3, stages=[(2, 10), (2, 10)], stop_grace=0)
    assert [r.bots_started for r in results] == [4, 3, 3]

    async def slow(bot: trio_bots.Bot) -> None:
        async for it in bot.iterations():
            with it:
                await trio.sleep(5)  # every arrival needs a bot of its own

    results = await run_shards(slow, 0, 3, rate=100, duration=1, max_bots=10, max_queue=0)
    assert [r.bots_started for r in results] == [4, 3, 3]
    assert sum(r.dropped_arrivals for r in results) == 100 - 10


@pytest.mark.trio
async def test_the_ramp_keeps_its_global_timing(autojump_clock: trio.testing.MockClock) -> None:
    started: dict[int, float] = {}

    async def worker(bot: trio_bots.Bot) -> None:
        started[bot.id] = trio.current_time()

    await run_shards(worker, 6, 2, spawn_rate=2)
    t0 = started[0]
    assert {i: started[i] - t0 for i in started} == {i: i / 2 for i in range(6)}


@pytest.mark.trio
async def test_the_seed_factory_closes_the_other_shards_awaitables() -> None:
    ran: list[int] = []

    async def task(i: int) -> None:
        ran.append(i)

    def factory(worker: Any, *, size: int) -> list[Any]:
        return [task(i) for i in range(size)]

    results = await run_shards(None, 7, 3, factory=factory)  # no "never awaited" warning
    assert sorted(ran) == list(range(7))
    assert [r.bots_started for r in results] == [3, 2, 2]


@pytest.mark.trio
async def test_send_bots_to_another_shard_is_skipped_and_counted() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        if bot.id == 0:
            # 5 and 6 run in shard 1; 10 would be shard 0's next bot (8 + 1*2 + 0)
            got = await bot.send(trio_bots.send_bots([1, 5, 6, 10]), "hi")
            assert got == [1]
        await trio.sleep(0.05)

    results = await run_shards(worker, 8, 2)
    assert [r.cross_shard_skipped for r in results] == [2, 0]
    assert results[0].to_dict()["run"]["cross_shard_skipped"] == 2


@pytest.mark.trio
async def test_waiting_for_a_bot_in_another_shard_is_a_config_error() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        if bot.id == 0:
            await bot.receive(trio_bots.recv_from(3))

    with trio.fail_after(10), pytest.raises(trio_bots.SwarmAborted) as caught:
        async with open_shard(worker, Shard(index=0, count=2, size=4)):
            pass
    assert isinstance(caught.value.__cause__, ConfigError)
    assert "runs in another shard" in str(caught.value.__cause__)


class Coordinator:
    """An in-process stand-in for the driver: releases a global barrier when every shard
    reported it complete (or has no bots left)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.waiting: dict[Hashable, set[int]] = {}
        self.releases: dict[int, Callable[[Hashable], None]] = {}
        self.groups: dict[Hashable, set[int]] = {}
        self.done: set[int] = set()

    def link(self, index: int) -> Any:
        coordinator = self

        class Link:
            def attach(self, release: Callable[[Hashable], None]) -> None:
                coordinator.releases[index] = release

            def barrier_complete(self, name: Hashable) -> None:
                coordinator.waiting.setdefault(name, set()).add(index)
                coordinator.check(name)

            def new_group(self, group: Hashable) -> None:
                coordinator.groups.setdefault(group, set()).add(index)

            def bot_failed(self, bot_id: int, exc: BaseException) -> None:
                pass

        return Link()

    def check(self, name: Hashable) -> None:
        if len(self.waiting[name] | self.done) == self.count:
            del self.waiting[name]
            for release in self.releases.values():
                release(name)


@pytest.mark.trio
async def test_step_is_global_over_shards(autojump_clock: trio.testing.MockClock) -> None:
    coordinator = Coordinator(3)
    order: list[tuple[int, float]] = []

    async def worker(bot: trio_bots.Bot) -> None:
        await trio.sleep(bot.id)  # the last bot (shard 2) arrives 8 s in
        await bot.step()
        order.append((bot.id, trio.current_time()))

    start = trio.current_time()
    await run_shards(worker, 9, 3, link=coordinator.link)
    assert {round(t - start, 6) for _, t in order} == {8.0}
    assert sorted(i for i, _ in order) == list(range(9))


@pytest.mark.trio
async def test_groups_are_reported_per_shard() -> None:
    coordinator = Coordinator(2)

    async def worker(bot: trio_bots.Bot) -> None:
        bot.join(f"table-{bot.id // 3}")

    await run_shards(worker, 6, 2, link=coordinator.link)
    assert coordinator.groups == {"table-0": {0}, "table-1": {1}}
    coordinator = Coordinator(2)
    await run_shards(worker, 8, 2, link=coordinator.link)  # 4/4: table-1 is 3, 4, 5
    assert coordinator.groups["table-1"] == {0, 1}


@pytest.mark.trio
async def test_shards_start_at_the_common_instant() -> None:
    starts: list[float] = []

    async def one(index: int) -> None:
        await trio.sleep(0.05 * index)  # shards come up at different times
        shard = Shard(index=index, count=2, size=2, start_wall=at)
        async with open_shard(_noop, shard) as running:
            pass
        starts.append(time.time() - running.result.duration)
        assert running.result.started_wall == at

    at = time.time() + 0.3
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for index in range(2):
                nursery.start_soon(one, index)
    assert max(starts) - min(starts) < 0.1
    assert min(starts) >= at - 0.01


async def _noop(bot: trio_bots.Bot) -> None:
    pass


@pytest.mark.trio
async def test_stop_threadsafe_from_another_thread() -> None:
    async def idle(bot: trio_bots.Bot) -> None:
        await bot.stopping.wait()

    with trio.fail_after(10):
        async with trio_bots.open_swarm(idle, 3) as running:
            await trio.to_thread.run_sync(running.stop_threadsafe)
    assert running.result is not None and running.result.interrupted
    running.stop_threadsafe()  # over: does nothing
