"""One simulated TCP connection: two bounded pipes with latency, and the stream ends over them.

A `Pipe` carries one direction. Each chunk written gets a delivery time,
``max(the previous chunk's, sent + latency + U(0, jitter))``, so a pipe never
reorders. The bytes written and not yet read count against `BUFFER`: a writer
blocks when the reader does not keep up, as on a socket. The `Link` (the
address's state, shared by every connection to it) says how long the address
is stalled and where the jitter comes from.

Trio only: it is built on trio's clock, events and cancel scopes, so that it
runs in virtual time under ``trio.testing.MockClock``.

Example:
    >>> import trio
    >>> async def main():
    ...     client, server, _ = open_connection(Link("demo:1", latency=0.5))
    ...     await client.send_all(b"ping")
    ...     start = trio.current_time()
    ...     data = await server.receive_some()
    ...     return data, trio.current_time() - start
    >>> trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    (b'ping', 0.5)
"""

from __future__ import annotations

import math
import random
from collections import deque

import trio

#: Bytes written and not yet read, per direction, before a writer blocks (a socket buffer).
BUFFER = 65536

#: What ``receive_some()`` returns at most when given no ``max_bytes``.
RECEIVE_SIZE = 65536


class Link:
    """What every connection to one address shares: latency, jitter, its random, the stall.

    Attributes:
        name: ``host:port``, for error messages.
        latency: the one-way delay of each chunk, in seconds of trio's clock.
        jitter: up to this many more seconds, uniform, from `random`.
        random: where the jitter comes from (the network's, seeded).
        stalled_until: nothing is delivered on this address before this time.

    Example:
        >>> Link("example:80", latency=0.01).name
        'example:80'
    """

    __slots__ = ("jitter", "latency", "name", "random", "stalled_until")

    def __init__(
        self,
        name: str,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        random_source: random.Random | None = None,
    ) -> None:
        self.name = name
        self.latency = latency
        self.jitter = jitter
        self.random = random_source or random.Random()
        self.stalled_until = -math.inf

    def delay(self) -> float:
        """The one-way delay of the next chunk: latency, plus U(0, jitter) when there is jitter."""
        if self.jitter:
            return self.latency + self.random.uniform(0.0, self.jitter)
        return self.latency


class Pipe:
    """One direction of a connection: chunks in flight, in order, bounded by `BUFFER`.

    A chunk is ``(delivery time, bytes)``; ``(delivery time, None)`` is the EOF.

    Example:
        >>> pipe = Pipe(Link("x:1"))
        >>> pipe.put(b"abc", now=0.0); pipe.buffered
        3
    """

    __slots__ = ("broken", "buffered", "changed", "chunks", "eof", "last", "link", "reader_gone")

    def __init__(self, link: Link) -> None:
        self.link = link
        self.chunks: deque[tuple[float, bytes | None]] = deque()
        self.buffered = 0
        self.last = -math.inf
        self.eof = False  # the writer sent EOF (queued after its chunks)
        self.reader_gone = False  # the reading end is closed: writes are refused
        self.broken: str | None = None  # why the connection broke (a crash)
        self.changed = trio.Event()

    def notify(self) -> None:
        """Wake whoever waits on this pipe (its reader, its writer): something changed."""
        self.changed.set()
        self.changed = trio.Event()

    def _due(self, now: float) -> float:
        due = max(self.last, now + self.link.delay())
        self.last = due
        return due

    def put(self, data: bytes, *, now: float) -> None:
        """Queue `data` as one chunk, delivered after the link's delay."""
        self.chunks.append((self._due(now), data))
        self.buffered += len(data)
        self.notify()

    def put_eof(self, *, now: float) -> None:
        """Queue the EOF after every chunk sent so far."""
        if not self.eof:
            self.eof = True
            self.chunks.append((self._due(now), None))
            self.notify()

    def ready_at(self) -> float:
        """When the first chunk can be read: its delivery time, or the end of a stall."""
        return max(self.chunks[0][0], self.link.stalled_until)

    def take(self, max_bytes: int, now: float) -> bytes:
        """Up to `max_bytes` of the chunks delivered by `now` (the first one is); b"" at EOF."""
        parts: list[bytes] = []
        size = 0
        chunks = self.chunks
        while chunks and size < max_bytes and chunks[0][0] <= now:
            due, data = chunks[0]
            if data is None:
                break  # the EOF stays, for every later read
            room = max_bytes - size
            if len(data) > room:
                chunks[0] = (due, data[room:])
                data = data[:room]
            else:
                chunks.popleft()
            parts.append(data)
            size += len(data)
        self.buffered -= size
        if size:
            self.notify()  # room for the writer
        return b"".join(parts)

    def discard(self) -> None:
        """The reader is gone: drop what is in flight and refuse later writes."""
        self.reader_gone = True
        self.chunks.clear()
        self.buffered = 0
        self.notify()

    def break_(self, why: str) -> None:
        """The connection is reset: every wait and later operation raises BrokenResourceError."""
        self.broken = why
        self.chunks.clear()
        self.buffered = 0
        self.notify()


class SimulatedStream(trio.abc.HalfCloseableStream):
    """One end of a simulated TCP connection, with the surface of `trio.SocketStream`.

    ``send_all``, ``receive_some`` (``b""`` at EOF), ``send_eof``, ``aclose``
    and ``wait_send_all_might_not_block``; errors are trio's
    `BrokenResourceError`, `ClosedResourceError` and `BusyResourceError`.
    `trio.SSLStream` works over it.

    Attributes:
        address: ``host:port`` of the connection's server.

    Example:
        >>> import trio
        >>> from trio_bots.testing._stream import Link, open_connection
        >>> async def main():
        ...     client, server, _ = open_connection(Link("demo:1"))
        ...     await client.send_all(b"hello")
        ...     await client.send_eof()
        ...     return await server.receive_some(), await server.receive_some()
        >>> trio.run(main)
        (b'hello', b'')
    """

    def __init__(self, address: str, incoming: Pipe, outgoing: Pipe, connection: Connection):
        self.address = address
        self._in = incoming
        self._out = outgoing
        self._connection = connection
        self._closed = False
        self._sending = False
        self._receiving = False

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<SimulatedStream to {self.address}{state}>"

    def _check(self, pipe: Pipe) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        if pipe.broken is not None:
            raise trio.BrokenResourceError(pipe.broken)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send every byte of `data`; wait while the peer's buffer is full."""
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint()
            out = self._out
            view = memoryview(data).cast("B")
            while True:
                self._check(out)
                if out.eof:
                    raise trio.ClosedResourceError("cannot send data after send_eof()")
                if out.reader_gone:
                    raise trio.BrokenResourceError(
                        f"{self.address}: the peer closed the connection"
                    )
                if not view:
                    return
                room = BUFFER - out.buffered
                if room <= 0:
                    await out.changed.wait()
                    continue
                piece = bytes(view[:room])
                view = view[len(piece) :]
                out.put(piece, now=trio.current_time())
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the peer's buffer has room (or the connection is closed or broken)."""
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        await trio.lowlevel.checkpoint()
        out = self._out
        while out.buffered >= BUFFER and not (self._closed or out.broken or out.reader_gone):
            await out.changed.wait()
        self._check(out)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Receive up to `max_bytes` bytes once they are delivered; ``b""`` at EOF."""
        if max_bytes is None:
            max_bytes = RECEIVE_SIZE
        elif isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be an int >= 1, got {max_bytes!r}")
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint()
            pipe = self._in
            while True:
                self._check(pipe)
                if not pipe.chunks:
                    await pipe.changed.wait()
                    continue
                now = trio.current_time()
                ready = pipe.ready_at()
                if ready > now:
                    with trio.move_on_at(ready):
                        await pipe.changed.wait()
                    continue
                return pipe.take(max_bytes, now)
        finally:
            self._receiving = False

    async def send_eof(self) -> None:
        """Close the sending side: the peer reads what was sent, then ``b""``."""
        await trio.lowlevel.checkpoint()
        self._check(self._out)
        self._out.put_eof(now=trio.current_time())

    async def aclose(self) -> None:
        """Close this end: the peer reads what was sent, then EOF; its writes then fail."""
        if not self._closed:
            self._closed = True
            self._out.put_eof(now=trio.current_time())
            self._out.notify()  # a task of ours waiting to send sees the close
            self._in.discard()
            self._connection.end_closed()
        await trio.lowlevel.checkpoint()


class Connection:
    """Both ends of one simulated connection, and what happens when both are closed.

    Example:
        >>> client, server, connection = open_connection(Link("demo:1"))
        >>> connection.open
        True
    """

    __slots__ = ("client", "ends_open", "pipes", "scope", "server")

    def __init__(self, link: Link) -> None:
        up, down = Pipe(link), Pipe(link)
        self.pipes = (up, down)
        self.client = SimulatedStream(link.name, down, up, self)
        self.server = SimulatedStream(link.name, up, down, self)
        self.ends_open = 2
        #: The handler's cancel scope, set by the network that serves it.
        self.scope: trio.CancelScope | None = None

    @property
    def open(self) -> bool:
        """Whether an end is still open."""
        return self.ends_open > 0

    def end_closed(self) -> None:
        """One end was closed."""
        self.ends_open -= 1

    def reset(self, why: str) -> None:
        """Break both directions (a crash): both ends raise BrokenResourceError."""
        for pipe in self.pipes:
            pipe.break_(why)
        if self.scope is not None:
            self.scope.cancel()


def open_connection(link: Link) -> tuple[SimulatedStream, SimulatedStream, Connection]:
    """A new connection over `link`: (the client's end, the server's end, the connection).

    Example:
        >>> client, server, _ = open_connection(Link("db:5432"))
        >>> client
        <SimulatedStream to db:5432>
    """
    connection = Connection(link)
    return connection.client, connection.server, connection
