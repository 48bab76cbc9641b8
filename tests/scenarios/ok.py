"""A scenario that needs no server: each bot measures short naps until stopped."""

import anyio

options = {"size": 2, "duration": 1}


async def worker(bot):
    while not bot.stopping.is_set():
        async with bot.measure("nap"):
            await anyio.sleep(0.01)


async def short(bot):
    """A second function, chosen with ok.py:short: one measured nap, then done."""
    async with bot.measure("short"):
        await anyio.sleep(0.001)
