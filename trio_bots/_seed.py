"""The seed's API (aiotesttoolkit): `start`, `create`, ``@start(size=2)`` and ``factory=``.

In the seed a worker takes no arguments, and a factory decides how workers
are called, e.g. with an id. Inside such a worker `current_bot()` gives the
`Bot`, so the whole group system is still at hand.

Example:
    >>> import trio_bots
    >>> def create_workers(coro, *, size):
    ...     return (coro(i) for i in range(size))
    >>> @trio_bots.start(factory=create_workers, size=1)
    ... async def worker(i):
    ...     print(f"worker {i}: Hello World !")
    >>> _ = worker()
    worker 0: Hello World !
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, overload

import trio

from ._core.bot import Bot
from ._core.swarm import SwarmResult, swarm

Factory = Callable[..., Any]


async def create(
    worker: Callable[..., Awaitable[Any]],
    *,
    size: int,
    factory: Factory | None = None,
    **options: Any,
) -> SwarmResult:
    """Run `size` seed-style workers as one swarm and return the result.

    Without a factory each worker is called with no arguments. With one,
    ``factory(worker, size=size)`` returns the awaitables to run, one per bot.
    Awaitables that never started (the swarm aborted first) are closed, so no
    "never awaited" warning appears.

    Example:
        >>> import trio, trio_bots
        >>> async def worker():
        ...     print("Hello World !")
        >>> _ = trio.run(functools.partial(trio_bots.create, worker, size=1))
        Hello World !
    """
    if factory is None:

        async def call_plain(bot: Bot) -> None:
            await worker()

        return await swarm(call_plain, size, **options)

    return await swarm(worker, size, factory=factory, **options)


@overload
def start(
    worker: Callable[..., Awaitable[Any]],
    /,
    *,
    size: int,
    factory: Factory | None = None,
    **options: Any,
) -> SwarmResult: ...


@overload
def start(
    worker: None = None,
    /,
    *,
    size: int,
    factory: Factory | None = None,
    **options: Any,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[[], SwarmResult]]: ...


def start(
    worker: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    size: int,
    factory: Factory | None = None,
    **options: Any,
) -> SwarmResult | Callable[[Callable[..., Awaitable[Any]]], Callable[[], SwarmResult]]:
    """Run the seed-style `worker` in a fresh ``trio.run``; or decorate it.

    ``start(worker, size=2)`` runs at once and returns the `SwarmResult`.
    ``@start(size=2)`` turns the worker into a plain function that runs the
    swarm when called.

    Example:
        >>> import trio_bots
        >>> async def worker():
        ...     print("Hello World !")
        >>> _ = trio_bots.start(worker, size=2)
        Hello World !
        Hello World !
    """
    if worker is None:

        def decorate(fn: Callable[..., Awaitable[Any]]) -> Callable[[], SwarmResult]:
            @functools.wraps(fn)
            def run() -> SwarmResult:
                return start(fn, size=size, factory=factory, **options)

            return run

        return decorate
    return trio.run(functools.partial(create, worker, size=size, factory=factory, **options))
