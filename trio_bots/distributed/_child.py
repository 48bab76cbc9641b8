"""A shard process: started by the driver as ``python -c ... FD``, it runs one shard.

It ignores SIGINT (the driver alone handles signals), reads its configuration
from the socket `FD`, imports the worker by its spec, waits for the common
start instant, runs `open_shard`, streams each second's delta bucket to the
driver, and sends its summary at the end. From the driver it takes ``stop``
(graceful), ``cancel`` (at once) and ``release`` (a global barrier).

Example:
    >>> command(5)[1:3]  # doctest: +ELLIPSIS
    ['-c', 'from trio_bots.distributed._child import main; main()']
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import signal
import socket
import sys
import time
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import anyio
from anyio.abc import SocketStream

from .._core.runtime import Tick
from .._core.shard import Shard
from .._core.swarm import Swarm, open_shard
from .._errors import ConfigError, SwarmAborted
from ._spec import load, load_workers
from ._wire import Wire, read_frame_blocking


def command(fd: int) -> list[str]:
    """The command line that starts a shard process on socket `fd`."""
    return [
        sys.executable,
        "-c",
        "from trio_bots.distributed._child import main; main()",
        str(fd),
    ]


class _Link:
    """The `ShardLink` of a shard process: what the engine reports goes to the driver."""

    def __init__(self, outbox: Any) -> None:
        self.outbox = outbox
        self.release: Callable[[Hashable], None] | None = None

    def attach(self, release_barrier: Callable[[Hashable], None]) -> None:
        self.release = release_barrier

    def barrier_complete(self, name: Hashable) -> None:
        self.outbox.send_nowait(("barrier", name))

    def new_group(self, group: Hashable) -> None:
        self.outbox.send_nowait(("group", group))

    def bot_failed(self, bot_id: int, exc: BaseException) -> None:
        self.outbox.send_nowait(("failed", bot_id, type(exc).__name__, str(exc)))


def _relative(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot on a clock that starts at 0: each process's event-loop clock differs."""
    return {**snapshot, "start_time": 0.0, "now": snapshot["now"] - snapshot["start_time"]}


def _counters(swarm: Swarm) -> dict[str, Any]:
    stats = swarm.statistics(metrics=False)
    return {
        "elapsed": stats.elapsed,
        "bots_running": stats.bots_running,
        "bots_target": stats.bots_target,
        "bots_started": stats.bots_started,
        "bots_finished": stats.bots_finished,
        "dropped_messages": stats.dropped_messages,
        "dropped_arrivals": stats.dropped_arrivals,
        "arrivals": stats.arrivals,
        "cpu_seconds": time.process_time(),
        "groups": swarm.group_sizes(),  # once a second: the dashboard's group counts
    }


def _failure(bot_id: int, exc: BaseException) -> tuple[int, str, str, bytes | None]:
    pickled: bytes | None
    try:
        pickled = pickle.dumps(exc)
        pickle.loads(pickled)
    except Exception:
        pickled = None
    return (bot_id, type(exc).__name__, str(exc), pickled)


def _summary(result: Any, aborted: SwarmAborted | None) -> dict[str, Any]:
    return {
        "metrics": _relative(result.metrics),
        "bot_failures": [_failure(f.bot_id, f.exception) for f in result.bot_failures],
        "bots_started": result.bots_started,
        "bots_finished": result.bots_finished,
        "dropped_messages": result.dropped_messages,
        "dropped_arrivals": result.dropped_arrivals,
        "cross_shard_skipped": result.cross_shard_skipped,
        "duration": result.duration,
        "interrupted": result.interrupted,
        "aborted": result.aborted,
        "abort_message": None if aborted is None else str(aborted),
        "timed_out": result.timed_out,
        "warnings": list(result.warnings),
        "cpu_seconds": time.process_time(),
    }


class Channel(Protocol):
    """The shard's end of its channel to the driver: a socket `Wire`, or a Ray actor's bridge."""

    async def send(self, message: Any) -> None:
        """Send one message to the driver."""

    async def receive(self) -> Any:
        """The driver's next message, or None once the driver is gone."""

    async def aclose(self) -> None:
        """Close this end: the driver sees the end of the stream."""


async def _run(sock: socket.socket, config: dict[str, Any], loaded: Any) -> None:
    await run_shard(Wire(await SocketStream.from_socket(sock)), config, loaded)


async def run_shard(wire: Channel, config: dict[str, Any], loaded: Any) -> None:
    """Run one shard on `wire`: `config` as the driver sent it, `loaded` = (worker, factory)
    imported already, or the text of the `ConfigError` that importing them raised."""
    send_outbox, outbox = anyio.create_memory_object_stream[Any](math.inf)
    link = _Link(send_outbox)
    shard = Shard(
        index=config["index"],
        count=config["count"],
        size=config["size"],
        align=config["align"],
        start_wall=config["start_wall"],
        link=link,
        raw_intervals=config.get("raw_intervals", False),
    )
    options = dict(config["options"])
    if isinstance(loaded, str):
        await wire.send(("error", loaded))
        await wire.aclose()
        return
    worker, factory = loaded
    if factory is not None:
        options["factory"] = factory

    async def pump() -> None:
        async with outbox:
            async for message in outbox:
                await wire.send(message)

    holder: list[Swarm] = []
    result: Any = None
    aborted: SwarmAborted | None = None
    async with anyio.create_task_group() as outer:
        outer.start_soon(pump)
        async with anyio.create_task_group() as listeners:
            with anyio.CancelScope() as run_scope:
                try:
                    async with open_shard(worker, shard, **options) as running:
                        holder.append(running)
                        await send_outbox.send(("ready", os.getpid()))

                        def tick(t: Tick) -> None:
                            send_outbox.send_nowait(
                                (
                                    "tick",
                                    t.second,
                                    t.bucket,
                                    t.final,
                                    _counters(running),
                                    dict(t.counters),
                                    dict(t.gauges),
                                    dict(t.raw),
                                )
                            )
                            if t.bucket.get("failures"):
                                failures = running.statistics().metrics["failures"]
                                send_outbox.send_nowait(("failures", failures))

                        running.on_tick(tick)
                        listeners.start_soon(_listen, wire, running, run_scope, link)
                except SwarmAborted as exc:
                    aborted = exc
                    result = exc.result
                except ConfigError as exc:
                    send_outbox.send_nowait(("error", str(exc)))
            listeners.cancel_scope.cancel()
        if result is None and holder:
            result = holder[0].result
        if result is not None:
            send_outbox.send_nowait(("done", _summary(result, aborted)))
        send_outbox.close()  # the pump sends what is queued, then ends
    await wire.aclose()


async def _listen(wire: Channel, running: Swarm, run_scope: anyio.CancelScope, link: _Link) -> None:
    while True:
        message = await wire.receive()
        if message is None:  # the driver is gone: stop at once
            run_scope.cancel()
            return
        kind = message[0]
        if kind == "stop":
            running.stop(grace=message[1] if len(message) > 1 else None)
        elif kind == "target":
            try:
                running.set_target(message[1])
            except ConfigError as exc:  # the driver checked its own limit: this one is lower
                logging.getLogger("trio_bots").warning("shard: %s", exc)
        elif kind == "rate":
            running.set_rate(message[1], at=message[2])
        elif kind == "cancel":
            run_scope.cancel()
        elif kind == "release" and link.release is not None:
            link.release(message[1])


def main() -> None:
    """The shard process's entry point (see `command`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    sock = socket.socket(fileno=int(sys.argv[1]))
    config = read_frame_blocking(sock)
    # imported before the event loop starts: the user's script may start one itself
    loaded = load_config(config)
    anyio.run(
        _run,
        sock,
        config,
        loaded,
        backend=config["backend"],
        backend_options=config["backend_options"],
    )


def load_config(config: dict[str, Any]) -> Any:
    """Import the worker and factory that `config` names: ``(worker, factory)``, or the
    text of the `ConfigError` that says why they cannot be imported here."""
    sys.path[:0] = [p for p in config["sys_path"] if p not in sys.path]
    try:
        worker = load_workers(config["worker"]) if config["worker"] is not None else None
        factory = load(config["factory"]) if config["factory"] is not None else None
        return (worker, factory)
    except ConfigError as exc:
        return str(exc)
