"""The seed README's second example: ``create(...)`` as a coroutine, run by trio.

The seed ran it with ``loop.run_until_complete(aiotesttoolkit.create(worker, size=2))``;
on trio that is ``trio.run`` with the keyword arguments bound by functools.partial.
"""

import functools

import trio

import trio_bots


async def worker():
    print("Hello World !")


if __name__ == "__main__":
    trio.run(functools.partial(trio_bots.create, worker, size=2))
