"""For the signal tests: says "ready" once bots run, "stopping" at the graceful stop,
then ignores the stop (so only stop_grace or a second signal ends it)."""

import anyio


async def worker(bot):
    # Give the swarm's signal task time to install its handlers first.
    await anyio.sleep(0.2)
    if bot.id == 0:
        print("ready", flush=True)
    while not bot.stopping.is_set():
        async with bot.measure("tick"):
            await anyio.sleep(0.01)
    if bot.id == 0:
        print("stopping", flush=True)
    await anyio.sleep(60)
