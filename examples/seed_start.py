"""The seed README's first example: ``start(worker, size=2)``.

Run it with ``python examples/seed_start.py``; it prints "Hello World !" twice.
"""

import trio_bots


async def worker():
    print("Hello World !")


if __name__ == "__main__":
    trio_bots.start(worker, size=2)
