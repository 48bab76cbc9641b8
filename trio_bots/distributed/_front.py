"""`open_swarm` and `swarm` as users call them: in this process, or over shard processes.

With ``processes=N`` (or ``ray=``) the run goes to `trio_bots.distributed`; otherwise
it is the engine's own `trio_bots._core.swarm.open_swarm`. The engine never imports
this package: the choice is made here, above it.

Example:
    >>> import trio
    >>> async def worker(bot):
    ...     await bot.step()
    >>> trio.run(swarm, worker, 3).bots_finished
    3
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from .._core import swarm as engine
from .._core.backend import running_loop_spec
from .._core.options import validate_options
from .._core.result import SwarmResult
from ._local import open_processes
from ._ray import open_ray


def _scale_out(options: dict[str, Any]) -> bool:
    return options.get("processes") is not None or options.get("ray") is not None


@asynccontextmanager
async def open_swarm(worker: Any, size: int, **options: Any) -> AsyncIterator[Any]:
    """Start a swarm of `size` bots running `worker`, and give the live swarm.

    The block's end waits for the swarm to finish; ``swarm.result`` then holds
    the `SwarmResult`. An exception in the block cancels every bot. With
    ``processes=N`` the swarm runs as N shards in child processes, and the live
    swarm is their merged view (see docs/scale-out.md).

    Args:
        worker: ``async def worker(bot)``, or a mapping ``{worker_a: 3, worker_b: 1}``
            of weighted worker types; with ``processes=``, defined at module level.
        size: how many bots to start up front.
        **options: keyword options, see the docs (``duration``, ``max_failures``, ...).

    Raises:
        ConfigError: on an unknown option or bad value, or a plain ``def`` worker,
            before any bot starts.
        SwarmAborted: when more than ``max_failures`` bots failed, or a shard was lost.

    Example:
        >>> import trio, trio_bots
        >>> async def worker(bot):
        ...     await bot.stopping.wait()
        >>> async def main():
        ...     async with trio_bots.open_swarm(worker, 10, duration=2, stop_grace=1) as s:
        ...         pass
        ...     return s.result.bots_finished
        >>> trio.run(main)
        10
    """
    if not _scale_out(options):
        async with engine.open_swarm(worker, size, **options) as running:
            yield running
        return
    validated = validate_options(size, options)
    if worker is not None and not isinstance(worker, dict):
        engine.check_worker(worker)
    backend = running_loop_spec()  # the shards run the same loop (uvloop included)
    transport = open_processes if validated["ray"] is None else open_ray
    async with transport(worker, size, validated, backend=backend) as running:
        yield running


async def swarm(worker: Any, size: int, **options: Any) -> SwarmResult:
    """Run a swarm to the end and return its `SwarmResult`.

    Works as ``trio.run(trio_bots.swarm, worker, 100)`` and as
    ``anyio.run(trio_bots.swarm, worker, 100, backend="asyncio")``; with
    ``processes=N`` the run is split over N child processes and the result merged.

    Example:
        >>> import anyio, trio_bots
        >>> async def worker(bot):
        ...     bot.join("all")
        ...     await bot.barrier("ready", group="all")
        >>> anyio.run(trio_bots.swarm, worker, 10, backend="asyncio").bots_finished
        10
    """
    async with open_swarm(worker, size, **options) as running:
        pass
    assert running.result is not None
    return running.result  # type: ignore[no-any-return]
