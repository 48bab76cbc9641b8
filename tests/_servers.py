"""Loopback servers for the protocol tests, on anyio so they run on both backends.

* `open_h11_server(handler)`: a strict HTTP/1.1 server written with h11; any
  byte the client sends that h11 rejects fails the test.
* `open_raw_server(script)`: runs ``script(stream)`` for each connection, for
  malformed answers h11 would refuse to produce.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import h11


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunks: list[bytes] | None = None  # send a chunked body made of these chunks
    close: bool = False  # send Connection: close and close
    drop: bool = False  # close silently after the response (an idle keep-alive timeout)


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Seen], Reply]


@dataclass
class H11Server:
    handler: Handler
    port: int = 0
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    dropped: anyio.Event = field(default_factory=anyio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self, stream: anyio.abc.ByteStream) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                seen = await self._read_request(conn, stream)
                if seen is None:
                    return
                self.requests.append(seen)
                reply = self.handler(seen)
                await self._send_reply(conn, stream, seen, reply)
                if reply.drop:
                    self.dropped.set()
                    return
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()

    async def _read_request(
        self, conn: h11.Connection, stream: anyio.abc.ByteStream
    ) -> Seen | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()  # raises h11.RemoteProtocolError on a bad request
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    data = b""
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return Seen(
                    request.method.decode(),
                    request.target.decode(),
                    {k.decode(): v.decode() for k, v in request.headers},
                    bytes(body),
                )
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _send_reply(
        self, conn: h11.Connection, stream: anyio.abc.ByteStream, seen: Seen, reply: Reply
    ) -> None:
        headers = list(reply.headers)
        names = {k.lower() for k, _ in headers}
        if reply.chunks is not None:
            headers.append(("Transfer-Encoding", "chunked"))
        elif "content-length" not in names and reply.status not in (204, 304):
            headers.append(("Content-Length", str(len(reply.body))))
        if reply.close:
            headers.append(("Connection", "close"))
        out = conn.send(h11.Response(status_code=reply.status, headers=headers))
        has_body = seen.method != "HEAD" and reply.status not in (204, 304)
        for chunk in reply.chunks if reply.chunks is not None else [reply.body]:
            if has_body and chunk:
                out += conn.send(h11.Data(data=chunk))
        out += conn.send(h11.EndOfMessage())
        await stream.send(out)


@asynccontextmanager
async def _serving(serve: Callable[[anyio.abc.ByteStream], Awaitable[None]]) -> AsyncIterator[int]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


@asynccontextmanager
async def open_h11_server(handler: Handler) -> AsyncIterator[H11Server]:
    server = H11Server(handler)
    async with _serving(server.serve) as port:
        server.port = port
        yield server


@dataclass
class RawServer:
    port: int = 0
    connections: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def read_head(stream: anyio.abc.ByteStream) -> bytes:
    """Read one request head (we never send bodies to raw servers)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    return data


@asynccontextmanager
async def open_raw_server(
    script: Callable[[anyio.abc.ByteStream], Awaitable[None]],
) -> AsyncIterator[RawServer]:
    server = RawServer()

    async def serve(stream: anyio.abc.ByteStream) -> None:
        server.connections += 1
        async with stream:
            try:
                await script(stream)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    async with _serving(serve) as port:
        server.port = port
        yield server
