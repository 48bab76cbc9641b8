"""A WebSocket client over a bot's stream, built on wsproto (runs on trio and asyncio).

No background task: whichever call needs data (`WebSocket.receive`,
`WebSocket.ping`, `WebSocket.aclose`) reads from the stream, answers pings,
queues messages and wakes the other waiting calls. So one task may receive
while another pings or sends.

Closing:
    When the peer closes, or the connection is lost, the next `receive` (after
    any queued messages) and every later call raise `ConnectionClosed`, which
    carries ``code`` and ``reason`` (1006 when the connection dropped without a
    close frame). It subclasses `trio_bots.ProtocolError`, so a close inside a
    ``bot.measure`` block counts as a failure. ``async for`` over a WebSocket
    ends quietly on a normal close (1000, 1001 or 1005) and raises otherwise.

Example:
    >>> import trio, trio_bots
    >>> from trio_bots.protocols import testing, websocket
    >>> async def worker(bot) -> None:
    ...     async with await websocket.connect(bot, f"ws://{bot.swarm.host}/chat") as ws:
    ...         await ws.send("hello")
    ...         async with bot.measure("echo"):
    ...             print(await ws.receive())
    >>> async def main():
    ...     async with testing.open_server(testing.websocket_echo) as host:
    ...         result = await trio_bots.swarm(worker, 1, host=host)
    ...     print(sorted(result.stats))
    >>> trio.run(main)
    hello
    ['WS connect /chat', 'echo']

The examples here run against `trio_bots.protocols.testing.websocket_echo`,
which sends every message back.
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Self

import anyio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .._errors import ConfigError, ProtocolError
from ._types import BotLike, ByteStream
from ._util import BROKEN, AsyncResource, aclose_forcefully, annotator, shown, split_url

__all__ = ["CLOSE_TIMEOUT", "ConnectionClosed", "WebSocket", "connect"]

CLOSE_TIMEOUT = 5.0
"""Seconds `WebSocket.aclose` waits for the peer's close frame before dropping the connection."""

_NORMAL = frozenset({1000, 1001, 1005})


class ConnectionClosed(ProtocolError):
    """The WebSocket is closed; ``code`` and ``reason`` say how.

    Codes: 1000 normal, 1001 going away, 1005 no code given, 1006 connection
    lost without a close frame, 1009 message too big; see RFC 6455, 7.4.

    Example:
        >>> err = ConnectionClosed(1001, "server restart")
        >>> err.code, err.reason, str(err)
        (1001, 'server restart', 'WebSocket closed with code 1001 (server restart)')
    """

    def __init__(self, code: int, reason: str = "") -> None:
        detail = f" ({reason})" if reason else ""
        super().__init__(f"WebSocket closed with code {code}{detail}")
        self.code = code
        self.reason = reason


class WebSocket(AsyncResource):
    """An open WebSocket connection; get one from `connect`.

    Attributes:
        url: the URL it connected to.
        subprotocol: the subprotocol the server chose, or None.
        closed: the `ConnectionClosed` describing the close, or None while open.

    Example:
        >>> import trio, trio_bots
        >>> from trio_bots.protocols import testing, websocket
        >>> async def worker(bot):
        ...     ws = await websocket.connect(bot, f"ws://{bot.swarm.host}/chat")
        ...     await ws.send(b"\\x01\\x02")
        ...     print(await ws.receive())  # bytes, because the server sent binary
        ...     await ws.aclose()
        ...     print(ws.closed)
        >>> async def main():
        ...     async with testing.open_server(testing.websocket_echo) as host:
        ...         await trio_bots.swarm(worker, 1, host=host)
        >>> trio.run(main)
        b'\\x01\\x02'
        WebSocket closed with code 1000
    """

    def __init__(
        self,
        stream: ByteStream,
        conn: WSConnection,
        *,
        url: str,
        subprotocol: str | None = None,
        max_message_size: int = 16 * 2**20,
    ) -> None:
        self.url = url
        self.subprotocol = subprotocol
        self.max_message_size = max_message_size
        self.closed: ConnectionClosed | None = None
        self._stream = stream
        #: The stream's ``annotate`` when the bot is traced (docs/traces.md), else None.
        self._annotate = annotator(stream)
        self._conn = conn
        self._messages: deque[str | bytes] = deque()
        self._parts: list[str | bytes] = []
        self._part_size = 0
        self._pings: dict[bytes, anyio.Event] = {}
        self._ping_count = 0
        self._reading = False
        self._progress: anyio.Event | None = None
        self._send_lock = anyio.Lock()
        self._stream_closed = False

    # -- public -------------------------------------------------------------------

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (str) or binary (bytes) message.

        Raises:
            ConnectionClosed: the connection is closed.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import testing, websocket
            >>> async def worker(bot):
            ...     ws = await websocket.connect(bot, f"ws://{bot.swarm.host}/chat")
            ...     await ws.send('{"op": "join"}')
            ...     print(await ws.receive())
            >>> async def main():
            ...     async with testing.open_server(testing.websocket_echo) as host:
            ...         await trio_bots.swarm(worker, 1, host=host)
            >>> trio.run(main)
            {"op": "join"}
        """
        if isinstance(message, str):
            await self._send(TextMessage(data=message))
        else:
            await self._send(BytesMessage(data=bytes(message)))

    async def receive(self) -> str | bytes:
        """Return the next whole message: str if sent as text, bytes if binary.

        Fragmented messages are reassembled; pings are answered on the way.

        Raises:
            ConnectionClosed: the peer closed the connection (or it was lost)
                and no message is left.
            ProtocolError: the peer broke the WebSocket protocol, or sent a
                message larger than ``max_message_size`` (closed with 1009).

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import testing, websocket
            >>> async def worker(bot):
            ...     ws = await websocket.connect(bot, f"ws://{bot.swarm.host}/chat")
            ...     for text in ("one", "two"):
            ...         await ws.send(text)
            ...     print(await ws.receive(), await ws.receive())
            >>> async def main():
            ...     async with testing.open_server(testing.websocket_echo) as host:
            ...         await trio_bots.swarm(worker, 1, host=host)
            >>> trio.run(main)
            one two
        """
        await self._wait_for(lambda: bool(self._messages) or self.closed is not None)
        if self._messages:
            return self._messages.popleft()
        raise self._closed_error()

    async def ping(self, payload: bytes | None = None) -> None:
        """Send a ping and wait for its pong.

        Args:
            payload: up to 125 bytes; by default a unique counter.

        Raises:
            ConnectionClosed: the connection closed before the pong came.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import testing, websocket
            >>> async def worker(bot):
            ...     ws = await websocket.connect(bot, f"ws://{bot.swarm.host}/chat")
            ...     async with bot.measure("ws ping"):
            ...         await ws.ping()
            >>> async def main():
            ...     async with testing.open_server(testing.websocket_echo) as host:
            ...         result = await trio_bots.swarm(worker, 1, host=host)
            ...     print(result.stats["ws ping"].count)
            >>> trio.run(main)
            1
        """
        if payload is None:
            self._ping_count += 1
            payload = self._ping_count.to_bytes(8, "big")
        if payload in self._pings:
            raise ConfigError(f"a ping with payload {payload!r} is already waiting for its pong")
        if len(payload) > 125:
            raise ConfigError(f"a ping payload holds at most 125 bytes, got {len(payload)}")
        answered = self._pings[payload] = anyio.Event()
        try:
            await self._send(Ping(payload=payload))
            await self._wait_for(lambda: answered.is_set() or self.closed is not None)
        finally:
            self._pings.pop(payload, None)
        if not answered.is_set():
            raise self._closed_error()

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``, wait for the peer's close frame, close the stream.

        The wait is bounded by `CLOSE_TIMEOUT` seconds. Closing twice is harmless.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import testing, websocket
            >>> async def worker(bot):
            ...     ws = await websocket.connect(bot, f"ws://{bot.swarm.host}/chat")
            ...     await ws.aclose(1001, "bot leaving")
            ...     print(ws.closed.code, ws.closed.reason)
            >>> async def main():
            ...     async with testing.open_server(testing.websocket_echo) as host:
            ...         await trio_bots.swarm(worker, 1, host=host)
            >>> trio.run(main)
            1001 bot leaving
        """
        try:
            if self._conn.state is ConnectionState.OPEN:
                self.closed = ConnectionClosed(code, reason)
                try:
                    await self._send(CloseConnection(code=code, reason=reason))
                except ConnectionClosed:
                    pass
                with anyio.move_on_after(CLOSE_TIMEOUT):
                    await self._wait_for(self._close_done)
        finally:
            await self._close_stream()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except ConnectionClosed as exc:
            if exc.code in _NORMAL:
                raise StopAsyncIteration from None
            raise

    def __repr__(self) -> str:
        state = "open" if self.closed is None else f"closed {self.closed.code}"
        return f"<WebSocket {self.url} {state}>"

    # -- machinery ------------------------------------------------------------------

    def _closed_error(self) -> ConnectionClosed:
        closed = self.closed or ConnectionClosed(1006, "connection lost")
        return ConnectionClosed(closed.code, closed.reason)  # a fresh traceback each time

    def _close_done(self) -> bool:
        return self._stream_closed or self._conn.state is ConnectionState.CLOSED

    async def _wait_for(self, ready: Callable[[], bool]) -> None:
        # One caller reads at a time; the others wait for it to make progress.
        while not ready():
            if self._reading:
                if self._progress is None:
                    self._progress = anyio.Event()
                await self._progress.wait()
                continue
            self._reading = True
            try:
                await self._read_once()
            finally:
                self._reading = False
                progress, self._progress = self._progress, None
                if progress is not None:
                    progress.set()

    async def _read_once(self) -> None:
        if self._stream_closed:
            self._lost("the stream is closed")
            return
        try:
            data: bytes | bytearray | None = await self._stream.receive_some()
        except BROKEN:
            data = b""
        try:
            self._conn.receive_data(bytes(data) if data else None)
            await self._process(self._conn.events())
        except RemoteProtocolError as exc:
            await self._fail(1002, f"the server broke the WebSocket protocol: {exc}")

    async def _process(self, events: Iterable[Event]) -> None:
        for event in events:
            if self._annotate is not None:
                self._annotate(_note("<", event))
            if isinstance(event, TextMessage):
                await self._collect(event.data, event.message_finished)
            elif isinstance(event, BytesMessage):
                await self._collect(bytes(event.data), event.message_finished)
            elif isinstance(event, Ping):
                try:
                    await self._send(event.response())
                except ConnectionClosed:
                    pass
            elif isinstance(event, Pong):
                self._pong(event.payload)
            elif isinstance(event, CloseConnection):
                if self.closed is None:
                    self.closed = ConnectionClosed(event.code, event.reason or "")
                if self._conn.state is ConnectionState.REMOTE_CLOSING:
                    try:
                        await self._send(event.response())
                    except ConnectionClosed:
                        pass
                await self._close_stream()

    async def _collect(self, data: str | bytes, finished: bool) -> None:
        if finished and not self._parts:  # the common case: a message in one frame
            if len(data) > self.max_message_size:
                await self._too_big(len(data))
            self._messages.append(data)
            return
        self._parts.append(data)
        self._part_size += len(data)
        if self._part_size > self.max_message_size:
            await self._too_big(self._part_size)
        if finished:
            parts, self._parts, self._part_size = self._parts, [], 0
            if isinstance(parts[0], str):
                self._messages.append("".join(p for p in parts if isinstance(p, str)))
            else:
                self._messages.append(b"".join(p for p in parts if isinstance(p, bytes)))

    async def _too_big(self, size: int) -> None:
        await self._fail(
            1009,
            f"the server sent a message of {size}+ bytes, more than "
            f"max_message_size={self.max_message_size}; raise max_message_size",
        )

    def _pong(self, payload: bytes) -> None:
        # A pong answers its ping and every ping sent before it (RFC 6455, 5.5.3).
        if payload in self._pings:
            for key in list(self._pings):
                self._pings.pop(key).set()
                if key == payload:
                    break

    async def _fail(self, code: int, message: str) -> None:
        self.closed = ConnectionClosed(code, message[:100])
        if self._conn.state is ConnectionState.OPEN:
            try:
                await self._send(CloseConnection(code=code, reason=message[:100]))
            except ConnectionClosed:
                pass
        await self._close_stream()
        raise ProtocolError(message)

    def _lost(self, why: str) -> None:
        if self.closed is None:
            self.closed = ConnectionClosed(1006, why)

    async def _send(self, event: Event) -> None:
        if self.closed is not None and not isinstance(event, CloseConnection):
            raise self._closed_error()
        async with self._send_lock:
            try:
                data = self._conn.send(event)
            except LocalProtocolError:
                self._lost("the connection is closed")
                raise self._closed_error() from None
            if self._stream_closed:
                raise self._closed_error()
            if self._annotate is not None:
                self._annotate(_note(">", event))
            try:
                await self._stream.send_all(data)
            except BROKEN:
                self._lost("connection lost while sending")
                await self._close_stream()
                raise self._closed_error() from None

    async def _close_stream(self) -> None:
        if not self._stream_closed:
            self._stream_closed = True
            self._lost("the stream is closed")
            await aclose_forcefully(self._stream)


async def connect(
    bot: BotLike,
    url: str,
    *,
    subprotocols: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    name: str | None = None,
    max_message_size: int = 16 * 2**20,
) -> WebSocket:
    """Open a WebSocket to ``url`` over ``bot.connect_tcp``; measured as ``"WS connect <path>"``.

    Args:
        bot: the bot that owns the connection and records the measurement.
        url: ``ws://host[:port]/path`` or ``wss://...``.
        subprotocols: the subprotocols to offer, in order of preference.
        headers: extra handshake headers, such as ``Authorization``.
        ssl_context: the client TLS context for ``wss://``; the bot's default otherwise.
        name: the metric name of the connection and handshake.
        max_message_size: the largest message `WebSocket.receive` accepts.

    Raises:
        trio_bots.ConfigError: the URL is not ws:// or wss://.
        trio_bots.ConnectError: the TCP or TLS connection failed.
        ProtocolError: the server refused the upgrade (the message names its
            HTTP status) or broke the handshake.

    Example:
        >>> import trio, trio_bots
        >>> from trio_bots.protocols import testing, websocket
        >>> async def worker(bot):
        ...     url = f"ws://{bot.swarm.host}/chat"
        ...     ws = await websocket.connect(bot, url, subprotocols=["chat.v2", "chat.v1"])
        ...     print(ws.subprotocol)  # websocket_echo takes the first one offered
        >>> async def main():
        ...     async with testing.open_server(testing.websocket_echo) as host:
        ...         await trio_bots.swarm(worker, 1, host=host)
        >>> trio.run(main)
        chat.v2
    """
    t = split_url(url, ("ws", "wss"))
    target = t.path or "/"
    extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    async with bot.measure(name or f"WS connect {target.partition('?')[0]}") as m:
        stream = await bot.connect_tcp(
            t.host,
            t.port,
            tls=t.tls,
            ssl_context=ssl_context,
            server_hostname=t.host if t.tls else None,
        )
        sent = received = 0
        try:
            conn = WSConnection(ConnectionType.CLIENT)
            request = Request(
                host=t.authority,
                target=target,
                subprotocols=list(subprotocols),
                extra_headers=extra,
            )
            data = conn.send(request)
            annotate = annotator(stream)
            if annotate is not None:
                annotate(f"ws > upgrade {url}")
            await stream.send_all(data)
            sent += len(data)
            while True:
                chunk = await stream.receive_some()
                if not chunk:
                    raise ProtocolError(
                        f"the server closed the connection during the WebSocket handshake "
                        f"with {url} after {received} bytes; is it a WebSocket endpoint?"
                    )
                received += len(chunk)
                conn.receive_data(bytes(chunk))
                events = conn.events()
                accepted = _handshake_result(events, url)
                if accepted is not None:
                    if annotate is not None:
                        annotate(f"ws < accepted, subprotocol {accepted.subprotocol!r}")
                    break
            ws = WebSocket(
                stream,
                conn,
                url=url,
                subprotocol=accepted.subprotocol,
                max_message_size=max_message_size,
            )
            await ws._process(events)  # messages that came with the handshake
        except RemoteProtocolError as exc:
            await aclose_forcefully(stream)
            raise ProtocolError(f"bad WebSocket handshake response from {url}: {exc}") from None
        except BaseException:
            await aclose_forcefully(stream)
            raise
        finally:
            m.add_bytes(sent, received)
    return ws


def _note(direction: str, event: Event) -> str:
    """A WebSocket event as a transcript note: ``ws > text 'hi'``, ``ws < close 1000 ''``."""
    if isinstance(event, TextMessage):
        end = "" if event.message_finished else " (continued)"
        return f"ws {direction} text {shown(event.data)!r}{end}"
    if isinstance(event, BytesMessage):
        end = "" if event.message_finished else " (continued)"
        return f"ws {direction} binary {len(event.data)} bytes{end}"
    if isinstance(event, CloseConnection):
        return f"ws {direction} close {event.code} {event.reason or ''!r}"
    if isinstance(event, Ping | Pong):
        return f"ws {direction} {type(event).__name__.lower()} {bytes(event.payload)!r}"
    return f"ws {direction} {type(event).__name__}"


def _handshake_result(events: Iterable[Event], url: str) -> AcceptConnection | None:
    # The AcceptConnection, or None for "need more data"; a refusal raises.
    for event in events:
        if isinstance(event, AcceptConnection):
            return event
        if isinstance(event, RejectConnection):
            raise ProtocolError(
                f"WebSocket handshake with {url} failed: the server answered HTTP "
                f"{event.status_code} instead of 101 Switching Protocols; check the URL path "
                "and that the server accepts WebSocket upgrades there"
            )
        if isinstance(event, RejectData):  # pragma: no cover - follows RejectConnection
            continue
    return None
