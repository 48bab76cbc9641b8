"""A worker written as iterations, for the load-shape flags (--iterations, --rate, --stages)."""

import anyio


async def worker(bot):
    async for it in bot.iterations():
        with it:
            async with bot.measure("step"):
                await anyio.sleep(0.001)
