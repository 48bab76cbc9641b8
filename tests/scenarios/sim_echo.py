"""A scenario and its server in one file, for `trio-bots run --serve ... --virtual-time`."""

import trio

import trio_bots

options = {"size": 20, "duration": 60}


async def handler(stream):
    """An echo server: what `--serve sim_echo.py:handler` runs per connection."""
    async for data in stream:
        await stream.send_all(data)


async def worker(bot: trio_bots.Bot) -> None:
    host, _, port = bot.swarm.host.rpartition(":")
    stream = await bot.connect_tcp(host, int(port))
    while not bot.stopping.is_set():
        async with bot.measure("echo"):
            await stream.send_all(b"ping")
            await stream.receive_some()
        await trio.sleep(bot.random.uniform(0.5, 1.5))
