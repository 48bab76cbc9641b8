"""The small surface the protocol building blocks need from a bot.

The protocols are leaves: they never import the engine. They talk to
whatever implements these typing Protocols, which `trio_bots.Bot` does,
and so does any test double.

Example:
    >>> import trio.testing
    >>> from trio_bots.protocols._types import ByteStream
    >>> left, right = trio.testing.memory_stream_pair()
    >>> stream: ByteStream = left  # trio streams fit the surface as they are
"""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Protocol

__all__ = ["BotLike", "ByteStream", "MeasureContext", "Measurement"]


class ByteStream(Protocol):
    """A connected byte stream: `trio.SocketStream`, `trio.SSLStream` or the asyncio adapter.

    ``receive_some`` returns ``b""`` at end of file.

    Example:
        >>> import trio, trio.testing
        >>> async def main():
        ...     a, b = trio.testing.memory_stream_pair()
        ...     await a.send_all(b"hi")
        ...     await a.aclose()
        ...     print(bytes(await b.receive_some()), bytes(await b.receive_some()))
        >>> trio.run(main)
        b'hi' b''
    """

    async def send_all(self, data: bytes | bytearray | memoryview) -> None: ...

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray: ...

    async def aclose(self) -> None: ...


class Measurement(Protocol):
    """What ``async with bot.measure(name) as m`` gives: mark a failure, count bytes.

    Example:
        >>> class Recorder:
        ...     def fail(self, reason: str) -> None: print("failed:", reason)
        ...     def add_bytes(self, sent: int, received: int) -> None: pass
        >>> m: Measurement = Recorder()
        >>> m.fail("HTTP 500")
        failed: HTTP 500
    """

    def fail(self, reason: str) -> None: ...

    def add_bytes(self, sent: int, received: int) -> None: ...


class MeasureContext(Protocol):
    """What ``bot.measure(name)`` returns: a context manager of both kinds.

    ``with`` and ``async with`` mean the same; the plain ``with`` is the
    cheaper one (no coroutine in or out), and it may wrap awaits. The HTTP
    client uses it; the other clients use ``async with``.

    Example:
        >>> import contextlib
        >>> class Record:
        ...     def fail(self, reason: str) -> None: pass
        ...     def add_bytes(self, sent: int, received: int) -> None: print(sent, received)
        ...     def __enter__(self) -> "Record": return self
        ...     def __exit__(self, *exc: object) -> None: pass
        ...     async def __aenter__(self) -> "Record": return self
        ...     async def __aexit__(self, *exc: object) -> None: pass
        >>> context: MeasureContext = Record()
        >>> with context as m:
        ...     m.add_bytes(1, 2)
        1 2
    """

    def __enter__(self) -> Measurement: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...

    async def __aenter__(self) -> Measurement: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


class BotLike(Protocol):
    """The part of `trio_bots.Bot` that the protocol clients use.

    ``connect_tcp`` returns a connected stream (TLS handshake done) or raises
    `trio_bots.ConnectError`; ``measure`` returns a `MeasureContext`, a
    context manager (plain or async) that records the body's latency and
    counts an exception in it as a failure.

    Example:
        >>> import trio, trio_bots
        >>> async def worker(bot: BotLike) -> None:  # a trio_bots.Bot is one
        ...     async with bot.measure("nothing") as m:
        ...         m.add_bytes(10, 20)
        >>> trio.run(trio_bots.swarm, worker, 3).stats["nothing"].count
        3
    """

    async def connect_tcp(
        self,
        host: str,
        port: int,
        *,
        tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> ByteStream: ...

    def measure(self, name: str) -> MeasureContext: ...
