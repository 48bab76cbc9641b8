"""`Network`: servers and bots in one trio program, over simulated connections.

Example:
    >>> import trio, trio_bots
    >>> from trio_bots.testing import Network
    >>> async def echo(stream):
    ...     async for data in stream:
    ...         await stream.send_all(data)
    >>> async def worker(bot):
    ...     stream = await bot.connect_tcp("game.test", 7000)
    ...     async with bot.measure("echo"):
    ...         await stream.send_all(b"ping")
    ...         await stream.receive_some()
    >>> async def main():
    ...     net = Network(latency=0.010)
    ...     async with net.serve(echo, "game.test", 7000):
    ...         result = await trio_bots.swarm(worker, 3, network=net)
    ...     return result.stats["echo"].count, round(result.stats["echo"].mean, 3)
    >>> trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    (3, 0.02)
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from .._errors import ConfigError, ConnectError
from ._stream import Connection, Link, SimulatedStream, open_connection

Handler = Callable[[SimulatedStream], Awaitable[Any]]


@dataclass(frozen=True)
class NetworkStatistics:
    """A snapshot of a `Network`, from `Network.statistics`.

    Attributes:
        connects: connections made so far.
        refused: connects that found nothing serving their address.
        open: connections with at least one end still open.

    Example:
        >>> Network().statistics()
        NetworkStatistics(connects=0, refused=0, open=0)
    """

    connects: int
    refused: int
    open: int


class _Site:
    """One ``serve`` block: its handler, its nursery and its open connections."""

    __slots__ = ("connections", "handler", "nursery")

    def __init__(self, handler: Handler, nursery: trio.Nursery) -> None:
        self.handler = handler
        self.nursery = nursery
        self.connections: list[Connection] = []


def _address(host: str, port: int) -> str:
    if not isinstance(host, str) or not host:
        raise ConfigError(f"host must be a non-empty string such as '127.0.0.1', got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"port must be an int from 1 to 65535, got {port!r}")
    host = host.lower().strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")
    if math.isinf(value):
        raise ConfigError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


def _unwrap(group: BaseExceptionGroup[Any]) -> BaseException:
    """The one error in a (nested) group, or the group itself when there are several."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class Network:
    """A simulated network: in-process servers, and streams to them, in trio's time.

    Give it to a swarm as ``network=net``: every ``bot.connect_tcp(host, port)``
    then reaches the handler that ``net.serve`` runs at that address, and no
    bot opens a real socket. Time is trio's clock, so under
    ``trio.testing.MockClock(autojump_threshold=0)`` ten minutes of a run take
    seconds.

    Args:
        latency: the one-way delay of each chunk sent, in seconds.
        jitter: up to this many more seconds per chunk, uniform. A chunk is
            delivered at ``max(the previous chunk's delivery, sent + latency +
            U(0, jitter))``: nothing is reordered within a connection.
        seed: seeds the jitter. None: each swarm run with the network seeds
            it from its own ``seed`` (see `reseed`).

    Addresses are matched as given (``"localhost"`` is not ``"127.0.0.1"``);
    nothing is resolved. Trio only.

    Example:
        >>> Network(latency=0.02, seed=7)
        Network(latency=0.02, jitter=0.0, seed=7)
    """

    def __init__(
        self, *, latency: float = 0.0, jitter: float = 0.0, seed: int | str | None = None
    ) -> None:
        self.latency = _number("latency", latency)
        self.jitter = _number("jitter", jitter)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | str)):
            raise ConfigError(f"seed must be an int, a string or None, got {seed!r}")
        self.seed = seed
        self._random = random.Random(self._seed_text(seed))
        self._links: dict[str, Link] = {}
        self._sites: dict[str, _Site] = {}
        self._connects = 0
        self._refused = 0

    def __repr__(self) -> str:
        # No memory address: a report that prints its options stays the same from run to run.
        return f"Network(latency={self.latency!r}, jitter={self.jitter!r}, seed={self.seed!r})"

    @staticmethod
    def _seed_text(seed: int | str | None) -> str | None:
        # A string seed is hashed with SHA-512: the same in every process (no PYTHONHASHSEED).
        return None if seed is None else f"trio-bots network:{seed}"

    def reseed(self, seed: int | str | None) -> None:
        """Start the jitter afresh: from the network's own seed, or else from `seed`.

        Each swarm given ``network=`` calls it as it starts, with the swarm's
        ``seed``, so that a seeded run replays the same jitter.

        Example:
            >>> net = Network(jitter=1.0)
            >>> net.reseed(3); first = net.jitter_sample()
            >>> net.reseed(3); first == net.jitter_sample()
            True
        """
        self._random.seed(self._seed_text(self.seed if self.seed is not None else seed))

    def jitter_sample(self) -> float:
        """The delay the next chunk would get (latency plus jitter); it uses up one draw.

        Example:
            >>> Network(latency=0.5).jitter_sample()
            0.5
        """
        return self._link("sample.invalid:1").delay()

    def _link(self, address: str) -> Link:
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = Link(
                address, latency=self.latency, jitter=self.jitter, random_source=self._random
            )
        return link

    def statistics(self) -> NetworkStatistics:
        """Connections made, refused, and still open.

        Example:
            >>> net = Network()
            >>> net.statistics().open
            0
        """
        for site in self._sites.values():
            site.connections = [c for c in site.connections if c.open]
        still_open = sum(len(site.connections) for site in self._sites.values())
        return NetworkStatistics(self._connects, self._refused, still_open)

    @asynccontextmanager
    async def serve(self, handler: Handler, host: str, port: int) -> AsyncIterator[Network]:
        """Serve ``(host, port)`` for the block: ``await handler(stream)`` per connection.

        Like ``trio.serve_tcp``: each connection runs the handler in a task of
        a nursery that the block owns, and its stream is closed when the
        handler returns. An exception from a handler ends the block with it.
        When the block ends, the address stops being served and the handlers
        still running are cancelled.

        Raises:
            ConfigError: the address is already served, or is not host and port.

        Example:
            >>> import trio
            >>> async def hello(stream):
            ...     await stream.send_all(b"hello")
            >>> async def main():
            ...     net = Network()
            ...     async with net.serve(hello, "127.0.0.1", 8000):
            ...         stream = await net.connect_tcp("127.0.0.1", 8000)
            ...         return await stream.receive_some()
            >>> trio.run(main)
            b'hello'
        """
        address = _address(host, port)
        if not callable(handler):
            raise ConfigError(f"handler must be an async function handler(stream), got {handler!r}")
        if address in self._sites:
            raise ConfigError(
                f"{address} is already served on this network; end the other serve() block, "
                "or serve another address"
            )
        site: _Site | None = None
        try:
            async with trio.open_nursery() as nursery:
                site = self._sites[address] = _Site(handler, nursery)
                try:
                    yield self
                finally:
                    if self._sites.get(address) is site:
                        del self._sites[address]
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            error = _unwrap(group)
            if error is group:
                raise
            raise error from None
        finally:
            if site is not None and self._sites.get(address) is site:
                del self._sites[address]

    async def connect_tcp(self, host: str, port: int) -> SimulatedStream:
        """A stream to the handler served at ``(host, port)``; the caller closes it.

        The connect itself takes no time (no handshake round trip is modelled).

        Raises:
            ConnectError: nothing serves that address (or it crashed since).

        Example:
            >>> import trio
            >>> trio.run(Network().connect_tcp, "127.0.0.1", 9)
            Traceback (most recent call last):
            ...
            trio_bots.ConnectError: cannot connect to 127.0.0.1:9: nothing serves it on the simulated network (start a server with net.serve(handler, host, port))
        """  # noqa: E501
        await trio.lowlevel.checkpoint()
        address = _address(host, port)
        site = self._sites.get(address)
        if site is None:
            self._refused += 1
            raise ConnectError(
                f"cannot connect to {address}: nothing serves it on the simulated network "
                "(start a server with net.serve(handler, host, port))"
            )
        self._connects += 1
        client, _, connection = open_connection(self._link(address))
        site.connections.append(connection)
        site.nursery.start_soon(self._handle, site, connection, name=f"handler {address}")
        return client

    async def _handle(self, site: _Site, connection: Connection) -> None:
        try:
            with trio.CancelScope() as connection.scope:
                await site.handler(connection.server)
        finally:
            await trio.aclose_forcefully(connection.server)

    def crash(self, host: str, port: int) -> None:
        """Crash the server at ``(host, port)``: reset every connection, cancel its handlers.

        Both ends of every open connection raise `trio.BrokenResourceError`,
        the handlers are cancelled, and connects raise `ConnectError` until a
        new ``serve`` on the address. The old ``serve`` block ends normally.
        Callable from any task of the run.

        Example:
            >>> import trio
            >>> async def handler(stream):
            ...     await trio.sleep_forever()
            >>> async def main():
            ...     net = Network()
            ...     async with net.serve(handler, "db", 5432):
            ...         stream = await net.connect_tcp("db", 5432)
            ...         net.crash("db", 5432)
            ...         try:
            ...             await stream.receive_some()
            ...         except trio.BrokenResourceError as exc:
            ...             print(exc)
            >>> trio.run(main)
            db:5432 crashed (net.crash): connection reset
        """
        address = _address(host, port)
        site = self._sites.pop(address, None)
        if site is None:
            return
        for connection in site.connections:
            if connection.open:
                connection.reset(f"{address} crashed (net.crash): connection reset")
        site.connections.clear()

    def stall(self, host: str, port: int, seconds: float) -> None:
        """Deliver nothing either way on ``(host, port)`` for `seconds`; then all of it, in order.

        Writers can still fill the buffers meanwhile. Callable from any task.

        Example:
            >>> import trio
            >>> async def echo(stream):
            ...     async for data in stream:
            ...         await stream.send_all(data)
            >>> async def main():
            ...     net = Network()
            ...     async with net.serve(echo, "db", 5432):
            ...         stream = await net.connect_tcp("db", 5432)
            ...         net.stall("db", 5432, 2.0)
            ...         await stream.send_all(b"x")
            ...         await stream.receive_some()
            ...         return trio.current_time()
            >>> trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
            2.0
        """
        seconds = _number("seconds", seconds)
        link = self._link(_address(host, port))
        link.stalled_until = max(link.stalled_until, trio.current_time() + seconds)
