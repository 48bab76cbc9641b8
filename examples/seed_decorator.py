"""The seed README's third example: ``@start(size=2)`` as a decorator."""

import trio_bots


@trio_bots.start(size=2)
async def worker():
    print("Hello World !")


if __name__ == "__main__":
    worker()
