"""Shards as local child processes: the process transport of the driver (`_driver.drive`).

`open_processes` starts ``processes`` children (``python -c ...``, each with one
end of a socket pair passed through ``pass_fds``: no ``multiprocessing``, so a
driver script without an ``if __name__ == "__main__":`` guard still works),
gives each its `Shard`, and yields the `ShardedSwarm` that the driver runs over
them. A child's output is copied to ours as ``[shard k] ...`` lines; a child
killed shows as EOF on its socket, and is reported by its signal.

Example:
    >>> _death(-9)
    'died: SIGKILL'
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import SocketStream

from .._core.backend import LoopSpec
from .._core.shard import Shard
from ._child import command
from ._driver import DRIVER_ONLY, KILL_AFTER, ShardedSwarm, add_shard, drive
from ._spec import BOOTSTRAP_ENV, ShardBootstrap, factory_spec, workers_spec
from ._wire import Wire, write_frame_blocking


class _ProcessChannel:
    """A `ShardChannel` over a child process and its socket."""

    def __init__(self, process: Any, wire: Wire) -> None:
        self.process = process
        self.pid: int = process.pid
        self.wire = wire

    async def send(self, message: Any) -> None:
        try:
            await self.wire.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # it is gone; its reader notices

    async def receive(self) -> Any:
        return await self.wire.receive()

    async def ended(self) -> str:
        with anyio.move_on_after(KILL_AFTER):
            await self.process.wait()
        self.kill()
        return _death(await self.process.wait())

    def kill(self) -> None:
        _kill(self.process)

    async def aclose(self, *, graceful: bool) -> None:
        if graceful:
            with anyio.move_on_after(KILL_AFTER):
                await self.process.wait()
        self.kill()
        await self.process.wait()
        await self.process.aclose()
        await self.wire.aclose()


def _death(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"died: {signal.Signals(-returncode).name}"
        except ValueError:
            return f"died: signal {-returncode}"
    return f"exited with code {returncode} before its result"


def _kill(process: Any) -> None:
    if process.returncode is None:
        try:
            process.kill()
        except ProcessLookupError:
            pass


async def _forward(stream: Any, index: int, err: bool) -> None:
    """Copy a shard's output to ours, one ``[shard k]`` line at a time."""
    pending = b""
    async for chunk in stream:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            out = sys.stderr if err else sys.stdout
            print(f"[shard {index}] {line.decode(errors='replace')}", file=out, flush=True)
    if pending:
        out = sys.stderr if err else sys.stdout
        print(f"[shard {index}] {pending.decode(errors='replace')}", file=out, flush=True)


def check_processes(worker: Any, options: Mapping[str, Any]) -> tuple[Any, Any]:
    """The worker's and factory's specs, or a `ConfigError` saying why they cannot travel."""
    if os.environ.get(BOOTSTRAP_ENV):
        # a shard process is importing the user's script, which starts this swarm again
        raise ShardBootstrap
    worker_spec = None if options["factory"] is not None else workers_spec(worker)
    factory = options["factory"]
    return worker_spec, None if factory is None else factory_spec(factory)


def shard_config(
    run: ShardedSwarm,
    index: int,
    count: int,
    specs: tuple[Any, Any],
    *,
    backend: LoopSpec,
) -> dict[str, Any]:
    """What shard `index` of `count` is told: its place, the worker's specs, its options."""
    options = run.options
    shard_options = {k: v for k, v in options.items() if k not in DRIVER_ONLY}
    shard_options["max_failures"] = None  # the driver applies it over every shard
    return {
        "index": index,
        "count": count,
        "size": run.size,
        "align": options["shard_align"],
        "start_wall": run.start_wall,
        "raw_intervals": options.get("rate") is not None,  # the open model's raw figures
        "worker": specs[0],
        "factory": specs[1],
        "options": shard_options,
        "backend": backend[0],  # with its anyio backend_options (use_uvloop)
        "backend_options": dict(backend[1]),
        "sys_path": [p for p in sys.path if p],
    }


def shard_of(config: Mapping[str, Any]) -> Shard:
    """The driver's `Shard` for a `shard_config`."""
    return Shard(
        index=config["index"],
        count=config["count"],
        size=config["size"],
        align=config["align"],
        start_wall=config["start_wall"],
    )


@asynccontextmanager
async def open_processes(
    worker: Any, size: int, options: Mapping[str, Any], *, backend: LoopSpec = ("trio", {})
) -> AsyncIterator[ShardedSwarm]:
    """Run a swarm over ``options["processes"]`` child processes; see the module docstring.

    `options` are validated already. Raises `SwarmAborted` (with the merged result) when a
    shard aborted or was lost, or a split group met ``strict_groups=True``.
    """
    specs = check_processes(worker, options)
    count: int = options["processes"]
    run = ShardedSwarm(size, options)
    run.start_wall = time.time() + 0.3 + 0.15 * count
    run.watch()  # before any shard starts: an HDR log that cannot be written stops it here
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if os.environ.get("PYTHONPATH") is None:
        env.pop("PYTHONPATH", None)

    async def start(run: ShardedSwarm) -> None:
        for index in range(count):
            config = shard_config(run, index, count, specs, backend=backend)
            parent, child = socket.socketpair()
            try:
                process = await anyio.open_process(
                    command(child.fileno()),
                    stdin=subprocess.DEVNULL,
                    pass_fds=(child.fileno(),),
                    env=env,
                )
            finally:
                child.close()
            write_frame_blocking(parent, config)  # before anyio makes the socket non-blocking
            wire = Wire(await SocketStream.from_socket(parent))
            add_shard(run, shard_of(config), _ProcessChannel(process, wire))
            run.task_group.start_soon(_forward, process.stdout, index, False)
            run.task_group.start_soon(_forward, process.stderr, index, True)

    async with drive(run, start) as running:
        yield running
