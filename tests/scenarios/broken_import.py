"""Imports a module that does not exist: the CLI must exit 2 without a traceback."""

import no_such_module_for_trio_bots  # noqa: F401


async def worker(bot):
    pass
