"""Workers for the runs over shard processes (tests/test_distributed.py): module level,
so that each shard process imports them. Each run says what to do through its options."""

import os
import signal

import trio
import trio.lowlevel

options = {"size": 6, "processes": 2, "duration": 30, "stop_grace": 1}


async def worker(bot):
    """Record known latencies, step together, and stop when told."""
    for i in range(5):
        bot.record("known", (bot.id * 5 + i + 1) / 1000)
    bot.join(f"table-{bot.id // 3}")
    await bot.step()
    async with bot.measure("after-step"):
        await trio.lowlevel.checkpoint()
    await bot.stopping.wait()


async def steps(bot):
    """Arrive at the step at different times; report when it released."""
    await trio.sleep(bot.id * 0.1)
    await bot.step()
    bot.record("released", trio.current_time() % 1)
    print(f"released {bot.id}", flush=True)


async def iterate(bot):
    async for it in bot.iterations():
        with it:
            async with bot.measure("work"):
                await trio.sleep(0.001)


async def die_in_shard_1(bot):
    """Shard 1's first bot SIGKILLs its own process after 1.5 s; the others idle."""
    async with bot.measure("before"):
        await trio.lowlevel.checkpoint()
    if bot.id == 3:
        await trio.sleep(1.5)
        os.kill(os.getpid(), signal.SIGKILL)
    await bot.stopping.wait()


async def fail(bot):
    if bot.id == 4:
        raise ValueError("boom in shard 1")
    await bot.stopping.wait()


async def idle(bot):
    await bot.stopping.wait()


def generator_factory(worker, *, size):
    for i in range(size):
        yield worker(i)


async def stubborn(bot):
    """Ignores bot.stopping: only cancellation ends it."""
    await trio.sleep_forever()


async def hang_shard_1(bot):
    """Shard 1 blocks its whole event loop (no ticks) for 8 s: the heartbeat notices."""
    import time

    async with bot.measure("before"):
        await trio.lowlevel.checkpoint()
    if bot.id == 3:
        await trio.sleep(1.2)
        time.sleep(8)  # noqa: ASYNC251 - blocking the loop is the point
    await bot.stopping.wait()


async def measure_forever(bot):
    """Inside a measure() block until the end: stop_grace cuts it off (cancelled)."""
    async with bot.measure("forever"):
        await trio.sleep_forever()


async def fail_four(bot):
    """Bots 0, 1 (shard 0 of 2) and 3, 4 (shard 1) fail, one every 0.2 s; the others idle."""
    if bot.id in (0, 1, 3, 4):
        await trio.sleep(0.2 * bot.id)
        raise ValueError(f"bot {bot.id}")
    await bot.stopping.wait()


async def tick_counter(bot):
    """Count "ticks" twice a second until stopped (a custom counter over every shard)."""
    while not bot.stopping.is_set():
        bot.count("ticks")
        with trio.move_on_after(0.5):
            await bot.stopping.wait()
