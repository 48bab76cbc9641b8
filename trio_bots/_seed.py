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
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, overload

import trio

from ._core.result import SwarmResult
from ._core.swarm import awaitables_from_factory, check_worker, run_awaitables

Factory = Callable[..., Iterable[Awaitable[Any]]]
Main = Callable[..., Awaitable[Any]]
SeedWorker = Callable[..., Awaitable[Any]]


def _call_without_arguments(worker: SeedWorker, *, size: int) -> Iterable[Awaitable[Any]]:
    """The seed's default factory: ``size`` calls of the worker with no arguments."""
    return (worker() for _ in range(size))


async def run_tasks(
    awaitables: Iterable[Awaitable[Any]],
    /,
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - the seed's own API (see STYLE)
    **options: Any,
) -> SwarmResult:
    """Run one bot per awaitable, as one swarm, and return the `SwarmResult`.

    With ``timeout=T``, every bot still running after T seconds is cancelled:
    no ``stopping``, no grace, no exception. The result then has
    ``timed_out=True`` and ``bots_cancelled`` set. Other keyword options are
    the swarm's (see `swarm`).

    Example:
        >>> import functools, trio, trio_bots
        >>> async def sleeper(seconds):
        ...     await trio.sleep(seconds)
        >>> result = trio.run(functools.partial(
        ...     trio_bots.run_tasks, [sleeper(1), sleeper(60)], timeout=5))
        >>> result.timed_out, result.bots_cancelled, result.interrupted
        (True, 1, False)
    """
    return await run_awaitables(list(awaitables), cancel_after=timeout, options=options)


async def create(
    worker: SeedWorker,
    *,
    size: int | None = None,
    factory: Factory | None = None,
    main: Main | None = None,
    **kwargs: Any,
) -> Any:
    """Run `size` seed-style workers (one without `size`) and return what `main` returns.

    ``factory(worker, size=size)`` gives the awaitables to run, one per bot;
    without a factory each worker is called with no arguments. They are run
    by ``await main(awaitables, **kwargs)``, `run_tasks` by default, with
    exactly the keyword arguments given here (``timeout=`` among them).
    Awaitables that never started (the swarm aborted first) are closed, so no
    "never awaited" warning appears.

    Example:
        >>> import functools, trio, trio_bots
        >>> async def worker():
        ...     print("Hello World !")
        >>> async def main(awaitables, **kwargs):
        ...     print("before")
        ...     result = await trio_bots.run_tasks(awaitables, **kwargs)
        ...     print("after")
        ...     return result
        >>> _ = trio.run(functools.partial(trio_bots.create, worker, main=main))
        before
        Hello World !
        after
    """
    count = 1 if size is None else size
    if factory is None:
        check_worker(worker)
        awaitables = awaitables_from_factory(_call_without_arguments, worker, count)
    else:
        awaitables = awaitables_from_factory(factory, worker, count)
    return await (main or run_tasks)(awaitables, **kwargs)


@overload
def start(
    worker: SeedWorker,
    /,
    *,
    size: int | None = None,
    factory: Factory | None = None,
    **kwargs: Any,
) -> Any: ...


@overload
def start(
    worker: None = None,
    /,
    *,
    size: int | None = None,
    factory: Factory | None = None,
    **kwargs: Any,
) -> Callable[[SeedWorker], Callable[[], Any]]: ...


def start(
    worker: SeedWorker | None = None,
    /,
    *,
    size: int | None = None,
    factory: Factory | None = None,
    **kwargs: Any,
) -> Any:
    """Run the seed-style `worker` in a fresh ``trio.run``; or decorate it.

    ``start(worker, size=2)`` runs at once and returns the `SwarmResult`
    (without `size`, one worker runs). ``@start(size=2)`` and ``@start()``
    turn the worker into a plain function that runs the swarm when called.
    Keyword arguments go to `create` (``main=``, ``timeout=``, swarm options).

    Example:
        >>> import trio_bots
        >>> async def worker():
        ...     print("Hello World !")
        >>> _ = trio_bots.start(worker, size=2)
        Hello World !
        Hello World !
        >>> @trio_bots.start()
        ... async def once():
        ...     print("once")
        >>> once().bots_finished
        once
        1
    """
    if worker is None:

        def decorate(fn: SeedWorker) -> Callable[[], Any]:
            @functools.wraps(fn)
            def run() -> Any:
                return start(fn, size=size, factory=factory, **kwargs)

            return run

        return decorate
    return trio.run(functools.partial(create, worker, size=size, factory=factory, **kwargs))
