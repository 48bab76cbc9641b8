"""The RESP (Redis) client: encoding, parsing, scripted bad servers, and a real redis-server."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import pytest
import trio
import trio.testing
from _fakebot import FakeBot, open_fake_bot
from _servers import open_raw_server
from _services import service_address

from trio_bots import ConfigError, ConnectError, ProtocolError
from trio_bots.protocols import http, resp, websocket
from trio_bots.protocols.framing import Buffered


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def redis_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from service_address("redis", tmp_path_factory)


class Chunks:
    """A ByteStream that receives the given chunks, one per receive_some, then EOF."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return self.chunks.pop(0) if self.chunks else b""

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def parse(*chunks: bytes) -> resp.Reply:
    with trio.fail_after(5):
        return await resp.read_reply(Buffered(Chunks(*chunks)))


# -- encoding and parsing ---------------------------------------------------------------


def test_encode_sends_every_argument_as_a_bulk_string() -> None:
    assert resp.encode("GET", b"k\r\n", bytearray(b"x"), 7, 1.5) == (
        b"*5\r\n$3\r\nGET\r\n$3\r\nk\r\n\r\n$1\r\nx\r\n$1\r\n7\r\n$3\r\n1.5\r\n"
    )
    assert resp.encode("SET", "é", "") == b"*3\r\n$3\r\nSET\r\n$2\r\n\xc3\xa9\r\n$0\r\n\r\n"
    with pytest.raises(ConfigError, match="at least its name"):
        resp.encode()
    with pytest.raises(ConfigError, match="got bool True"):
        resp.encode("SET", "k", True)  # a bool is an int to mypy
    with pytest.raises(ConfigError, match="got NoneType"):
        resp.encode("GET", None)  # type: ignore[arg-type]


REPLIES: list[tuple[bytes, resp.Reply]] = [
    (b"+OK\r\n", "OK"),
    (b"-WRONGTYPE Operation against a key\r\n", resp.Error("WRONGTYPE Operation against a key")),
    (b":-42\r\n", -42),
    (b"$5\r\nhe\r\no\r\n", b"he\r\no"),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n$1\r\nz\r\n", [1, ["a", None], b"z"]),
]


@pytest.mark.trio
@pytest.mark.parametrize(("wire", "value"), REPLIES)
async def test_every_reply_type_parses_however_it_is_split(wire: bytes, value: resp.Reply) -> None:
    assert await parse(wire) == value
    for cut in range(1, len(wire)):
        assert await parse(wire[:cut], wire[cut:]) == value, cut
    assert await parse(*[wire[i : i + 1] for i in range(len(wire))]) == value


def test_error_kind() -> None:
    assert resp.Error("ERR unknown command 'FOO'").kind == "ERR"


MALFORMED = [
    (b"HTTP/1.1 200 OK\r\n", "expected a RESP2 reply .* is this a Redis server"),
    (b":12a\r\n", "expected an integer"),
    (b"$-2\r\n", "bad bulk string length -2"),
    (b"$3\r\nabcde\r\n", "not followed by CRLF"),
    (b"$10\r\nabc", "before a 10-byte bulk string"),
    (b"*-5\r\n", "bad array length -5"),
    (b"*2\r\n:1\r\n", "in the middle of an array"),
    (b"*1\r\n" * 40, "nested deeper than 32"),
    (b"+" + b"x" * (resp.MAX_LINE + 10) + b"\r\n", "frame longer than max_bytes"),
    (b"+OK", "partial frame"),
]


@pytest.mark.trio
@pytest.mark.parametrize(("wire", "message"), MALFORMED)
async def test_malformed_replies_raise_protocol_error(wire: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        await parse(wire)


@pytest.mark.trio
async def test_a_clean_end_of_stream_before_a_reply_is_end_of_stream() -> None:
    with pytest.raises(anyio.EndOfStream):
        await parse()


# -- the client against scripted servers --------------------------------------------------


async def read_command(stream: anyio.abc.ByteStream, buffered: list[bytes]) -> list[bytes]:
    """Read one RESP command (an array of bulk strings) sent by the client."""
    data = buffered[0] if buffered else b""

    async def line() -> bytes:
        nonlocal data
        while b"\r\n" not in data:
            data += await stream.receive()
        head, _, data = data.partition(b"\r\n")
        return head

    count = int((await line())[1:])
    args = []
    for _ in range(count):
        size = int((await line())[1:])
        while len(data) < size + 2:
            data += await stream.receive()
        args.append(data[:size])
        data = data[size + 2 :]
    buffered[:] = [data]
    return args


@pytest.mark.anyio
async def test_execute_measures_each_command_and_counts_error_replies_as_failures() -> None:
    seen: list[list[bytes]] = []

    async def script(stream: anyio.abc.ByteStream) -> None:
        rest: list[bytes] = []
        replies = [b"+OK\r\n", b"$2\r\nhi\r\n", b"-ERR wrong number of arguments\r\n", b":3\r\n"]
        for reply in replies:
            seen.append(await read_command(stream, rest))
            await stream.send(reply)
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with open_raw_server(script) as server, open_fake_bot() as bot:
            redis = await resp.connect(bot, f"redis://127.0.0.1:{server.port}")
            assert await redis.execute("SET", "k", "hi") == "OK"
            assert await redis.execute("get", "k") == b"hi"
            error = await redis.execute("SET", "k")
            assert error == resp.Error("ERR wrong number of arguments")
            assert await redis.execute("INCR", "n", name="counter") == 3
    assert seen == [[b"SET", b"k", b"hi"], [b"get", b"k"], [b"SET", b"k"], [b"INCR", b"n"]]
    assert bot.names == ["SET", "GET", "SET", "counter"]
    assert [(r.failed, r.reason) for r in bot.records][2] == (
        True,
        "ERR wrong number of arguments",
    )
    assert len(bot.failures) == 1
    assert server.connections == 1


@pytest.mark.anyio
async def test_a_malformed_reply_fails_the_request_and_the_next_one_reconnects() -> None:
    async def script(stream: anyio.abc.ByteStream) -> None:
        rest: list[bytes] = []
        await read_command(stream, rest)
        if script.calls == 0:  # type: ignore[attr-defined]
            script.calls += 1  # type: ignore[attr-defined]
            await stream.send(b"$5\r\nab")  # a truncated bulk string, then the end
            return
        await stream.send(b"+PONG\r\n")
        await anyio.sleep_forever()

    script.calls = 0  # type: ignore[attr-defined]
    with anyio.fail_after(10):
        async with open_raw_server(script) as server, open_fake_bot() as bot:
            redis = await resp.connect(bot, f"redis://127.0.0.1:{server.port}")
            with pytest.raises(ProtocolError, match="before a 5-byte bulk string"):
                await redis.execute("GET", "k")
            assert await redis.execute("PING") == "PONG"
    assert [(r.name, r.failed) for r in bot.records] == [("GET", True), ("PING", False)]
    assert server.connections == redis.connections == 2


@pytest.mark.anyio
async def test_a_server_that_hangs_up_without_answering_fails_clearly() -> None:
    async def script(stream: anyio.abc.ByteStream) -> None:
        await read_command(stream, [])

    with anyio.fail_after(10):
        async with open_raw_server(script) as server, open_fake_bot() as bot:
            redis = await resp.connect(bot, f"redis://127.0.0.1:{server.port}")
            with pytest.raises(ProtocolError, match="closed the connection before answering GET"):
                await redis.execute("GET", "k")
    assert bot.failures[0].name == "GET"


@pytest.mark.anyio
async def test_subscribe_queues_messages_that_overtake_the_confirmations() -> None:
    async def script(stream: anyio.abc.ByteStream) -> None:
        rest: list[bytes] = []
        assert await read_command(stream, rest) == [b"SUBSCRIBE", b"a", b"b"]
        await stream.send(
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
            b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nfirst\r\n"  # before b's confirmation
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
            b"*4\r\n$8\r\npmessage\r\n$2\r\nb*\r\n$1\r\nb\r\n$6\r\nsecond\r\n"
        )
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with open_raw_server(script) as server, open_fake_bot() as bot:
            redis = await resp.connect(bot, f"redis://127.0.0.1:{server.port}")
            await redis.subscribe("a", b"b")
            assert redis.subscriptions == {b"a", b"b"}
            assert await redis.receive_message() == resp.Message(b"a", b"first")
            assert await redis.receive_message() == resp.Message(b"b", b"second", b"b*")
            with pytest.raises(ConfigError, match=r"subscribed.*not GET; open a second client"):
                await redis.execute("GET", "k")
    assert bot.names == ["SUBSCRIBE"]


@pytest.mark.anyio
async def test_misuse_and_connect_errors_are_clear() -> None:
    with anyio.fail_after(10):
        async with open_fake_bot() as bot:
            with pytest.raises(ConfigError, match=r"redis://127\.0\.0\.1:6379/0"):
                resp.Client(bot, "http://127.0.0.1:6379")
            with pytest.raises(ConfigError, match="database number"):
                resp.Client(bot, "redis://127.0.0.1:6379/abc")
            idle = resp.Client(bot, "redis://127.0.0.1:1")
            with pytest.raises(ConfigError, match="call subscribe\\(\\) first"):
                await idle.receive_message()
            with pytest.raises(ConnectError):
                await resp.connect(bot, "redis://127.0.0.1:1")


@pytest.mark.trio
async def test_two_tasks_on_one_client_are_refused() -> None:
    async def script(stream: anyio.abc.ByteStream) -> None:
        await anyio.sleep_forever()  # never answers: the first command stays busy

    with trio.fail_after(10):
        async with open_raw_server(script) as server, open_fake_bot() as bot:
            redis = await resp.connect(bot, f"redis://127.0.0.1:{server.port}")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(redis.execute, "BLPOP", "q", 0)
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(trio.BusyResourceError, match="its own client"):
                    await redis.execute("PING")
                nursery.cancel_scope.cancel()
            # The cancelled BLPOP may still get an answer: the connection was dropped.
            assert redis.connections == 1 and repr(redis).endswith("idle, 0 subscriptions>")


# -- what the Redis client shares with the HTTP client ------------------------------------

Request = Callable[[Any], Awaitable[object]]
BOTH_CLIENTS = [
    pytest.param(
        http.connect,
        "http",
        "HTTP client",
        "await http.connect(...)",
        lambda c: c.get("/"),
        id="http",
    ),
    pytest.param(
        resp.connect,
        "redis",
        "Redis client",
        "await resp.connect(...)",
        lambda c: c.execute("PING"),
        id="redis",
    ),
]


@pytest.mark.parametrize(("connect", "scheme", "what", "hint", "request_one"), BOTH_CLIENTS)
@pytest.mark.anyio
async def test_a_second_task_on_a_busy_client_gets_the_same_clear_error(
    connect: Callable[[Any, str], Awaitable[Any]],
    scheme: str,
    what: str,
    hint: str,
    request_one: Request,
) -> None:
    async def silent(stream: anyio.abc.ByteStream) -> None:
        await anyio.sleep_forever()  # never answers: the first request stays in flight

    message = (
        f"another task is already using this {what}: it carries one request at a time, so "
        f"their replies would interleave; give each task its own client ({hint})"
    )
    with anyio.fail_after(10):
        async with open_raw_server(silent) as server, open_fake_bot() as bot:
            client = await connect(bot, f"{scheme}://127.0.0.1:{server.port}")
            async with anyio.create_task_group() as tg:
                tg.start_soon(request_one, client)
                await anyio.wait_all_tasks_blocked()
                with pytest.raises(trio.BusyResourceError, match=f"^{re.escape(message)}$"):
                    await request_one(client)
                tg.cancel_scope.cancel()
            [refused] = bot.failures  # the cancelled first request is not recorded
            assert isinstance(refused.error, trio.BusyResourceError)
            # The cancelled request let go: the next one gets in, up to its first wait.
            with anyio.CancelScope() as scope:
                scope.cancel()
                await request_one(client)
            assert scope.cancelled_caught


@pytest.mark.parametrize(
    ("client", "url", "message"),
    [
        (
            http.Client,
            "redis://127.0.0.1:6379",
            "URL 'redis://127.0.0.1:6379' must start with http:// or https://, "
            "such as http://127.0.0.1:8080/api",
        ),
        (
            resp.Client,
            "http://127.0.0.1:6379",
            "URL 'http://127.0.0.1:6379' must start with redis://, such as redis://127.0.0.1:6379/0",
        ),
        (http.Client, "http:///items", "URL 'http:///items' has no host; write it like http://"),
        (resp.Client, "redis:///0", "URL 'redis:///0' has no host; write it like redis://"),
        (http.Client, "http://127.0.0.1:99999/", "URL 'http://127.0.0.1:99999/' has a bad port ("),
        (resp.Client, "redis://127.0.0.1:x", "URL 'redis://127.0.0.1:x' has a bad port ("),
        (resp.Client, "redis://127.0.0.1/one", "must be a database number, such as redis://HOST"),
    ],
    ids=lambda value: value.__module__.rsplit(".", 1)[-1] if isinstance(value, type) else None,
)
def test_both_clients_reject_a_bad_url_in_the_same_words(
    client: Callable[[FakeBot, str], object], url: str, message: str
) -> None:
    bot = FakeBot()
    with pytest.raises(ConfigError, match=re.escape(message)):
        client(bot, url)
    assert bot.connects == []  # checked before any connection


@pytest.mark.trio
async def test_every_client_finds_the_default_port_and_the_host_the_same_way() -> None:
    async def refuse(host: str, port: int, tls: bool, server_hostname: str | None) -> Any:
        raise ConnectError(f"cannot connect to {host}:{port}")

    bot = FakeBot(connector=refuse)
    for connect, url in [
        (http.connect, "http://Example.Test/api"),
        (http.connect, "https://[::1]"),
        (resp.connect, "redis://Example.Test"),
        (resp.connect, "redis://[::1]:7000/3"),
        (websocket.connect, "ws://Example.Test/chat"),
    ]:
        with pytest.raises(ConnectError):
            await connect(bot, url)
    assert bot.connects == [
        ("example.test", 80, False, None),
        ("::1", 443, True, "::1"),
        ("example.test", 6379, False, None),
        ("::1", 7000, False, None),
        ("example.test", 80, False, None),
    ]


# -- a real redis-server -------------------------------------------------------------------


@pytest.mark.needs_service("redis")
@pytest.mark.trio
async def test_against_a_real_redis_server(redis_address: str) -> None:
    with trio.fail_after(10):
        async with open_fake_bot() as bot:
            redis = await resp.connect(bot, f"redis://{redis_address}/2")
            subscriber = await resp.connect(bot, f"redis://{redis_address}")
            key = f"trio-bots-test:{id(bot)}"
            assert await redis.execute("DEL", key, f"{key}:list") in (0, 1)
            assert await redis.execute("GET", key) is None
            assert await redis.execute("SET", key, "é", "EX", 60) == "OK"
            assert await redis.execute("GET", key) == "é".encode()
            assert await redis.execute("RPUSH", f"{key}:list", 1, 2) == 2
            assert await redis.execute("LRANGE", f"{key}:list", 0, -1) == [b"1", b"2"]
            wrong = await redis.execute("INCR", f"{key}:list")
            assert isinstance(wrong, resp.Error) and wrong.kind == "WRONGTYPE"
            await subscriber.subscribe(f"{key}:news")
            assert await redis.execute("PUBLISH", f"{key}:news", b"\x00\xff") == 1
            assert await subscriber.receive_message() == resp.Message(
                f"{key}:news".encode(), b"\x00\xff"
            )
            await redis.execute("DEL", key, f"{key}:list")
    assert [r.name for r in bot.failures] == ["INCR"]
