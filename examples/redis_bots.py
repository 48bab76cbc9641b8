"""Bots talk RESP to a real redis-server: pub/sub between bots, and a SET/GET load.

Run it::

    python examples/redis_bots.py                        # starts its own redis-server
    python examples/redis_bots.py --host 127.0.0.1:6379  # or uses yours (keys expire in 60 s)

It needs ``redis-server`` (``apt-get install redis-server``) unless ``--host``
is given. A quarter of the bots subscribe, the others publish:

1. each subscriber SUBSCRIBEs to the run's channel, then every bot waits at
   ``bot.step()``: nobody publishes before every subscriber listens;
2. each publisher loops until the stop: SET a key, GET it back (the value must
   match), and every few rounds PUBLISH a message; Redis answers PUBLISH with
   the number of subscribers that got it, which must be all of them;
3. each publisher then tells the subscribers, bot to bot through trio_bots,
   what it published, and each subscriber checks that it received exactly
   that, in order (``check``).

Every command is measured under its name (``SET``, ``GET``, ``PUBLISH``...)
by `trio_bots.protocols.resp`. The run exits with 0 when every request and
check passed, 1 otherwise.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import trio
from _support import (
    Heard,
    Report,
    address,
    check_heard,
    cli,
    counter,
    run_swarm,
)

import trio_bots
from trio_bots.protocols import resp

DURATION = 3.0  # seconds
BOTS = 20
PUBLISH_EVERY = 5  # rounds
CHECK_WAIT = 5.0

# The defaults of `trio-bots run` (its flags win); `size` is the number of bots.
# A publisher runs one round per iteration.
options: dict[str, Any] = {
    "size": BOTS,
    "duration": DURATION,
    "stop_grace": 10.0,
    "iterations": 10_000,
    "think_time": (0.0, 0.01),
}


def subscribers(size: int) -> int:
    """How many of the first bots subscribe: a quarter, at least one."""
    return max(1, size // 4)


async def worker(bot: trio_bots.Bot) -> None:
    """A subscriber or a publisher, by id; see the module docstring."""
    address(bot.swarm.host, "redis_bots", "start one: python examples/services.py start DIR redis")
    redis = await resp.connect(bot, f"redis://{bot.swarm.host}")
    # One channel and key prefix per run, so that runs sharing a server never mix.
    prefix = f"trio-bots:{os.getpid()}:{id(bot.swarm):x}"
    if bot.id < subscribers(bot.swarm.size):
        await subscriber(bot, redis, f"{prefix}:news")
    else:
        await publisher(bot, redis, prefix)


async def subscriber(bot: trio_bots.Bot, redis: resp.Client, channel: str) -> None:
    bot.join("subscribers")
    await redis.subscribe(channel)
    await bot.step()
    heard = Heard()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listen, bot, redis, heard)
        for publisher_id in range(subscribers(bot.swarm.size), bot.swarm.size):
            published = (await bot.receive(trio_bots.recv_from(publisher_id))).data
            if await check_heard(bot, heard, publisher_id, published, wait=CHECK_WAIT):
                bot.count("checks passed")
        nursery.cancel_scope.cancel()


async def listen(bot: trio_bots.Bot, redis: resp.Client, heard: Heard) -> None:
    while True:
        message = await redis.receive_message()
        sender = int(message.data.split(b":", 1)[0])
        heard.add(sender, message.data)
        bot.count("messages received")


async def publisher(bot: trio_bots.Bot, redis: resp.Client, prefix: str) -> None:
    await bot.step()  # every subscriber is subscribed
    expected_receivers = subscribers(bot.swarm.size)
    published: list[bytes] = []
    async for it in bot.iterations():
        round_ = it.index
        key, value = f"{prefix}:{bot.id}:{round_ % 100}", f"{bot.id}-{bot.random.random()}"
        await redis.execute("SET", key, value, "EX", 60)
        if await redis.execute("GET", key) != value.encode():
            bot.count("wrong values")
        if round_ % PUBLISH_EVERY == 0:
            data = f"{bot.id}:{len(published)}:{bot.random.randrange(10**9)}".encode()
            receivers = await redis.execute("PUBLISH", f"{prefix}:news", data)
            published.append(data)
            if receivers != expected_receivers:
                bot.count("short publishes")
    await bot.send(trio_bots.send_group("subscribers"), published)
    bot.count("messages published", len(published))


async def run(
    *,
    bots: int = BOTS,
    duration: float | None = DURATION,
    host: str | None = None,
    seed: str | None = None,
    handle_sigint: bool = False,
) -> Report:
    """Run the Redis swarm against ``host``, or against a redis-server of its own.

    Example:
        >>> import tempfile, services, trio
        >>> with tempfile.TemporaryDirectory() as folder, services.running("redis", folder) as host:
        ...     report = trio.run(lambda: run(bots=4, duration=1, host=host))
        >>> report.ok
        True
    """
    result, host = await run_swarm(
        worker,
        options,
        None,  # the command line starts the server
        bots=bots,
        minimum=2,
        duration=duration,
        host=host,
        seed=seed,
        handle_sigint=handle_sigint,
    )
    subs = subscribers(bots)
    published = counter(result, "messages published")
    received = counter(result, "messages received")
    passed, expected_checks = counter(result, "checks passed"), subs * (bots - subs)
    report = Report(
        f"redis_bots: {subs} subscribers and {bots - subs} publishers, against {host}",
        result,
        ["SUBSCRIBE", "SET", "GET", "PUBLISH", "check"],
        [
            ("pub/sub", f"{published} published, {received} received"),
            ("checks", f"{passed} of {expected_checks} subscriber-publisher pairs complete"),
        ],
    )
    if published == 0:
        report.problems.append("nothing was published")
    if received != published * subs:
        report.problems.append(f"{published * subs - received} deliveries missing")
    if passed != expected_checks:
        report.problems.append(f"{expected_checks - passed} checks failed or never ran")
    for name in ("wrong values", "short publishes"):
        if counter(result, name):
            report.problems.append(f"{counter(result, name)} {name}")
    return report


if __name__ == "__main__":
    sys.exit(cli(run, options, __doc__, service="redis"))
