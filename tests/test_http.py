"""The HTTP/1.1 client against a strict h11 server and scripted bad servers."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import h11
import pytest
import trio
import trio.testing
from _fakebot import FakeBot, open_fake_bot
from _servers import Reply, Seen, open_h11_server, open_raw_server, read_head
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_bots import ConfigError, ConnectError, ProtocolError
from trio_bots.protocols import http


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def echo(seen: Seen) -> Reply:
    data = {**seen.__dict__, "body": seen.body.decode()}
    return Reply(200, [("Content-Type", "application/json")], json.dumps(data).encode())


# -- against h11 (both backends) ------------------------------------------------------


@pytest.mark.anyio
async def test_get_keeps_the_connection_and_records_each_request() -> None:
    with anyio.fail_after(10):
        async with open_h11_server(echo) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            for i in range(5):
                r = await client.get(f"/items?page={i}")
                assert r.status == 200
                assert r.headers["content-type"] == "application/json"
                assert r.headers["CONTENT-TYPE"] == "application/json"
                assert r.json()["target"] == f"/items?page={i}"
            assert server.connections == 1 and client.connections == 1
            assert bot.names == ["GET /items"] * 5
            assert not bot.failures
            rec = bot.records[0]
            assert rec.sent > len("GET /items?page=0 HTTP/1.1\r\n\r\n")
            assert rec.received > len(r.body)
            seen = server.requests[0]
            assert seen.headers["host"] == f"127.0.0.1:{server.port}"
            assert seen.headers["user-agent"].startswith("trio-bots/")
            await client.aclose()


@pytest.mark.anyio
async def test_post_json_body_and_headers_pass_h11() -> None:
    with anyio.fail_after(10):
        async with open_h11_server(echo) as server, open_fake_bot() as bot:
            async with await http.connect(bot, server.url, headers={"X-Team": "a"}) as client:
                r = await client.post("/login", json={"user": "bot", "n": 1})
                r2 = await client.post(
                    "/raw", body="héllo", headers=[("User-Agent", "mine")], name="raw"
                )
                r3 = await client.put("/p", body=b"")
                r4 = await client.delete("/d/caf\u00e9 x")
                r5 = await client.request("PATCH", "/patch", json=[1])
            assert r.json()["body"] == '{"user":"bot","n":1}'
            assert r.json()["headers"]["content-type"] == "application/json"
            assert r.json()["headers"]["x-team"] == "a"
            assert r2.json()["body"] == "héllo"
            assert r2.json()["headers"]["user-agent"] == "mine"
            assert r3.json()["headers"]["content-length"] == "0"
            assert r4.json()["target"] == "/d/caf%C3%A9%20x"
            assert r5.json()["method"] == "PATCH"
            assert bot.names == [
                "POST /login",
                "raw",
                "PUT /p",
                "DELETE /d/caf\u00e9 x",
                "PATCH /patch",
            ]


@pytest.mark.anyio
async def test_chunked_and_empty_bodies() -> None:
    def handler(seen: Seen) -> Reply:
        if seen.target == "/chunked":
            return Reply(200, chunks=[b"hello ", b"", b"chunked ", b"world" * 1000])
        if seen.target == "/204":
            return Reply(204)
        if seen.target == "/304":
            return Reply(304, [("ETag", '"x"')])
        return Reply(200, [("Content-Length", "1000")])  # HEAD: the length, no body

    with anyio.fail_after(10):
        async with open_h11_server(handler) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            r = await client.get("/chunked")
            assert r.body == b"hello chunked " + b"world" * 1000
            assert (await client.get("/204")).body == b""
            r304 = await client.get("/304")
            assert (r304.status, r304.body, r304.headers["etag"]) == (304, b"", '"x"')
            h = await client.head("/big")
            assert (h.status, h.body, h.headers["content-length"]) == (200, b"", "1000")
            assert (await client.get("/chunked")).status == 200  # after HEAD, same connection
            assert server.connections == 1
            assert not bot.failures
            assert [s.method for s in server.requests] == ["GET", "GET", "GET", "HEAD", "GET"]


@pytest.mark.anyio
async def test_every_status_is_returned_and_4xx_5xx_count_as_failures() -> None:
    def handler(seen: Seen) -> Reply:
        return Reply(int(seen.target.strip("/")), body=b"x")

    with anyio.fail_after(10):
        async with open_h11_server(handler) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            assert (await client.get("/404")).status == 404
            assert (await client.get("/503")).status == 503
            assert (await client.get("/404", expect=[404])).status == 404
            assert (await client.get("/200", expect=(201,))).status == 200
            assert (await client.get("/302")).status == 302
            assert [(r.failed, r.reason) for r in bot.records] == [
                (True, "HTTP 404"),
                (True, "HTTP 503"),
                (False, None),
                (True, "HTTP 200"),
                (False, None),
            ]
            assert all(r.error is None for r in bot.records)  # failed, never raised


@pytest.mark.anyio
async def test_connection_close_reconnects_before_the_next_request() -> None:
    with anyio.fail_after(10):
        async with open_h11_server(lambda s: Reply(200, body=b"bye", close=True)) as server:
            async with open_fake_bot() as bot:
                client = await http.connect(bot, server.url)
                assert (await client.get("/a")).body == b"bye"
                # POST is not idempotent: this passes only if the client reconnects by itself.
                assert (await client.post("/b", body=b"x")).body == b"bye"
                assert server.connections == 2 == client.connections
                assert not bot.failures


@pytest.mark.anyio
async def test_stale_keep_alive_connection_is_retried_once_for_get() -> None:
    replies = iter([Reply(200, body=b"1", drop=True), Reply(200, body=b"2")])
    with anyio.fail_after(10):
        async with open_h11_server(lambda s: next(replies)) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            assert (await client.get("/x")).body == b"1"
            await server.dropped.wait()
            assert (await client.get("/x")).body == b"2"
            assert server.connections == 2
            assert bot.names == ["GET /x", "GET /x"]
            assert not bot.failures


@pytest.mark.anyio
async def test_stale_keep_alive_connection_is_not_retried_for_post() -> None:
    replies = iter([Reply(200, drop=True), Reply(200, body=b"fresh")])
    with anyio.fail_after(10):
        async with open_h11_server(lambda s: next(replies)) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            await client.get("/x")
            await server.dropped.wait()
            with pytest.raises(ProtocolError, match="POST is not idempotent"):
                await client.post("/order", body=b"1")
            assert (await client.get("/x")).body == b"fresh"
            assert [r.failed for r in bot.records] == [False, True, False]
            assert isinstance(bot.records[1].error, ProtocolError)
            assert len(server.requests) == 2  # the POST never reached a live server


@pytest.mark.anyio
async def test_connect_errors_are_clear() -> None:
    with anyio.fail_after(10):
        async with open_fake_bot() as bot:
            with pytest.raises(ConfigError, match="http://"):
                await http.connect(bot, "ftp://127.0.0.1/")
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            await listener.aclose()
            with pytest.raises(ConnectError, match=str(port)):
                await http.connect(bot, f"http://127.0.0.1:{port}")


@pytest.mark.anyio
async def test_url_path_prefixes_every_request() -> None:
    with anyio.fail_after(10):
        async with open_h11_server(echo) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url + "/api/")
            assert (await client.get("/users?x=1")).json()["target"] == "/api/users?x=1"
            assert bot.names == ["GET /users"]
            with pytest.raises(ConfigError, match="must start with '/'"):
                await client.get("users")
            with pytest.raises(ConfigError, match="line break"):
                await client.get("/", headers={"X": "a\r\nEvil: 1"})


# -- malformed and truncated responses -------------------------------------------------

Script = Callable[[anyio.abc.ByteStream], Awaitable[None]]


def answer(*pieces: bytes, then_close: bool = True) -> Script:
    async def script(stream: anyio.abc.ByteStream) -> None:
        await read_head(stream)
        for piece in pieces:
            await stream.send(piece)
        if not then_close:
            await anyio.sleep_forever()

    return script


@pytest.mark.parametrize(
    ("pieces", "match"),
    [
        ((b"HTTX/1.1 200 OK\r\n\r\n",), "malformed HTTP response"),
        ((b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",), "malformed HTTP response"),
        ((b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",), "malformed HTTP response"),
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",), "5 bytes|truncated"),
        ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",), "truncated"),
        ((b"HTTP/1.1 200 OK\r\nContent-Len",), "truncated"),
        ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",), "malformed"),
        ((b"HTTP/1.1 200 OK\r\n" + b"X-Filler: 0123456789\r\n" * 60000,), "limit"),
    ],
)
@pytest.mark.anyio
async def test_malformed_responses_raise_protocol_error_and_count_as_failures(
    pieces: tuple[bytes, ...], match: str
) -> None:
    with anyio.fail_after(10):
        async with open_raw_server(answer(*pieces)) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            with pytest.raises(ProtocolError, match=match):
                await client.get("/x")
            [rec] = bot.records
            assert rec.failed and isinstance(rec.error, ProtocolError)
            assert rec.received > 0


@pytest.mark.anyio
async def test_a_connection_closed_without_an_answer_is_retried_at_most_once() -> None:
    with anyio.fail_after(10):
        async with open_raw_server(answer()) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            with pytest.raises(ProtocolError, match="retried once already"):
                await client.get("/x")
            assert server.connections == 2


@pytest.mark.anyio
async def test_a_connection_opened_for_the_request_is_not_retried() -> None:
    async def script(stream: anyio.abc.ByteStream) -> None:
        if server.connections == 1:
            await read_head(stream)
            await stream.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")

    with anyio.fail_after(10):
        async with open_raw_server(script) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            await client.get("/x")
            with pytest.raises(ProtocolError, match="connection was new"):
                await client.get("/x")
            assert server.connections == 2


@pytest.mark.anyio
async def test_body_until_eof_interim_responses_and_trailing_junk() -> None:
    async def script(stream: anyio.abc.ByteStream) -> None:
        while True:
            head = await read_head(stream)
            if b"/eof" in head:
                await stream.send(b"HTTP/1.0 200 OK\r\n\r\nall of")
                await stream.send(b" it")
                return
            elif b"/continue" in head:
                await stream.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
                await stream.send(b"Content-Length: 2\r\n\r\nok")
            else:  # a second response nobody asked for: the connection must not be reused
                ok = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"
                await stream.send(ok + b"A" + ok + b"B")

    with anyio.fail_after(10):
        async with open_raw_server(script) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            assert (await client.get("/eof")).body == b"all of it"
            r = await client.get("/continue")
            assert (r.status, r.body) == (200, b"ok")
            assert (await client.get("/junk")).body == b"A"
            assert server.connections == 2
            r = await client.get("/continue")  # must be on a new connection
            assert r.body == b"ok"
            assert server.connections == 3
            assert not bot.failures


# -- memory streams (trio): splits, cancellation, concurrency ----------------------------


def memory_bot() -> tuple[FakeBot, trio.MemoryReceiveChannel[trio.abc.Stream]]:
    """A bot whose connections are lockstep memory streams handed to the test."""
    send, receive = trio.open_memory_channel[trio.abc.Stream](10)

    async def connector(host: str, port: int, tls: bool, server_hostname: str | None) -> Any:
        client, server = trio.testing.lockstep_stream_pair()
        await send.send(server)
        return client

    return FakeBot(connector=connector), receive


async def receive_request(stream: trio.abc.Stream) -> bytes:
    conn = h11.Connection(h11.SERVER)
    data = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            chunk = await stream.receive_some()
            data += chunk
            conn.receive_data(chunk)
        elif isinstance(event, h11.EndOfMessage):
            return data


def frame(body: bytes, chunks: list[int] | None) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nX-A: 1\r\n"
    if chunks is None:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    out, pos = [head + b"Transfer-Encoding: chunked\r\n\r\n"], 0
    for size in [*chunks, len(body)]:
        piece = body[pos : pos + size]
        pos += len(piece)
        if piece:
            out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(max_size=300),
    chunks=st.none() | st.lists(st.integers(1, 50), max_size=8),
    cuts=st.lists(st.integers(0, 400), max_size=12),
)
@pytest.mark.trio
async def test_responses_split_anywhere_parse_the_same(
    body: bytes, chunks: list[int] | None, cuts: list[int]
) -> None:
    wire = frame(body, chunks)
    bounds = sorted({0, len(wire), *(c for c in cuts if c < len(wire))})
    with trio.fail_after(5):
        bot, servers = memory_bot()
        async with trio.open_nursery() as nursery:
            client = await http.connect(bot, "http://example.test")
            server = await servers.receive()

            async def serve() -> None:
                for _ in range(2):
                    await receive_request(server)
                    for a, b in itertools.pairwise(bounds):
                        await server.send_all(wire[a:b])

            nursery.start_soon(serve)
            for _ in range(2):
                r = await client.get("/")
                assert (r.status, r.body, r.headers["x-a"]) == (200, body, "1")
            assert bot.records[1].received == len(wire)
            assert client.connections == 1


@pytest.mark.trio
async def test_every_single_split_of_a_chunked_response() -> None:
    wire = frame(b"0123456789" * 3, [7, 11])
    with trio.fail_after(10):
        bot, servers = memory_bot()
        client = await http.connect(bot, "http://example.test")
        server = await servers.receive()
        async with trio.open_nursery() as nursery:

            async def serve() -> None:
                for cut in range(1, len(wire)):
                    await receive_request(server)
                    await server.send_all(wire[:cut])
                    await server.send_all(wire[cut:])

            nursery.start_soon(serve)
            for _ in range(1, len(wire)):
                assert (await client.get("/")).body == b"0123456789" * 3
        assert client.connections == 1


@pytest.mark.trio
async def test_cancelled_request_drops_the_connection_and_busy_client_refuses() -> None:
    with trio.fail_after(10):
        bot, servers = memory_bot()
        client = await http.connect(bot, "http://example.test")
        first = await servers.receive()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.get, "/slow")
            await receive_request(first)  # the request is in flight, its answer never comes
            with pytest.raises(trio.BusyResourceError, match="its own client"):
                await client.get("/other")
            nursery.cancel_scope.cancel()
        with pytest.raises(trio.BrokenResourceError):
            await first.send_all(b"late")  # the client closed its end
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.get, "/again")
            second = await servers.receive()
            await receive_request(second)
            await second.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        assert client.connections == 2
        assert [r.name for r in bot.records] == ["GET /other", "GET /again"]
        assert not bot.records[1].failed


def test_headers_mapping_and_response_helpers() -> None:
    h = http.Headers(
        [(b"A", b"1"), (b"a", b"2"), (b"Content-Type", b"text/plain; charset=latin-1")]
    )
    assert dict(h) == {"a": "1, 2", "content-type": "text/plain; charset=latin-1"}
    assert h.get_list("A") == ["1", "2"] and h.get_list("b") == []
    assert len(h) == 2 and "A" in h and 3 not in h
    r = http.Response(200, h, "café".encode("latin-1"))
    assert r.text == "café" and r.ok and "200" in repr(r)
    assert http.Response(500, http.Headers(), b"{}").json() == {}
    assert not http.Response(500, http.Headers(), b"").ok


# -- the direct path: a plain trio.SocketStream, read and written on its socket ------------


@pytest.mark.anyio
async def test_the_direct_path_is_taken_for_a_plain_socket_stream_only(
    anyio_backend: str,
) -> None:
    with anyio.fail_after(10):
        async with open_h11_server(echo) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            assert client.direct == (anyio_backend == "trio")  # asyncio: the adapter
            assert (await client.get("/a")).json()["target"] == "/a"
            await client.aclose()
            assert not client.direct
            assert (await client.get("/b")).json()["target"] == "/b"
            assert client.direct == (anyio_backend == "trio")
    bot, _ = memory_bot()  # any other stream type (here a memory stream) keeps the stream
    client = http.Client(bot, "http://example.test")
    assert not client.direct


@pytest.mark.trio
async def test_the_simulated_network_keeps_the_stream() -> None:
    import trio_bots
    from trio_bots.protocols import testing
    from trio_bots.testing import Network

    seen: list[tuple[bool, int]] = []

    async def worker(bot: trio_bots.Bot) -> None:
        client = await http.connect(bot, "http://site.test")
        r = await client.get("/x")
        seen.append((client.direct, r.status))

    net = Network(latency=0.001)
    with trio.fail_after(10):
        async with net.serve(testing.http_echo, "site.test", 80):
            result = await trio_bots.swarm(worker, 2, network=net)
    assert seen == [(False, 200)] * 2
    assert result.stats["GET /x"].count == 2


@pytest.mark.anyio
async def test_a_response_trickled_byte_by_byte_parses_and_counts_every_byte() -> None:
    wire = frame(b"hello, trickle", None)
    chunked = frame(b"0123456789" * 2, [3, 5])

    async def script(stream: anyio.abc.ByteStream) -> None:
        for reply in (wire, chunked):
            await read_head(stream)
            for i in range(len(reply)):
                await stream.send(reply[i : i + 1])
                await anyio.sleep(0.0005)  # one segment each
        await anyio.sleep_forever()

    with anyio.fail_after(20):
        async with open_raw_server(script) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            assert (await client.get("/one")).body == b"hello, trickle"
            assert (await client.get("/two")).body == b"0123456789" * 2
            assert [r.received for r in bot.records] == [len(wire), len(chunked)]
            assert bot.records[0].sent == len(b"GET /one HTTP/1.1\r\n\r\n") + len(
                f"Host: 127.0.0.1:{server.port}\r\nUser-Agent: trio-bots/0.1\r\n"
            )
            assert client.connections == 1 and not bot.failures
            await client.aclose()


@pytest.mark.anyio
async def test_a_reset_mid_response_is_a_protocol_error_with_the_os_error_as_cause() -> None:
    import socket
    import struct

    part = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"

    async def script(stream: anyio.abc.ByteStream) -> None:
        await read_head(stream)
        await stream.send(part)
        await anyio.sleep(0.05)  # let the client read it, then reset the connection
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()

    with anyio.fail_after(10):
        async with open_raw_server(script) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            with pytest.raises(ProtocolError, match=f"broke after {len(part)} bytes") as info:
                await client.get("/x")
            cause = info.value.__cause__
            assert isinstance(cause, trio.BrokenResourceError | anyio.BrokenResourceError)
            [rec] = bot.records
            assert rec.failed and rec.received == len(part)
            assert not client.direct  # dropped: the next request reconnects
            assert server.connections == 1


@pytest.mark.trio
async def test_direct_path_busy_client_and_cancellation_reconnect() -> None:
    arrived = trio.Event()

    async def script(stream: anyio.abc.ByteStream) -> None:
        while True:
            head = await read_head(stream)
            arrived.set()
            if b"/slow" in head:
                await anyio.sleep_forever()
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with trio.fail_after(10):
        async with open_raw_server(script) as server, open_fake_bot() as bot:
            client = await http.connect(bot, server.url)
            assert client.direct
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.get, "/slow")
                await arrived.wait()  # the request is in flight, its answer never comes
                with pytest.raises(trio.BusyResourceError, match="its own client"):
                    await client.get("/other")
                nursery.cancel_scope.cancel()
            assert not client.direct  # cancelled mid-request: the connection was dropped
            assert (await client.get("/again")).body == b"ok"
            assert client.direct and client.connections == 2 and server.connections == 2
            assert [r.name for r in bot.records] == ["GET /other", "GET /again"]
            assert not bot.records[1].failed


@pytest.mark.trio
async def test_a_direct_request_is_a_checkpoint_even_when_the_reply_is_ready() -> None:
    from trio_bots.protocols._direct import direct_stream

    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    stream = await trio.open_tcp_stream(*listener.socket.getsockname()[:2])
    server = await listener.accept()
    direct = direct_stream(stream)
    assert direct is not None
    with trio.fail_after(10):
        await server.send_all(b"ready")
        await trio.lowlevel.wait_readable(stream.socket)  # the reply is there before we ask
        with trio.testing.assert_checkpoints():
            await direct.send_all(b"request")
            assert await direct.receive_some() == b"ready"
        with trio.CancelScope() as scope:
            scope.cancel()
            await direct.send_all(b"again")
            await direct.receive_some()  # a checkpoint: raises Cancelled
        assert scope.cancelled_caught
        assert await server.receive_some() == b"requestagain"
        await server.aclose()
        assert await direct.receive_some() == b""  # end of file
        await stream.aclose()
        with pytest.raises(trio.ClosedResourceError, match="already closed"):
            await direct.receive_some()
        with pytest.raises(trio.ClosedResourceError, match="already closed"):
            await direct.send_all(b"x")
    await listener.aclose()


@pytest.mark.trio
async def test_request_timeout_on_the_direct_path_fails_the_request_and_reconnects() -> None:
    import trio_bots
    from trio_bots.protocols import testing

    async def handler(stream: trio.abc.Stream) -> None:
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some()
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            if b"/slow" in head:
                await trio.sleep_forever()
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    seen: list[object] = []

    async def worker(bot: trio_bots.Bot) -> None:
        client = await http.connect(bot, f"http://{bot.swarm.host}")
        assert client.direct
        with pytest.raises(trio_bots.RequestTimeout):
            await client.get("/slow")
        seen.append(client.direct)  # dropped: the request may still be answered later
        seen.append((await client.get("/fast")).body)
        seen.append((client.direct, client.connections))

    with trio.fail_after(10):
        async with testing.open_server(handler) as host:
            result = await trio_bots.swarm(worker, 1, host=host, request_timeout=0.2)
    assert seen == [False, b"ok", (True, 2)]
    assert result.stats["GET /slow"].failure_count == 1
    assert result.stats["GET /fast"].count == 1
