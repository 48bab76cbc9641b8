"""The HTTP and WebSocket clients over TLS, with trustme certificates on loopback."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
import trio
import trio_websocket
import trustme
from _fakebot import open_fake_bot
from _servers import H11Server, Handler, Reply, Seen
from anyio.streams.tls import TLSListener

from trio_bots import ConnectError
from trio_bots.protocols import http, websocket


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@asynccontextmanager
async def open_https_server(handler: Handler, ctx: ssl.SSLContext) -> AsyncIterator[H11Server]:
    server = H11Server(handler)
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server.port = tcp.extra(anyio.abc.SocketAttribute.local_port)

    async def serve(stream: anyio.abc.ByteStream) -> None:
        try:
            await server.serve(stream)
        except (anyio.BrokenResourceError, ssl.SSLError):
            pass  # a client that failed the handshake

    async with TLSListener(tcp, ctx, standard_compatible=False) as listener:
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            yield server
            tg.cancel_scope.cancel()


def hello(seen: Seen) -> Reply:
    return Reply(200, body=f"{seen.method} {seen.target} {seen.body.decode()}".encode())


@pytest.mark.anyio
async def test_https_keep_alive_post_and_stale_retry(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    replies = iter([hello, hello, lambda s: Reply(200, body=b"bye", drop=True), hello])
    with anyio.fail_after(10):
        async with (
            open_https_server(lambda s: next(replies)(s), server_context) as server,
            open_fake_bot(ssl_context=client_context) as bot,
        ):
            url = f"https://127.0.0.1:{server.port}"
            async with await http.connect(bot, url) as client:
                assert (await client.get("/a?b=1")).body == b"GET /a?b=1 "
                assert not client.direct  # TLS: the client keeps the SSLStream
                assert (await client.post("/p", body=b"x")).body == b"POST /p x"
                assert (await client.get("/drop")).body == b"bye"
                await server.dropped.wait()
                assert (await client.get("/after")).body == b"GET /after "
            assert bot.connects == [("127.0.0.1", server.port, True, "127.0.0.1")] * 2
            assert server.requests[0].headers["host"] == f"127.0.0.1:{server.port}"
            assert not bot.failures
            assert bot.names == ["GET /a", "POST /p", "GET /drop", "GET /after"]


@pytest.mark.anyio
async def test_https_with_an_untrusted_certificate_is_a_connect_error(
    server_context: ssl.SSLContext,
) -> None:
    untrusted = ssl.create_default_context()
    trustme.CA().configure_trust(untrusted)
    with anyio.fail_after(10):
        async with (
            open_https_server(hello, server_context) as server,
            open_fake_bot(ssl_context=untrusted) as bot,
        ):
            with pytest.raises(ConnectError, match=str(server.port)):
                await http.connect(bot, f"https://127.0.0.1:{server.port}")


@pytest.mark.trio
async def test_https_explicit_context_and_wss_echo(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async def echo(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except trio_websocket.ConnectionClosed:
            pass

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery, open_fake_bot() as bot:
            server = await nursery.start(
                trio_websocket.serve_websocket, echo, "127.0.0.1", 0, server_context
            )
            url = f"wss://localhost:{server.port}/secure"
            async with await websocket.connect(bot, url, ssl_context=client_context) as ws:
                await ws.send("over tls")
                assert await ws.receive() == "over tls"
                await ws.ping()
            assert bot.connects == [("localhost", server.port, True, "localhost")]
            assert bot.names == ["WS connect /secure"] and not bot.failures
            nursery.cancel_scope.cancel()
