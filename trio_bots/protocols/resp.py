"""A small Redis client over a bot's stream: RESP2 commands, replies and pub/sub.

`connect` gives a `Client` bound to one bot. Each `Client.execute` is one
request, measured under the command's name (``"GET"``, ``"SET"``...), so a
swarm's report shows Redis latency per command.

Semantics:
    * Replies are plain values: a simple string is a `str`, an integer an
      `int`, a bulk string `bytes` (None for a nil), an array a `list`
      (None for a nil array).
    * An error reply (``-ERR ...``) is returned as an `Error`, never raised,
      and recorded as a failed request with the server's message.
    * A malformed or truncated reply raises `trio_bots.ProtocolError` inside
      the measurement, so it counts as a failure; the connection is then
      dropped and the next command opens a new one.
    * After `Client.subscribe`, the connection is in Redis's subscribed mode:
      `Client.receive_message` gives the published messages, and other
      commands raise `trio_bots.ConfigError` (use a second client for them).

Example:
    >>> import trio, trio_bots
    >>> from trio_bots.protocols import resp, testing
    >>> resp.encode("SET", "greeting", "hi")
    b'*3\\r\\n$3\\r\\nSET\\r\\n$8\\r\\ngreeting\\r\\n$2\\r\\nhi\\r\\n'
    >>> async def worker(bot):
    ...     redis = await resp.connect(bot, f"redis://{bot.swarm.host}")
    ...     await redis.execute("SET", "greeting", "hi")
    ...     print(await redis.execute("GET", "greeting"))
    >>> async def main():
    ...     async with testing.open_server(testing.FakeRedis().handle) as host:
    ...         result = await trio_bots.swarm(worker, 1, host=host)
    ...     print(sorted(result.stats))
    >>> trio.run(main)
    b'hi'
    ['GET', 'SET']

The examples here run against `trio_bots.protocols.testing.FakeRedis`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TypeAlias

import anyio

from .._errors import ConfigError, ProtocolError
from ._types import BotLike
from ._util import AsyncResource, ConflictDetector, aclose_forcefully, shown, split_url
from .framing import Buffered

__all__ = ["Client", "Error", "Message", "Reply", "connect", "encode", "read_reply"]

MAX_LINE = 64 * 1024  # the longest simple string, error or length line
MAX_BULK = 512 * 2**20  # Redis's own limit on a bulk string
MAX_DEPTH = 32  # nested arrays

Arg: TypeAlias = str | bytes | bytearray | memoryview | int | float
Reply: TypeAlias = "str | int | bytes | list[Reply] | Error | None"

_SUBSCRIBED_OK = frozenset({b"SUBSCRIBE", b"PSUBSCRIBE", b"UNSUBSCRIBE", b"PUNSUBSCRIBE", b"PING"})


@dataclass(frozen=True)
class Error:
    """An error reply from the server, such as ``WRONGTYPE Operation against a key ...``.

    Example:
        >>> Error("WRONGTYPE Operation against a key holding the wrong kind of value").kind
        'WRONGTYPE'
    """

    message: str

    @property
    def kind(self) -> str:
        """The error's first word, by Redis's convention its type (``ERR``, ``WRONGTYPE``...)."""
        return self.message.split(" ", 1)[0]


@dataclass(frozen=True)
class Message:
    """A message published on a channel the client subscribed to.

    ``pattern`` is the matching pattern for a ``PSUBSCRIBE``, else None.

    Example:
        >>> Message(b"news", b"hello").data
        b'hello'
    """

    channel: bytes
    data: bytes
    pattern: bytes | None = None


def encode(*args: Arg) -> bytes:
    """One command as RESP: an array of bulk strings.

    Strings are sent as UTF-8 and numbers in decimal.

    Raises:
        ConfigError: no argument, or one that is not a str, bytes or number.

    Example:
        >>> encode("INCRBY", "hits", 5)
        b'*3\\r\\n$6\\r\\nINCRBY\\r\\n$4\\r\\nhits\\r\\n$1\\r\\n5\\r\\n'
    """
    if not args:
        raise ConfigError("a Redis command needs at least its name, such as encode('PING')")
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _arg_bytes(arg)
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(parts)


def _arg_bytes(arg: Arg) -> bytes:
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bytes | bytearray | memoryview):
        return bytes(arg)
    if isinstance(arg, int | float) and not isinstance(arg, bool):
        return repr(arg).encode()
    raise ConfigError(
        f"Redis arguments are str, bytes, int or float, got {type(arg).__name__} {arg!r}"
    )


async def read_reply(buffered: Buffered, *, _depth: int = 0) -> Reply:
    """Read one complete reply from ``buffered``.

    Raises:
        ProtocolError: the bytes are not RESP2, or the stream ended inside a reply.
        anyio.EndOfStream: the stream ended cleanly before the reply began.

    Example:
        >>> import trio, trio.testing
        >>> async def main():
        ...     a, b = trio.testing.memory_stream_pair()
        ...     await a.send_all(b"*2\\r\\n:1\\r\\n$-1\\r\\n")
        ...     print(await read_reply(Buffered(b)))
        >>> trio.run(main)
        [1, None]
    """
    try:
        line = await buffered.receive_until(b"\r\n", max_bytes=MAX_LINE)
    except anyio.EndOfStream:
        if _depth:
            raise ProtocolError(
                "the server closed the connection in the middle of an array"
            ) from None
        raise
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode("utf-8", "replace")
    if kind == b"-":
        return Error(rest.decode("utf-8", "replace"))
    if kind == b":":
        return _integer(rest, line)
    if kind == b"$":
        size = _integer(rest, line)
        if size == -1:
            return None
        if not 0 <= size <= MAX_BULK:
            raise ProtocolError(
                f"bad bulk string length {size} in {line[:40]!r}; expected 0 to {MAX_BULK}"
            )
        try:
            data = await buffered.receive_exactly(size + 2)
        except (anyio.EndOfStream, ProtocolError):  # ProtocolError: EOF after part of it
            raise ProtocolError(
                f"the server closed the connection before a {size}-byte bulk string"
            ) from None
        if data[-2:] != b"\r\n":
            raise ProtocolError(f"a {size}-byte bulk string is not followed by CRLF: {data[-8:]!r}")
        return data[:-2]
    if kind == b"*":
        count = _integer(rest, line)
        if count == -1:
            return None
        if count < 0:
            raise ProtocolError(f"bad array length {count} in {line[:40]!r}")
        if _depth >= MAX_DEPTH:
            raise ProtocolError(f"arrays nested deeper than {MAX_DEPTH}; the reply looks corrupt")
        return [await read_reply(buffered, _depth=_depth + 1) for _ in range(count)]
    raise ProtocolError(
        f"expected a RESP2 reply (+ - : $ *), got {line[:40]!r}; is this a Redis server?"
    )


def _integer(text: bytes, line: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise ProtocolError(f"expected an integer in the reply line {line[:40]!r}") from None


class Client(AsyncResource):
    """A Redis connection bound to one bot; get one from `connect`.

    It is an async context manager; leaving it closes the connection.

    Attributes:
        url: the URL given to `connect`.
        connections: how many connections it has opened so far.
        subscriptions: the channels and patterns subscribed to, as bytes.

    Example:
        >>> import trio, trio_bots
        >>> from trio_bots.protocols import resp, testing
        >>> async def worker(bot):
        ...     async with await resp.connect(bot, f"redis://{bot.swarm.host}") as redis:
        ...         print(await redis.execute("INCR", "hits"), await redis.execute("INCR", "hits"))
        >>> async def main():
        ...     async with testing.open_server(testing.FakeRedis().handle) as host:
        ...         await trio_bots.swarm(worker, 1, host=host)
        >>> trio.run(main)
        1 2
    """

    def __init__(self, bot: BotLike, url: str = "redis://127.0.0.1:6379") -> None:
        target = split_url(url, ("redis",))
        db = target.path.strip("/")
        if db and not db.isdigit():
            raise ConfigError(
                f"the path of {url!r} must be a database number, such as redis://HOST:PORT/0"
            )
        self.url = url
        self._host = target.host
        self._port = target.port
        self._db = int(db) if db else None
        self._bot = bot
        self._buffered: Buffered | None = None
        self._pending: deque[Message] = deque()
        self._guard = ConflictDetector("Redis client", "await resp.connect(...)")
        self.connections = 0
        self.subscriptions: set[bytes] = set()

    async def execute(self, *args: Arg, name: str | None = None) -> Reply:
        """Send one command and return its reply, measured under ``name`` or the command.

        Args:
            *args: the command and its arguments, such as ``"SET", "k", "v"``.
            name: the metric name; the command in capitals by default.

        Raises:
            ProtocolError: a malformed or truncated reply (counted as a failure).
            trio_bots.ConnectError: reconnecting failed (counted as a failure).
            ConfigError: a command other than (un)subscribe or PING while subscribed.
            trio.BusyResourceError: another task is using this client.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import resp, testing
            >>> async def worker(bot):
            ...     redis = await resp.connect(bot, f"redis://{bot.swarm.host}")
            ...     print(await redis.execute("PING"))
            ...     print(await redis.execute("NOPE"))  # an error reply is returned, not raised
            >>> async def main():
            ...     async with testing.open_server(testing.FakeRedis().handle) as host:
            ...         result = await trio_bots.swarm(worker, 1, host=host)
            ...     print(result.stats["NOPE"].failure_count)
            >>> trio.run(main)
            PONG
            Error(message="ERR unknown command 'NOPE'")
            1
        """
        payload = encode(*args)
        command = _arg_bytes(args[0])
        if self.subscriptions and command.upper() not in _SUBSCRIBED_OK:
            raise ConfigError(
                f"this client is subscribed, so Redis only accepts (P)SUBSCRIBE, (P)UNSUBSCRIBE "
                f"and PING on it, not {command.decode(errors='replace')}; open a second client"
            )
        async with self._bot.measure(name or command.decode(errors="replace").upper()) as m:
            reply = await self._exchange(payload, command, args)
            if isinstance(reply, Error):
                m.fail(reply.message)
        return reply

    async def subscribe(self, *channels: str | bytes, pattern: bool = False) -> None:
        """Subscribe to ``channels`` (patterns with ``pattern=True``), measured as ``SUBSCRIBE``.

        It returns once the server has confirmed every channel.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import resp, testing
            >>> async def worker(bot):
            ...     redis = await resp.connect(bot, f"redis://{bot.swarm.host}")
            ...     await redis.subscribe("news", "sport")
            ...     print(sorted(redis.subscriptions))
            >>> async def main():
            ...     async with testing.open_server(testing.FakeRedis().handle) as host:
            ...         result = await trio_bots.swarm(worker, 1, host=host)
            ...     print(result.stats["SUBSCRIBE"].count)
            >>> trio.run(main)
            [b'news', b'sport']
            1
        """
        if not channels:
            raise ConfigError("subscribe() needs at least one channel")
        command = b"PSUBSCRIBE" if pattern else b"SUBSCRIBE"
        names = [c.encode() if isinstance(c, str) else bytes(c) for c in channels]
        async with self._bot.measure(command.decode()) as m:
            with self._guard:
                buffered = await self._stream()
                try:
                    if buffered.annotate is not None:
                        buffered.annotate(f"resp > {shown(b' '.join([command, *names]))}")
                    await buffered.send_all(encode(command, *names))
                    confirmed = 0
                    while confirmed < len(names):
                        reply = await self._next_reply(buffered, command)
                        if isinstance(reply, Error):
                            m.fail(reply.message)
                            return
                        if self._queue_message(reply):
                            continue
                        if not (isinstance(reply, list) and reply[:1] == [command.lower()]):
                            raise ProtocolError(
                                f"expected a {command.decode()} confirmation, got {reply!r:.60}"
                            )
                        self.subscriptions.add(
                            bytes(reply[1]) if isinstance(reply[1], bytes) else b""
                        )
                        confirmed += 1
                except BaseException:
                    await self._discard()
                    raise

    async def receive_message(self) -> Message:
        """Wait for the next message published on a subscribed channel.

        Raises:
            ConfigError: the client has no subscription.
            ProtocolError: the connection ended or sent something malformed.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import resp, testing
            >>> async def worker(bot):
            ...     url = f"redis://{bot.swarm.host}"
            ...     sub, pub = await resp.connect(bot, url), await resp.connect(bot, url)
            ...     await sub.subscribe("news", "sport")
            ...     print(await pub.execute("PUBLISH", "sport", "goal"))  # how many got it
            ...     message = await sub.receive_message()
            ...     print(message.channel, message.data)
            >>> async def main():
            ...     async with testing.open_server(testing.FakeRedis().handle) as host:
            ...         await trio_bots.swarm(worker, 1, host=host)
            >>> trio.run(main)
            1
            b'sport' b'goal'
        """
        if self._pending:
            return self._pending.popleft()
        if not self.subscriptions or self._buffered is None:
            raise ConfigError("receive_message() needs a subscription; call subscribe() first")
        with self._guard:
            buffered = self._buffered
            try:
                while True:
                    reply = await self._next_reply(buffered, b"a subscribed message")
                    if buffered.annotate is not None:
                        buffered.annotate(f"resp < {shown(repr(reply))}")
                    if self._queue_message(reply):
                        return self._pending.popleft()
            except BaseException:
                await self._discard()
                raise

    # -- internals ----------------------------------------------------------------

    def _queue_message(self, reply: Reply) -> bool:
        if not isinstance(reply, list) or not reply or not all(isinstance(x, bytes) for x in reply):
            return False
        kind = reply[0]
        if kind == b"message" and len(reply) == 3:
            self._pending.append(Message(reply[1], reply[2]))  # type: ignore[arg-type]
        elif kind == b"pmessage" and len(reply) == 4:
            self._pending.append(Message(reply[2], reply[3], reply[1]))  # type: ignore[arg-type]
        else:
            return False
        return True

    async def _exchange(self, payload: bytes, command: bytes, args: tuple[Arg, ...]) -> Reply:
        with self._guard:
            buffered = await self._stream()
            annotate = buffered.annotate
            try:
                if annotate is not None:
                    annotate(f"resp > {shown(b' '.join(_arg_bytes(a) for a in args))}")
                await buffered.send_all(payload)
                reply = await self._next_reply(buffered, command)
                if annotate is not None:
                    annotate(f"resp < {shown(repr(reply))}")
                return reply
            except BaseException:  # a reply may still be on its way: never reuse the connection
                await self._discard()
                raise

    async def _next_reply(self, buffered: Buffered, what: bytes) -> Reply:
        try:
            return await read_reply(buffered)
        except anyio.EndOfStream:
            raise ProtocolError(
                f"the server closed the connection before answering {what.decode(errors='replace')}"
            ) from None

    async def _stream(self) -> Buffered:
        if self._buffered is None:
            stream = await self._bot.connect_tcp(self._host, self._port)
            self.connections += 1
            self._buffered = Buffered(stream)
            if self._db is not None:
                await self._buffered.send_all(encode("SELECT", self._db))
                reply = await self._next_reply(self._buffered, b"SELECT")
                if reply != "OK":
                    raise ProtocolError(f"SELECT {self._db} failed: {reply!r:.80}")
        return self._buffered

    async def _discard(self) -> None:
        buffered, self._buffered = self._buffered, None
        self.subscriptions.clear()
        if buffered is not None:
            await aclose_forcefully(buffered.stream)

    async def aclose(self) -> None:
        """Close the connection; the next command would open a new one.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import resp, testing
            >>> async def worker(bot):
            ...     redis = await resp.connect(bot, f"redis://{bot.swarm.host}")
            ...     await redis.aclose()
            ...     await redis.execute("PING")  # on a second connection
            ...     print(redis.connections)
            >>> async def main():
            ...     async with testing.open_server(testing.FakeRedis().handle) as host:
            ...         await trio_bots.swarm(worker, 1, host=host)
            >>> trio.run(main)
            2
        """
        buffered, self._buffered = self._buffered, None
        self.subscriptions.clear()
        if buffered is not None:
            await buffered.aclose()

    def __repr__(self) -> str:
        state = "connected" if self._buffered is not None else "idle"
        return f"<resp.Client {self.url} {state}, {len(self.subscriptions)} subscriptions>"


async def connect(bot: BotLike, url: str = "redis://127.0.0.1:6379") -> Client:
    """Open a Redis client to ``url`` over ``bot.connect_tcp``.

    Args:
        bot: the bot that owns the connection and records the measurements.
        url: ``redis://host[:port][/db]``; port 6379 by default.

    Raises:
        trio_bots.ConfigError: the URL is not redis://.
        trio_bots.ConnectError: the connection failed.

    Example:
        >>> import trio, trio_bots
        >>> from trio_bots.protocols import resp, testing
        >>> server = testing.FakeRedis()
        >>> async def worker(bot):
        ...     redis = await resp.connect(bot, f"redis://{bot.swarm.host}/1")  # database 1
        ...     await redis.execute("SET", "k", "v")
        >>> async def main():
        ...     async with testing.open_server(server.handle) as host:
        ...         await trio_bots.swarm(worker, 1, host=host)
        >>> trio.run(main)
        >>> server.databases[1]
        {b'k': b'v'}
    """
    client = Client(bot, url)
    await client._stream()
    return client
