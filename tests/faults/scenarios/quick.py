"""For the CLI flag fuzz: a run that ends at once."""

options = {"size": 1}


async def worker(bot):
    async with bot.measure("noop"):
        pass
