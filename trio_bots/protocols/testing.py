"""Small loopback servers that speak the protocols, to try bot code without a real server.

`open_server` runs a connection handler on a free port of 127.0.0.1 for the
length of an ``async with`` block and gives its ``HOST:PORT``. The handlers:

* `http_echo` answers every HTTP/1.1 request with 200 and a JSON description
  of it (``method``, ``target``, ``headers``, ``body``), keeping the
  connection alive;
* `websocket_echo` accepts a WebSocket upgrade (choosing the first
  subprotocol offered) and sends every message back;
* `FakeRedis` runs PING, ECHO, SET, GET, INCR, DEL, SELECT, SUBSCRIBE and
  PUBLISH on in-memory databases that its connections share.

They run on trio and asyncio alike. They are as small as an example needs:
use the real servers to measure anything.

Example:
    >>> import trio, trio_bots
    >>> from trio_bots.protocols import http, testing
    >>> async def worker(bot):
    ...     client = await http.connect(bot, f"http://{bot.swarm.host}")
    ...     print((await client.get("/hello?lang=en")).json()["target"])
    >>> async def main():
    ...     async with testing.open_server(testing.http_echo) as host:
    ...         await trio_bots.swarm(worker, 1, host=host)
    >>> trio.run(main)
    /hello?lang=en
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httptools
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from .._errors import ProtocolError
from ._types import ByteStream
from ._util import BROKEN
from .framing import Buffered
from .resp import Error, Reply, read_reply

__all__ = ["FakeRedis", "Handler", "http_echo", "open_server", "websocket_echo"]

Handler = Callable[[ByteStream], Awaitable[None]]
"""What `open_server` runs for each connection: ``async def handler(stream)``."""


class _Connection:
    """An anyio byte stream seen as a `ByteStream`; several tasks may send on it."""

    __slots__ = ("_lock", "_stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self._lock = anyio.Lock()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        async with self._lock:
            await self._stream.send(bytes(data))

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            return await self._stream.receive(max_bytes or 65536)
        except anyio.EndOfStream:
            return b""

    async def aclose(self) -> None:
        await self._stream.aclose()


@asynccontextmanager
async def open_server(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1 until the block ends; gives ``HOST:PORT``.

    A connection that the client resets, or on which it sends bytes the
    handler cannot parse, is closed quietly; any other error in a handler
    ends the block with it.

    Example:
        >>> import anyio
        >>> async def hello(stream):
        ...     await stream.send_all(b"hello\\n")
        >>> async def main():
        ...     async with open_server(hello) as host:
        ...         name, port = host.split(":")
        ...         async with await anyio.connect_tcp(name, int(port)) as client:
        ...             print(await client.receive())
        >>> anyio.run(main)
        b'hello\\n'
    """

    async def serve(stream: anyio.abc.ByteStream) -> None:
        connection = _Connection(stream)
        try:
            await handler(connection)
        except (*BROKEN, anyio.ClosedResourceError, ProtocolError):
            pass  # the client vanished or spoke gibberish: drop it, serve the others
        finally:
            await anyio.aclose_forcefully(stream)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        try:
            yield f"127.0.0.1:{port}"
        finally:
            tg.cancel_scope.cancel()


# -- HTTP ----------------------------------------------------------------------------------


class _Requests:
    """httptools callbacks: the requests completed so far on one connection."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.done: list[tuple[bytes, bool, dict[str, object]]] = []
        self._start()

    def _start(self) -> None:
        self.target = b""
        self.headers: dict[str, str] = {}
        self.body = b""

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        described: dict[str, object] = {
            "method": method.decode("ascii"),
            "target": self.target.decode("latin-1"),
            "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
        }
        self.done.append((method, self.parser.should_keep_alive(), described))
        self._start()


async def http_echo(stream: ByteStream) -> None:
    """Answer each HTTP/1.1 request on ``stream`` with 200 and a JSON description of it.

    The JSON object holds ``method``, ``target`` (path and query),
    ``headers`` (names in lower case) and ``body`` (as text). A HEAD request
    gets the headers only. The connection stays open unless the client asks
    to close it.

    Example:
        >>> import trio, trio.testing
        >>> async def main():
        ...     client, server = trio.testing.memory_stream_pair()
        ...     await client.send_all(b"DELETE /items/1 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        ...     await client.send_eof()
        ...     await http_echo(server)
        ...     print(bytes(await client.receive_some()).decode().splitlines()[-1])
        >>> trio.run(main)
        {"method": "DELETE", "target": "/items/1", "headers": {"host": "x"}, "body": ""}
    """
    requests = _Requests()
    while True:
        data = await stream.receive_some()
        if not data:
            return
        try:
            requests.parser.feed_data(bytes(data))
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            raise ProtocolError(f"http_echo got a request it cannot answer: {exc!r}") from None
        for method, keep_alive, described in requests.done:
            body = json.dumps(described).encode()
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n%s\r\n"
                % (len(body), b"" if keep_alive else b"Connection: close\r\n")
            )
            await stream.send_all(head if method == b"HEAD" else head + body)
            if not keep_alive:
                return
        requests.done.clear()


# -- WebSocket -----------------------------------------------------------------------------


async def websocket_echo(stream: ByteStream) -> None:
    """Accept a WebSocket upgrade on ``stream`` and send every message back, as it came.

    It chooses the first subprotocol the client offers, answers pings, and
    answers a close with a close.

    Example:
        >>> import trio, trio_bots
        >>> from trio_bots.protocols import websocket
        >>> async def worker(bot):
        ...     async with await websocket.connect(bot, f"ws://{bot.swarm.host}/") as ws:
        ...         await ws.send(b"\\x00\\x01")
        ...         print(await ws.receive())
        >>> async def main():
        ...     async with open_server(websocket_echo) as host:
        ...         await trio_bots.swarm(worker, 1, host=host)
        >>> trio.run(main)
        b'\\x00\\x01'
    """
    conn = WSConnection(ConnectionType.SERVER)
    while conn.state is not ConnectionState.CLOSED:
        data = await stream.receive_some()
        try:
            conn.receive_data(bytes(data) if data else None)
            out = b""
            for event in conn.events():
                if isinstance(event, Request):
                    chosen = event.subprotocols[0] if event.subprotocols else None
                    out += conn.send(AcceptConnection(subprotocol=chosen))
                elif isinstance(event, TextMessage | BytesMessage):
                    out += conn.send(event)
                elif isinstance(event, Ping):
                    out += conn.send(event.response())
                elif isinstance(event, CloseConnection):
                    if conn.state is ConnectionState.REMOTE_CLOSING:
                        out += conn.send(event.response())
        except RemoteProtocolError as exc:
            raise ProtocolError(f"websocket_echo got a bad WebSocket frame: {exc}") from None
        if out:
            await stream.send_all(out)
        if not data:
            return


# -- Redis ---------------------------------------------------------------------------------


def _reply_bytes(reply: Reply) -> bytes:
    if isinstance(reply, Error):
        return b"-%s\r\n" % reply.message.encode()
    if isinstance(reply, str):
        return b"+%s\r\n" % reply.encode()
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, bytes):
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
    if reply is None:
        return b"$-1\r\n"
    return b"*%d\r\n" % len(reply) + b"".join(_reply_bytes(item) for item in reply)


_ARITY = {  # command: (fewest, most) arguments after its name; None: no limit
    b"PING": (0, 1),
    b"ECHO": (1, 1),
    b"SET": (2, 2),
    b"GET": (1, 1),
    b"INCR": (1, 1),
    b"DEL": (1, None),
    b"SELECT": (1, 1),
    b"SUBSCRIBE": (1, None),
    b"PUBLISH": (2, 2),
}


class FakeRedis:
    """A few Redis commands on in-memory databases, shared by all its connections.

    It runs PING, ECHO, SET (without options), GET, INCR, DEL, SELECT,
    SUBSCRIBE and PUBLISH as Redis does, and answers anything else with an
    ``ERR`` reply. Serve it with ``open_server(FakeRedis().handle)``.

    Attributes:
        databases: database number -> its keys and values, as bytes.

    Example:
        >>> import trio, trio.testing
        >>> from trio_bots.protocols import resp
        >>> async def main():
        ...     client, server = trio.testing.memory_stream_pair()
        ...     redis = FakeRedis()
        ...     await client.send_all(resp.encode("SET", "k", "v") + resp.encode("INCR", "k"))
        ...     await client.send_eof()
        ...     await redis.handle(server)
        ...     print(bytes(await client.receive_some()), redis.databases[0])
        >>> trio.run(main)
        b'+OK\\r\\n-ERR value is not an integer or out of range\\r\\n' {b'k': b'v'}
    """

    def __init__(self) -> None:
        self.databases: defaultdict[int, dict[bytes, bytes]] = defaultdict(dict)
        self._channels: defaultdict[bytes, set[ByteStream]] = defaultdict(set)

    async def handle(self, stream: ByteStream) -> None:
        """Serve one connection until the client closes it.

        Raises:
            ProtocolError: the client sent something else than RESP commands.

        Example:
            >>> import trio, trio.testing
            >>> async def main():
            ...     client, server = trio.testing.memory_stream_pair()
            ...     await client.send_all(b"*1\\r\\n$4\\r\\nPING\\r\\n")
            ...     await client.send_eof()
            ...     await FakeRedis().handle(server)
            ...     print(bytes(await client.receive_some()))
            >>> trio.run(main)
            b'+PONG\\r\\n'
        """
        buffered = Buffered(stream)
        db = 0
        subscribed: set[bytes] = set()
        try:
            while True:
                try:
                    command = await read_reply(buffered)
                except anyio.EndOfStream:
                    return
                if not (isinstance(command, list) and command):
                    raise ProtocolError(f"expected a command, an array, got {command!r:.60}")
                args = [arg for arg in command if isinstance(arg, bytes)]
                if len(args) != len(command):
                    raise ProtocolError(f"expected bulk strings in a command, got {command!r:.60}")
                name = args.pop(0).upper()
                error = _misuse(name, args, subscribed)
                replies: list[Reply]
                if error is not None:
                    replies = [error]
                elif name == b"SELECT":
                    db = int(args[0])
                    replies = ["OK"]
                elif name == b"SUBSCRIBE":
                    replies = []
                    for channel in args:
                        subscribed.add(channel)
                        self._channels[channel].add(stream)
                        replies.append([b"subscribe", channel, len(subscribed)])
                else:
                    replies = [await self._run(name, args, self.databases[db])]
                await stream.send_all(b"".join(_reply_bytes(reply) for reply in replies))
        finally:
            for channel in subscribed:
                self._channels[channel].discard(stream)

    async def _run(self, name: bytes, args: list[bytes], keys: dict[bytes, bytes]) -> Reply:
        if name == b"PING":
            return args[0] if args else "PONG"
        if name == b"ECHO":
            return args[0]
        if name == b"SET":
            keys[args[0]] = args[1]
            return "OK"
        if name == b"GET":
            return keys.get(args[0])
        if name == b"INCR":
            try:
                value = int(keys.get(args[0], b"0")) + 1
            except ValueError:
                return Error("ERR value is not an integer or out of range")
            keys[args[0]] = b"%d" % value
            return value
        if name == b"DEL":
            return sum(keys.pop(key, None) is not None for key in args)
        # PUBLISH
        receivers = list(self._channels.get(args[0], ()))
        message = _reply_bytes([b"message", args[0], args[1]])
        for receiver in receivers:
            try:
                await receiver.send_all(message)
            except (*BROKEN, anyio.ClosedResourceError):
                pass  # its own handler notices and forgets it
        return len(receivers)


def _misuse(name: bytes, args: list[bytes], subscribed: set[bytes]) -> Error | None:
    # The error reply Redis would give before running the command, or None.
    shown = name.decode(errors="replace")
    arity = _ARITY.get(name)
    if arity is None:
        return Error(f"ERR unknown command '{shown}'")
    fewest, most = arity
    if len(args) < fewest or (most is not None and len(args) > most):
        return Error(f"ERR wrong number of arguments for '{shown.lower()}' command")
    if subscribed and name not in (b"SUBSCRIBE", b"PING"):
        return Error(f"ERR only SUBSCRIBE and PING are allowed while subscribed, not {shown}")
    if name == b"SELECT" and not args[0].isdigit():
        return Error("ERR DB index is out of range")
    return None
