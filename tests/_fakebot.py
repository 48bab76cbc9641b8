"""A stand-in for trio_bots.Bot for the protocol tests.

It implements the BotLike surface of trio_bots.protocols: ``connect_tcp`` opens a
real loopback connection (trio streams on trio, a small adapter on asyncio) or
asks a ``connector`` for one (memory streams), and ``measure`` records each
measurement in ``records`` so tests can assert on names, failures and bytes.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import sniffio
import trio

from trio_bots import ConnectError

Connector = Callable[[str, int, bool, "str | None"], Awaitable[Any]]


@dataclass
class Record:
    name: str
    failed: bool = False
    reason: str | None = None
    error: Exception | None = None
    sent: int = 0
    received: int = 0


@dataclass
class _Measurement:
    record: Record

    def fail(self, reason: str) -> None:
        self.record.failed = True
        self.record.reason = reason

    def add_bytes(self, sent: int, received: int) -> None:
        self.record.sent += sent
        self.record.received += received


@dataclass
class _Measure:
    """Both kinds of context manager, as trio_bots.Measure: records on the way out."""

    records: list[Record]
    record: Record

    def __enter__(self) -> _Measurement:
        return _Measurement(self.record)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, Exception):
            self.record.failed = True
            self.record.error = exc
        if exc is None or isinstance(exc, Exception):  # a cancellation records nothing
            self.records.append(self.record)

    async def __aenter__(self) -> _Measurement:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


class AnyioStream:
    """The asyncio-side ByteStream surface over an anyio byte stream, raising trio's errors."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._stream.send(bytes(data))
        except anyio.BrokenResourceError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        except anyio.ClosedResourceError as exc:
            raise trio.ClosedResourceError(str(exc)) from exc

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            return bytes(await self._stream.receive(max_bytes or 65536))
        except anyio.EndOfStream:
            return b""
        except anyio.BrokenResourceError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        except anyio.ClosedResourceError as exc:
            raise trio.ClosedResourceError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


@dataclass
class FakeBot:
    ssl_context: ssl.SSLContext | None = None
    connector: Connector | None = None
    records: list[Record] = field(default_factory=list)
    connects: list[tuple[str, int, bool, str | None]] = field(default_factory=list)
    streams: list[Any] = field(default_factory=list)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        *,
        tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> Any:
        self.connects.append((host, port, tls, server_hostname))
        if self.connector is not None:
            stream = await self.connector(host, port, tls, server_hostname)
        else:
            ctx = ssl_context or self.ssl_context
            try:
                if sniffio.current_async_library() == "trio":
                    stream = await trio.open_tcp_stream(host, port)
                    if tls:
                        assert ctx is not None, "give FakeBot an ssl_context for TLS"
                        tcp = stream
                        stream = trio.SSLStream(
                            tcp, ctx, server_hostname=server_hostname, https_compatible=True
                        )
                        try:
                            await stream.do_handshake()
                        except BaseException:
                            await trio.aclose_forcefully(tcp)
                            raise
                else:
                    raw = await anyio.connect_tcp(
                        host,
                        port,
                        tls=tls,
                        ssl_context=ctx,
                        tls_hostname=server_hostname,
                        tls_standard_compatible=False,
                    )
                    stream = AnyioStream(raw)
            except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
                raise ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        self.streams.append(stream)
        return stream

    def measure(self, name: str) -> _Measure:
        return _Measure(self.records, Record(name))

    async def aclose(self) -> None:
        for stream in reversed(self.streams):
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.records]

    @property
    def failures(self) -> list[Record]:
        return [r for r in self.records if r.failed]


@asynccontextmanager
async def open_fake_bot(**kwargs: Any) -> AsyncIterator[FakeBot]:
    bot = FakeBot(**kwargs)
    try:
        yield bot
    finally:
        await bot.aclose()
