"""Bot 3 raises the BaseException named by $FAULT_RAISE while the others measure."""

import os

import anyio


class Custom(BaseException):
    """A BaseException that is neither an Exception nor one of Python's own."""


RAISE = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": lambda: SystemExit(7),
    "GeneratorExit": GeneratorExit,
    "Custom": Custom,
}[os.environ["FAULT_RAISE"]]

options = {"size": 6, "duration": 30}


async def worker(bot):
    if bot.id == 3:
        await anyio.sleep(0.3)
        raise RAISE()
    while True:
        async with bot.measure("tick"):
            await anyio.sleep(0.05)
