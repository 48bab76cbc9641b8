"""The wire between the driver and a shard process: pickled messages, each framed by its length.

One end of a `socket.socketpair` goes to the child through ``pass_fds``; each
side sends ``(kind, *fields)`` tuples. `send_frame` / `receive_frame` work on
an anyio byte stream; `read_frame_blocking` reads the child's configuration
before its event loop starts.

Example:
    >>> import socket
    >>> a, b = socket.socketpair()
    >>> write_frame_blocking(a, ("config", {"index": 0}))
    >>> read_frame_blocking(b)
    ('config', {'index': 0})
    >>> a.close(); b.close()
"""

from __future__ import annotations

import pickle
import socket
import struct
from typing import Any

import anyio
from anyio.abc import ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream

_HEADER = struct.Struct("!I")


def encode(message: Any) -> bytes:
    """A message as one frame: its length, then its pickle."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def write_frame_blocking(sock: socket.socket, message: Any) -> None:
    """Send one message on a blocking socket."""
    sock.sendall(encode(message))


def read_frame_blocking(sock: socket.socket) -> Any:
    """Read one message from a blocking socket; EOFError if it closed first."""

    def exactly(n: int) -> bytes:
        chunks = []
        while n:
            chunk = sock.recv(n)
            if not chunk:
                raise EOFError("the other end closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    (length,) = _HEADER.unpack(exactly(_HEADER.size))
    return pickle.loads(exactly(length))


class Wire:
    """Framed messages over an anyio byte stream (one end of the socket pair).

    Example:
        >>> import anyio, socket
        >>> from anyio.abc import SocketStream
        >>> async def main():
        ...     a, b = socket.socketpair()
        ...     left = Wire(await SocketStream.from_socket(a))
        ...     right = Wire(await SocketStream.from_socket(b))
        ...     await left.send(("tick", 1))
        ...     await left.aclose()
        ...     got = await right.receive(), await right.receive()
        ...     await right.aclose()
        ...     return got
        >>> anyio.run(main)
        (('tick', 1), None)
    """

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self._reader = BufferedByteReceiveStream(stream)
        self._sending = anyio.Lock()  # several tasks may send: one frame at a time

    async def send(self, message: Any) -> None:
        """Send one message (whole, even when several tasks send at once)."""
        async with self._sending:
            await self.stream.send(encode(message))

    async def receive(self) -> Any:
        """The next message, or None when the other end has closed (or died)."""
        try:
            header = await self._reader.receive_exactly(_HEADER.size)
            (length,) = _HEADER.unpack(header)
            return pickle.loads(await self._reader.receive_exactly(length))
        except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError):
            return None

    async def aclose(self) -> None:
        """Close this end."""
        await self.stream.aclose()
