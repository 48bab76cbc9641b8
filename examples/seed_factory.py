"""The seed README's fourth example: a custom factory that gives the workers ids."""

import trio_bots


def create_workers(coro, *, size):
    return (coro(_) for _ in range(0, size))


@trio_bots.start(factory=create_workers, size=2)
async def worker(i):
    print("worker {}: Hello World !".format(i))  # noqa: UP032 - as the seed wrote it


if __name__ == "__main__":
    worker()
