"""A scenario for the live faces: each bot joins a team (even or odd ids) and measures
short naps, every 4th one fails."""

import anyio

options = {"size": 3, "duration": 3, "stop_grace": 0.2}


async def worker(bot):
    bot.join(f"team-{bot.id % 2}")
    async for it in bot.iterations():
        with it:
            async with bot.measure("nap"):
                await anyio.sleep(0.01)
                if it.index % 4 == 3:
                    raise ConnectionResetError("every fourth nap fails")
