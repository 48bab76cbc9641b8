"""Bot 1 fails: the failure policy (max_failures=0) aborts the run."""

import anyio

options = {"size": 3, "duration": 5}


async def worker(bot):
    async with bot.measure("nap"):
        await anyio.sleep(0.01)
    if bot.id == 1:
        raise ValueError("boom")
    await bot.stopping.wait()
