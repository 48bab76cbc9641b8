"""A misspelt option: the CLI must exit 2 and suggest the right name."""

options = {"size": 1, "durration": 1}


async def worker(bot):
    pass
