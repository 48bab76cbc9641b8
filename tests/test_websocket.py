"""The WebSocket client against trio-websocket and a scripted wsproto server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
import trio
import trio_websocket
from _fakebot import open_fake_bot
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from trio_bots import ConfigError, ProtocolError
from trio_bots.protocols import websocket
from trio_bots.protocols.websocket import ConnectionClosed


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- against trio-websocket (trio) ------------------------------------------------------

WsHandler = Callable[[trio_websocket.WebSocketRequest], Awaitable[None]]


@asynccontextmanager
async def serve_ws(handler: WsHandler) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None)
        yield f"ws://127.0.0.1:{server.port}"
        nursery.cancel_scope.cancel()


async def echo(request: trio_websocket.WebSocketRequest) -> None:
    ws = await request.accept()
    try:
        while True:
            msg = await ws.get_message()
            if msg == "close please":
                await ws.aclose(4000, "asked to")
                return
            await ws.send_message(msg)
    except trio_websocket.ConnectionClosed:
        pass


@pytest.mark.trio
async def test_echo_text_and_bytes_and_the_handshake_is_measured() -> None:
    with trio.fail_after(10):
        async with serve_ws(echo) as url, open_fake_bot() as bot:
            async with await websocket.connect(bot, url + "/chat?room=1") as ws:
                await ws.send("héllo")
                assert await ws.receive() == "héllo"
                await ws.send(b"\x00\x01" * 5000)
                assert await ws.receive() == b"\x00\x01" * 5000
                await ws.ping()
                await ws.ping(b"mine")
                assert ws.closed is None
            assert ws.closed is not None and ws.closed.code == 1000
            [rec] = bot.records
            assert rec.name == "WS connect /chat" and not rec.failed
            assert rec.sent > 0 and rec.received > 0


@pytest.mark.trio
async def test_server_close_code_and_reason_are_exposed() -> None:
    with trio.fail_after(10):
        async with serve_ws(echo) as url, open_fake_bot() as bot:
            ws = await websocket.connect(bot, url, name="ws")
            await ws.send("close please")
            with pytest.raises(ConnectionClosed) as info:
                await ws.receive()
            assert (info.value.code, info.value.reason) == (4000, "asked to")
            assert isinstance(info.value, ProtocolError)
            with pytest.raises(ConnectionClosed, match="4000"):
                await ws.send("more")
            with pytest.raises(ConnectionClosed):
                await ws.ping()
            await ws.aclose()  # harmless after a close
            with pytest.raises(ProtocolError, match="4000"):
                async for _ in ws:  # not a normal close: raises
                    pass


@pytest.mark.trio
async def test_client_close_code_reaches_the_server() -> None:
    seen: list[int] = []

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            seen.append(exc.reason.code)

    with trio.fail_after(10):
        async with serve_ws(handler) as url, open_fake_bot() as bot:
            ws = await websocket.connect(bot, url)
            await ws.aclose(1001, "bot leaving")
            assert ws.closed is not None and ws.closed.code == 1001
            with pytest.raises(ConnectionClosed, match="1001"):
                await ws.receive()
        assert seen == [1001]


@pytest.mark.trio
async def test_a_refused_handshake_names_the_status() -> None:
    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        await request.reject(403, body=b"go away")

    with trio.fail_after(10):
        async with serve_ws(handler) as url, open_fake_bot() as bot:
            with pytest.raises(ProtocolError, match="HTTP 403 instead of 101"):
                await websocket.connect(bot, url + "/private")
            [rec] = bot.records
            assert rec.name == "WS connect /private" and rec.failed
            with pytest.raises(ConfigError, match="ws://"):
                await websocket.connect(bot, "http://127.0.0.1/")


@pytest.mark.trio
async def test_ping_returns_while_another_task_waits_in_receive() -> None:
    go = trio.Event()

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        await go.wait()
        await ws.send_message("late")
        await ws.get_message()

    with trio.fail_after(10):
        async with serve_ws(handler) as url, open_fake_bot() as bot:
            ws = await websocket.connect(bot, url)
            got: list[str | bytes] = []

            async def receiver() -> None:
                got.append(await ws.receive())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receiver)
                await trio.testing.wait_all_tasks_blocked()
                await ws.ping()  # the receiver reads; it must wake us on the pong
                assert got == []
                go.set()
            assert got == ["late"]
            await ws.aclose()


# -- against a scripted wsproto server (both backends) ------------------------------------

Script = Callable[["Peer"], Awaitable[None]]


class Peer:
    """The server side of one connection, driven by a test script."""

    def __init__(self, stream: anyio.abc.ByteStream, conn: WSConnection) -> None:
        self.stream = stream
        self.conn = conn
        self.pending: list[Event] = []

    async def send(self, *events: Event) -> None:
        await self.stream.send(b"".join(self.conn.send(e) for e in events))

    async def next_event(self) -> Event:
        while not self.pending:
            try:
                data: bytes | None = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                data = None
            self.conn.receive_data(data)
            self.pending.extend(self.conn.events())
        return self.pending.pop(0)


@asynccontextmanager
async def serve_raw(script: Script, *, greeting: list[Event] | None = None) -> AsyncIterator[str]:
    async def serve(stream: anyio.abc.ByteStream) -> None:
        conn = WSConnection(ConnectionType.SERVER)
        peer = Peer(stream, conn)
        async with stream:
            request = await peer.next_event()
            assert isinstance(request, Request)
            await peer.send(AcceptConnection(), *(greeting or []))
            await script(peer)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        yield f"ws://127.0.0.1:{port}/raw"
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_fragments_are_reassembled_and_pings_answered_on_both_backends() -> None:
    result: list[object] = []

    async def script(peer: Peer) -> None:
        await peer.send(
            TextMessage(data="frag", message_finished=False),
            Ping(payload=b"are you there"),
            TextMessage(data="mented ", message_finished=False),
            TextMessage(data="text", message_finished=True),
            BytesMessage(data=b"\x01", message_finished=False),
            BytesMessage(data=b"\x02", message_finished=True),
        )
        result.append(await peer.next_event())  # the pong, answered while reassembling
        result.append(await peer.next_event())  # the client's message
        await peer.send(CloseConnection(code=1000))
        result.append(await peer.next_event())  # the client's close reply

    with anyio.fail_after(10):
        greeting: list[Event] = [TextMessage(data="welcome")]
        async with serve_raw(script, greeting=greeting) as url, open_fake_bot() as bot:
            ws = await websocket.connect(bot, url)
            assert await ws.receive() == "welcome"  # sent together with the handshake
            assert await ws.receive() == "fragmented text"
            assert await ws.receive() == b"\x01\x02"
            await ws.send("thanks")
            assert [m async for m in ws] == []  # a normal close ends iteration quietly
            assert ws.closed is not None and ws.closed.code == 1000
        pong, msg, close = result
        assert isinstance(pong, Pong) and pong.payload == b"are you there"
        assert isinstance(msg, TextMessage) and msg.data == "thanks"
        assert isinstance(close, CloseConnection) and close.code == 1000


@pytest.mark.anyio
async def test_oversized_message_closes_with_1009() -> None:
    closes: list[int] = []

    async def script(peer: Peer) -> None:
        await peer.send(BytesMessage(data=b"x" * 60, message_finished=False))
        await peer.send(BytesMessage(data=b"x" * 60, message_finished=True))
        event = await peer.next_event()
        assert isinstance(event, CloseConnection)
        closes.append(event.code)

    with anyio.fail_after(10):
        async with serve_raw(script) as url, open_fake_bot() as bot:
            ws = await websocket.connect(bot, url, max_message_size=100)
            with pytest.raises(ProtocolError, match="max_message_size=100"):
                await ws.receive()
            with pytest.raises(ConnectionClosed) as info:
                await ws.receive()
            assert info.value.code == 1009
    assert closes == [1009]


@pytest.mark.anyio
async def test_lost_connection_is_1006_and_pings_fail() -> None:
    async def script(peer: Peer) -> None:
        await peer.send(TextMessage(data="last words"))
        event = await peer.next_event()
        assert isinstance(event, Ping)
        # hang up without a pong or a close frame

    with anyio.fail_after(10):
        async with serve_raw(script) as url, open_fake_bot() as bot:
            ws = await websocket.connect(bot, url)
            with pytest.raises(ConnectionClosed) as info:
                await ws.ping()
            assert info.value.code == 1006
            assert await ws.receive() == "last words"  # queued messages still come first
            with pytest.raises(ConnectionClosed, match="1006"):
                async for _ in ws:
                    pass


@pytest.mark.anyio
async def test_a_broken_frame_is_a_protocol_error() -> None:
    async def script(peer: Peer) -> None:
        await peer.stream.send(b"\x8f\x00")  # opcode 0xF is reserved
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with serve_raw(script) as url, open_fake_bot() as bot:
            ws = await websocket.connect(bot, url)
            with pytest.raises(ConnectionClosed, match=r"code 1002 \(Invalid opcode"):
                await ws.receive()
            assert ws.closed is not None and ws.closed.code == 1002


@pytest.mark.anyio
async def test_handshake_errors() -> None:
    async def not_websocket(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")

    async def hang_up(stream: anyio.abc.ByteStream) -> None:
        await stream.aclose()

    with anyio.fail_after(10):
        for handler, match in [(not_websocket, "bad WebSocket handshake"), (hang_up, "closed")]:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            async with listener, anyio.create_task_group() as tg, open_fake_bot() as bot:
                tg.start_soon(listener.serve, handler)
                with pytest.raises(ProtocolError, match=match):
                    await websocket.connect(bot, f"ws://127.0.0.1:{port}/")
                assert bot.records[0].failed
                tg.cancel_scope.cancel()


@pytest.mark.trio
async def test_concurrent_senders_share_the_connection() -> None:
    # trio raises BusyResourceError on concurrent send_all: the client must serialise.
    with trio.fail_after(10):
        async with serve_ws(echo) as url, open_fake_bot() as bot:
            ws = await websocket.connect(bot, url)

            async def sender(tag: str) -> None:
                for i in range(50):
                    await ws.send(f"{tag}{i}" * 300)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender, "a")
                nursery.start_soon(sender, "b")
                nursery.start_soon(ws.ping)
            got = [await ws.receive() for _ in range(100)]
            assert sorted(got) == sorted(f"{t}{i}" * 300 for t in "ab" for i in range(50))
            await ws.aclose()
