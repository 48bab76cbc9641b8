"""Framing over a byte stream: delimited frames, exact reads, length prefixes, lines.

TCP delivers bytes, not messages. These wrappers turn a `ByteStream` (what
``bot.connect_tcp`` returns) into frames, keeping unconsumed bytes between
calls. They run on every backend because they only call ``send_all``,
``receive_some`` and ``aclose``.

Errors:
    A frame longer than the limit, or an end of file in the middle of a
    frame, raises `trio_bots.ProtocolError` saying how many bytes were
    pending. A clean end of file *between* frames raises
    `anyio.EndOfStream`, and ends an ``async for`` quietly.

Example:
    >>> import trio, trio.testing
    >>> from trio_bots.protocols import framing
    >>> async def main():
    ...     a, b = trio.testing.memory_stream_pair()
    ...     await framing.Lines(a).send(b"hello")
    ...     await a.send_eof()
    ...     async for line in framing.Lines(b):
    ...         print(line)
    >>> trio.run(main)
    b'hello'
"""

from __future__ import annotations

import struct
from typing import Self

import anyio

from .._errors import ConfigError, ProtocolError
from ._types import ByteStream
from ._util import AsyncResource, annotator, shown

__all__ = ["Buffered", "LengthPrefixed", "Lines"]


class Buffered(AsyncResource):
    """A stream with a receive buffer: read up to a delimiter or an exact count.

    Bytes received past the end of a frame stay in the buffer for the next
    call. The delimiter search resumes where the previous one stopped, so a
    frame arriving one byte at a time costs linear time.

    Args:
        stream: a connected `ByteStream`.

    Example:
        >>> import trio, trio.testing
        >>> async def main():
        ...     a, b = trio.testing.memory_stream_pair()
        ...     await a.send_all(b"HELLO\\r\\nrest")
        ...     buf = Buffered(b)
        ...     print(await buf.receive_until(b"\\r\\n"), await buf.receive_exactly(4))
        >>> trio.run(main)
        b'HELLO' b'rest'
    """

    __slots__ = ("_buf", "_scan", "annotate", "stream")

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        #: The stream's ``annotate`` (a traced bot's stream), or None: frames are noted there.
        self.annotate = annotator(stream)
        self._buf = bytearray()
        self._scan = 0  # receive_until has already searched _buf[:_scan]

    @property
    def buffered(self) -> int:
        """How many received bytes wait in the buffer, not yet consumed.

        Example:
            >>> import trio.testing
            >>> Buffered(trio.testing.memory_stream_pair()[0]).buffered
            0
        """
        return len(self._buf)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` on the underlying stream.

        Example:
            >>> import trio, trio.testing
            >>> async def main():
            ...     a, b = trio.testing.memory_stream_pair()
            ...     await Buffered(a).send_all(b"ping")
            ...     print(bytes(await b.receive_some()))
            >>> trio.run(main)
            b'ping'
        """
        await self.stream.send_all(data)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Return the buffered bytes if any, else what the stream gives; ``b""`` at EOF.

        Example:
            >>> import trio, trio.testing
            >>> async def main():
            ...     a, b = trio.testing.memory_stream_pair()
            ...     await a.send_all(b"abc")
            ...     print(await Buffered(b).receive_some(2))
            >>> trio.run(main)
            b'ab'
        """
        buf = self._buf
        if not buf:
            return bytes(await self.stream.receive_some(max_bytes))
        n = len(buf) if max_bytes is None else min(max_bytes, len(buf))
        data = bytes(buf[:n])
        del buf[:n]
        self._scan = 0
        return data

    async def receive_until(self, delim: bytes, *, max_bytes: int = 65536) -> bytes:
        """Return the next frame ending with ``delim``, without the delimiter.

        Args:
            delim: the non-empty delimiter, such as ``b"\\n"``.
            max_bytes: the longest frame accepted, delimiter excluded.

        Raises:
            ProtocolError: the frame is longer than ``max_bytes``, or the peer
                closed the stream in the middle of it.
            anyio.EndOfStream: the peer closed the stream with nothing pending.

        Example:
            >>> import trio, trio.testing
            >>> async def main():
            ...     a, b = trio.testing.memory_stream_pair()
            ...     await a.send_all(b"one|two|")
            ...     buf = Buffered(b)
            ...     print(await buf.receive_until(b"|"), await buf.receive_until(b"|"))
            >>> trio.run(main)
            b'one' b'two'
        """
        if not delim:
            raise ConfigError("receive_until needs a non-empty delimiter")
        buf = self._buf
        while True:
            idx = buf.find(delim, self._scan)
            if idx >= 0:
                if idx > max_bytes:
                    self._too_long(idx, max_bytes)
                frame = bytes(buf[:idx])
                del buf[: idx + len(delim)]
                self._scan = 0
                return frame
            # A delimiter may straddle the old end and the next chunk.
            self._scan = max(0, len(buf) - len(delim) + 1)
            if self._scan > max_bytes:
                self._too_long(len(buf), max_bytes)
            if not await self._receive_more():
                raise anyio.EndOfStream

    async def receive_exactly(self, n: int) -> bytes:
        """Return exactly ``n`` bytes.

        Raises:
            ProtocolError: the peer closed the stream after fewer than ``n`` bytes.
            anyio.EndOfStream: the peer closed the stream with nothing pending.

        Example:
            >>> import trio, trio.testing
            >>> async def main():
            ...     a, b = trio.testing.memory_stream_pair()
            ...     await a.send_all(b"abcdef")
            ...     print(await Buffered(b).receive_exactly(4))
            >>> trio.run(main)
            b'abcd'
        """
        if not await self.fill(n):
            raise anyio.EndOfStream
        buf = self._buf
        data = bytes(buf[:n])
        del buf[:n]
        self._scan = 0
        return data

    async def fill(self, n: int) -> bool:
        """Receive until at least ``n`` bytes are buffered; False at a clean EOF.

        A clean EOF is one with nothing buffered. An EOF with fewer than ``n``
        bytes buffered raises `ProtocolError`.

        Example:
            >>> import trio, trio.testing
            >>> async def main():
            ...     a, b = trio.testing.memory_stream_pair()
            ...     await a.send_eof()
            ...     print(await Buffered(b).fill(1))
            >>> trio.run(main)
            False
        """
        while len(self._buf) < n:
            if not await self._receive_more():
                return False
        return True

    def peek(self, n: int) -> bytes:
        """Return up to ``n`` buffered bytes without consuming them.

        Example:
            >>> import trio.testing
            >>> Buffered(trio.testing.memory_stream_pair()[0]).peek(4)
            b''
        """
        return bytes(self._buf[:n])

    def consume(self, n: int) -> None:
        """Drop ``n`` buffered bytes (after a `peek`).

        Example:
            >>> import trio.testing
            >>> Buffered(trio.testing.memory_stream_pair()[0]).consume(0)
        """
        del self._buf[:n]
        self._scan = 0

    async def _receive_more(self) -> bool:
        # False at a clean EOF; ProtocolError at an EOF inside a frame.
        data = await self.stream.receive_some()
        if data:
            self._buf += data
            return True
        if self._buf:
            raise ProtocolError(
                f"the peer closed the stream with {len(self._buf)} bytes of a partial "
                "frame pending; it sent an incomplete frame"
            )
        return False

    def _too_long(self, length: int, max_bytes: int) -> None:
        raise ProtocolError(
            f"frame longer than max_bytes={max_bytes} ({length} bytes pending without a "
            "delimiter); raise max_bytes or check the delimiter"
        )

    async def aclose(self) -> None:
        """Close the underlying stream and forget the buffer.

        Example:
            >>> import trio, trio.testing
            >>> trio.run(Buffered(trio.testing.memory_stream_pair()[0]).aclose)
        """
        self._buf.clear()
        self._scan = 0
        await self.stream.aclose()


def _buffered(stream: ByteStream | Buffered) -> Buffered:
    return stream if isinstance(stream, Buffered) else Buffered(stream)


class _FrameIterator(AsyncResource):
    """Shared ``async for`` and ``async with`` support: iteration ends at a clean EOF."""

    __slots__ = ("buffered",)

    buffered: Buffered

    async def receive(self) -> bytes:
        raise NotImplementedError

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self.buffered.aclose()


class LengthPrefixed(_FrameIterator):
    """Messages preceded by their length, packed with a `struct` format.

    Args:
        stream: a `ByteStream`, or a `Buffered` to share its buffer.
        header: a `struct` format with one unsigned integer, such as ``"!I"``
            (4 bytes, big endian, the default) or ``"<H"``.
        max_size: the largest message accepted or sent, header excluded.

    Example:
        >>> import trio, trio.testing
        >>> async def main():
        ...     a, b = trio.testing.memory_stream_pair()
        ...     await LengthPrefixed(a).send(b"hi")
        ...     print(bytes(await b.receive_some()))
        >>> trio.run(main)
        b'\\x00\\x00\\x00\\x02hi'
    """

    __slots__ = ("_header", "max_size")

    def __init__(
        self, stream: ByteStream | Buffered, header: str = "!I", max_size: int = 16 * 2**20
    ) -> None:
        try:
            self._header = struct.Struct(header)
            fields = self._header.unpack(bytes(self._header.size))
        except struct.error as exc:
            raise ConfigError(f"bad length header format {header!r}: {exc}") from None
        if len(fields) != 1 or not isinstance(fields[0], int):
            raise ConfigError(
                f"length header {header!r} must hold exactly one integer, such as '!I' or '<H'"
            )
        self.buffered = _buffered(stream)
        self.max_size = max_size

    async def send(self, msg: bytes | bytearray | memoryview) -> None:
        """Send one message with its length header.

        Raises:
            ProtocolError: the message is larger than ``max_size`` or than the header holds.

        Example:
            >>> import trio, trio.testing
            >>> async def main():
            ...     a, b = trio.testing.memory_stream_pair()
            ...     await LengthPrefixed(a, header="!H").send(b"abc")
            ...     print(await LengthPrefixed(b, header="!H").receive())
            >>> trio.run(main)
            b'abc'
        """
        size = len(msg)
        if size > self.max_size:
            raise ProtocolError(
                f"message of {size} bytes exceeds max_size={self.max_size}; "
                "split it or raise max_size"
            )
        try:
            head = self._header.pack(size)
        except struct.error:
            raise ProtocolError(
                f"message of {size} bytes does not fit the {self._header.format!r} length "
                "header; use a wider header such as '!I'"
            ) from None
        buffered = self.buffered
        if buffered.annotate is not None:
            buffered.annotate(f"frame > {size} bytes")
        await buffered.stream.send_all(head + msg)

    async def receive(self) -> bytes:
        """Receive one message, without its header.

        Raises:
            ProtocolError: the announced length exceeds ``max_size``, or the peer
                closed the stream in the middle of a message.
            anyio.EndOfStream: the peer closed the stream between messages.

        Example:
            >>> import trio, trio.testing
            >>> async def main():
            ...     a, b = trio.testing.memory_stream_pair()
            ...     await a.send_all(b"\\x00\\x00\\x00\\x03abc")
            ...     print(await LengthPrefixed(b).receive())
            >>> trio.run(main)
            b'abc'
        """
        buffered = self.buffered
        hsize = self._header.size
        if not await buffered.fill(hsize):
            raise anyio.EndOfStream
        (size,) = self._header.unpack(buffered.peek(hsize))
        if size > self.max_size:
            raise ProtocolError(
                f"the peer announced a message of {size} bytes, more than "
                f"max_size={self.max_size}; raise max_size or check the header format"
            )
        await buffered.fill(hsize + size)  # EOF here is always mid-frame: ProtocolError
        msg = buffered.peek(hsize + size)[hsize:]
        buffered.consume(hsize + size)
        if buffered.annotate is not None:
            buffered.annotate(f"frame < {size} bytes")
        return msg


class Lines(_FrameIterator):
    """Lines of bytes ending with ``delimiter``; received lines come without it.

    Args:
        stream: a `ByteStream`, or a `Buffered` to share its buffer.
        delimiter: the line ending, ``b"\\n"`` by default (``b"\\r\\n"`` for
            most text protocols).
        max_bytes: the longest line accepted, delimiter excluded.

    Example:
        >>> import trio, trio.testing
        >>> async def main():
        ...     a, b = trio.testing.memory_stream_pair()
        ...     await a.send_all(b"PING\\r\\n")
        ...     print(await Lines(b, delimiter=b"\\r\\n").receive())
        >>> trio.run(main)
        b'PING'
    """

    __slots__ = ("delimiter", "max_bytes")

    def __init__(
        self, stream: ByteStream | Buffered, delimiter: bytes = b"\n", *, max_bytes: int = 65536
    ) -> None:
        if not delimiter:
            raise ConfigError("Lines needs a non-empty delimiter, such as b'\\n'")
        self.buffered = _buffered(stream)
        self.delimiter = delimiter
        self.max_bytes = max_bytes

    async def send(self, line: bytes | bytearray | memoryview) -> None:
        """Send ``line`` followed by the delimiter.

        Raises:
            ProtocolError: the line contains the delimiter, so the peer would
                read two lines.

        Example:
            >>> import trio, trio.testing
            >>> async def main():
            ...     a, b = trio.testing.memory_stream_pair()
            ...     await Lines(a).send(b"hello")
            ...     print(bytes(await b.receive_some()))
            >>> trio.run(main)
            b'hello\\n'
        """
        line = bytes(line)
        if self.delimiter in line:
            raise ProtocolError(
                f"line {line[:40]!r} contains the delimiter {self.delimiter!r}; "
                "split it into several lines"
            )
        buffered = self.buffered
        if buffered.annotate is not None:
            buffered.annotate(f"line > {shown(line)}")
        await buffered.stream.send_all(line + self.delimiter)

    async def receive(self) -> bytes:
        """Receive the next line, without the delimiter.

        Raises:
            ProtocolError: the line is longer than ``max_bytes``, or the peer
                closed the stream in the middle of it.
            anyio.EndOfStream: the peer closed the stream between lines.

        Example:
            >>> import trio, trio.testing
            >>> async def main():
            ...     a, b = trio.testing.memory_stream_pair()
            ...     await a.send_all(b"a\\nb\\n")
            ...     lines = Lines(b)
            ...     print(await lines.receive(), await lines.receive())
            >>> trio.run(main)
            b'a' b'b'
        """
        buffered = self.buffered
        line = await buffered.receive_until(self.delimiter, max_bytes=self.max_bytes)
        if buffered.annotate is not None:
            buffered.annotate(f"line < {shown(line)}")
        return line
