"""Shards as Ray actors: the Ray transport of the driver (`_driver.drive`).

``ray="auto"`` starts a local Ray (and shuts it down at the end); an address
joins that cluster; if this process has called ``ray.init`` already, that
connection is used as it is (so ``runtime_env=`` and the rest are yours to
give). There are ``processes`` shards if given, otherwise one per cluster CPU;
each actor reserves one CPU, and the actors are spread over the nodes.

Each shard is a threaded actor (`ShardActor`) with two concurrency groups:
``run`` (one thread) blocks in the shard's event loop; the default group
serves ``poll`` (the driver long-polls the shard's messages: its per-second
delta, barriers, its result) and ``deliver`` (stop, cancel, barrier releases,
handed to the loop through ``anyio.from_thread.run_sync`` with its token).
Every ``ray.get`` has a timeout: actors that cannot be placed within
`PLACE_TIMEOUT` are a `ConfigError`, and an actor that dies is a lost shard.

``import ray`` happens only here, when a run asks for Ray.

Example:
    >>> PLACE_TIMEOUT, POLL
    (30.0, 1.0)
"""

from __future__ import annotations

import functools
import math
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from .._core.backend import LoopSpec
from .._errors import ConfigError
from ._child import load_config, run_shard
from ._driver import KILL_AFTER, ShardedSwarm, add_shard, drive
from ._local import check_processes, shard_config, shard_of

#: The one-line error when Ray is asked for but not installed.
RAY_MISSING = "ray= needs Ray: pip install 'trio-bots[ray]'"
#: Seconds the shard actors get to be placed on the cluster and answer.
PLACE_TIMEOUT = 30.0
#: Seconds one long poll of a shard's messages waits.
POLL = 1.0
#: Seconds any other call to an actor may take (beyond `POLL` for a poll).
CALL_TIMEOUT = 10.0

_END = ("__end__",)


def import_ray() -> Any:
    """The ``ray`` module, or a `ConfigError` with the install command.

    Example:
        >>> RAY_MISSING  # what a run with ray= says when Ray is not installed
        "ray= needs Ray: pip install 'trio-bots[ray]'"
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


class ActorBridge:
    """The shard's `Channel` inside an actor: a queue out, the loop's token in.

    Example:
        >>> bridge = ActorBridge()
        >>> bridge.deliver(("stop",))  # before the loop runs: kept for it
        >>> bridge.early
        [('stop',)]
    """

    def __init__(self) -> None:
        self.outbox: queue.Queue[Any] = queue.Queue()
        self.lock = threading.Lock()
        self.token: Any = None
        self.inbox_send: Any = None
        self.inbox: Any = None
        self.early: list[Any] = []
        self.closed = False

    async def serve(self, config: dict[str, Any], loaded: Any) -> None:
        """Run the shard in this event loop, taking messages through `deliver`."""
        send, self.inbox = anyio.create_memory_object_stream[Any](math.inf)
        with self.lock:
            self.token = anyio.lowlevel.current_token()
            self.inbox_send = send
            early, self.early = self.early, []
        for message in early:
            send.send_nowait(message)
        await run_shard(self, config, loaded)

    async def send(self, message: Any) -> None:
        """To the driver (its next poll)."""
        self.outbox.put(message)

    async def receive(self) -> Any:
        """The driver's next message."""
        try:
            return await self.inbox.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None

    async def aclose(self) -> None:
        """The shard has said all it will."""
        self.outbox.put(_END)

    def finish(self) -> None:
        """The loop is over: later messages are dropped, and the driver sees the end."""
        with self.lock:
            self.token = None
            self.closed = True
        self.outbox.put(_END)

    def deliver(self, message: Any) -> None:
        """From a control thread: hand `message` to the shard's loop."""
        with self.lock:
            if self.closed:
                return
            if self.token is None:
                self.early.append(message)
                return
            token, send = self.token, self.inbox_send
        try:
            anyio.from_thread.run_sync(send.send_nowait, message, token=token)
        except Exception:
            pass  # the loop has just ended

    def take(self, timeout: float) -> list[Any]:
        """The shard's messages: waits up to `timeout` for the first, then takes all."""
        try:
            messages = [self.outbox.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                messages.append(self.outbox.get_nowait())
            except queue.Empty:
                return messages


class ShardActor:
    """One shard as a Ray actor's body (`open_ray` makes it a threaded actor class).

    Example:
        >>> ShardActor().pid() == os.getpid()
        True
    """

    def __init__(self) -> None:
        self.bridge = ActorBridge()

    def pid(self) -> int:
        """The actor's process id (its first answer: the actor is placed)."""
        return os.getpid()

    def run(self, config: dict[str, Any]) -> None:
        """Run the shard to its end (in the ``run`` concurrency group)."""
        try:
            loaded = load_config(config)
            anyio.run(
                self.bridge.serve,
                config,
                loaded,
                backend=config["backend"],
                backend_options=config["backend_options"],
            )
        finally:
            self.bridge.finish()

    def poll(self, timeout: float) -> list[Any]:
        """The shard's messages since the last poll (a long poll)."""
        return self.bridge.take(timeout)

    def deliver(self, message: Any) -> None:
        """A message from the driver: stop, cancel, or a barrier's release."""
        self.bridge.deliver(message)


class _ActorChannel:
    """A `ShardChannel` over a Ray actor."""

    def __init__(self, ray: Any, actor: Any, pid: int, run_ref: Any) -> None:
        self.ray = ray
        self.actor = actor
        self.pid = pid
        self.run_ref = run_ref
        self.pending: deque[Any] = deque()
        self.closed = False
        self.death: str | None = None

    async def _get(self, ref: Any, seconds: float) -> Any:
        get = functools.partial(self.ray.get, ref, timeout=seconds)
        return await anyio.to_thread.run_sync(get, abandon_on_cancel=True)

    async def send(self, message: Any) -> None:
        if self.closed:
            return
        try:
            await self._get(self.actor.deliver.remote(message), CALL_TIMEOUT)
        except Exception:
            pass  # it is gone; its reader notices

    async def receive(self) -> Any:
        errors = self.ray.exceptions
        while not self.pending:
            if self.closed:
                return None
            try:
                batch = await self._get(self.actor.poll.remote(POLL), POLL + CALL_TIMEOUT)
            except errors.GetTimeoutError:
                continue  # the heartbeat decides
            except errors.RayError as exc:
                self.closed = True
                self.death = f"died: {type(exc).__name__} (Ray actor)"
                return None
            for message in batch:
                if message == _END:
                    self.closed = True
                    break
                self.pending.append(message)
        return self.pending.popleft()

    async def ended(self) -> str:
        if self.death is None:
            try:
                await self._get(self.run_ref, KILL_AFTER)
                self.death = "ended before its result"
            except Exception as exc:
                self.death = f"failed: {type(exc).__name__}: {exc}".splitlines()[0]
        self.kill()
        return self.death

    def kill(self) -> None:
        self.closed = True
        try:
            self.ray.kill(self.actor, no_restart=True)
        except Exception:
            pass  # already gone

    async def aclose(self, *, graceful: bool) -> None:
        if graceful:
            try:
                await self._get(self.run_ref, KILL_AFTER)
            except Exception:
                pass
        self.kill()


def _start_ray(ray: Any, address: str) -> None:
    """``ray.init`` for ``ray=``: a local Ray for "auto", else join the cluster at `address`."""
    try:
        if address == "auto":
            ray.init(address="local", include_dashboard=False)
        else:
            ray.init(address=address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "start a local Ray" if address == "auto" else f"join the Ray cluster at {address}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"ray: cannot {where}: {first}") from None


#: Seconds to reach a cluster's address before ``ray.init`` (which would wait minutes).
PROBE_TIMEOUT = 5.0


async def _probe(address: str) -> None:
    """A `ConfigError` now if nothing listens at a cluster's ``[ray://]HOST:PORT``."""
    rest = address.removeprefix("ray://")
    host, _, port_text = rest.rpartition(":")
    if not host or not port_text.isdigit():
        raise ConfigError(
            f"ray: expected auto, HOST:PORT of the head node or ray://HOST:PORT, got {address!r}"
        )
    try:
        with anyio.fail_after(PROBE_TIMEOUT):
            stream = await anyio.connect_tcp(host.strip("[]"), int(port_text))
        await stream.aclose()
    except (OSError, TimeoutError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        reason = os.strerror(cause.errno) if cause.errno else str(cause)
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {PROBE_TIMEOUT:g} s"
        raise ConfigError(
            f"ray: cannot reach the Ray cluster at {address}: {reason} (is its head running? "
            f"`ray start --head` prints the address)"
        ) from None


@asynccontextmanager
async def open_ray(
    worker: Any, size: int, options: Mapping[str, Any], *, backend: LoopSpec = ("trio", {})
) -> AsyncIterator[ShardedSwarm]:
    """Run a swarm over Ray actors; see the module docstring.

    `options` are validated already. Raises `ConfigError` when Ray is missing or the
    actors cannot be placed, and `SwarmAborted` (with the merged result) when a shard
    aborted or its actor died.
    """
    ray = import_ray()
    specs = check_processes(worker, options)
    owned = not ray.is_initialized()
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main else None
    if owned:
        if options["ray"] != "auto":
            await _probe(options["ray"])
        _start_ray(ray, options["ray"])
    try:
        cpus = ray.cluster_resources().get("CPU", 0)
        count: int = options["processes"] or max(1, int(cpus))
        remote = ray.remote(num_cpus=1, max_concurrency=4, concurrency_groups={"run": 1})
        actor_class = remote(ShardActor)
        actors = [actor_class.options(scheduling_strategy="SPREAD").remote() for _ in range(count)]
        try:
            pids = await anyio.to_thread.run_sync(
                functools.partial(ray.get, [a.pid.remote() for a in actors], timeout=PLACE_TIMEOUT)
            )
        except ray.exceptions.GetTimeoutError:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            raise ConfigError(
                f"ray: {count} shard actors (1 CPU each) were not all placed within "
                f"{PLACE_TIMEOUT:g} s; the cluster has {cpus:g} CPUs: give processes= at most "
                f"that, or add nodes"
            ) from None
        run = ShardedSwarm(size, options)
        run.start_wall = time.time() + 0.3 + 0.02 * count
        run.watch()  # before any shard starts: an HDR log that cannot be written stops it here

        async def start(run: ShardedSwarm) -> None:
            for index, (actor, pid) in enumerate(zip(actors, pids, strict=True)):
                config = shard_config(run, index, count, specs, backend=backend)
                run_ref = actor.run.options(concurrency_group="run").remote(config)
                add_shard(run, shard_of(config), _ActorChannel(ray, actor, pid, run_ref))

        async with drive(run, start) as running:
            yield running
    finally:
        if owned:
            ray.shutdown()
            if sigterm is not None:
                signal.signal(signal.SIGTERM, sigterm)  # Ray leaves its own installed
