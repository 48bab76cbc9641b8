"""A request/response byte stream straight on the socket of a plain `trio.SocketStream`.

`trio.SocketStream` goes through several layers for each call: its conflict
detector, an error-translating context manager, the trio socket's
``_nonblocking_helper`` and its ``_try_sync`` async context manager, which
checks for cancellation before the system call and yields to the scheduler
after it. For a client that sends one request and then waits for its reply,
that is two trips through the scheduler per request where one is enough:
the wait for the reply is a checkpoint already.

`DirectStream` reads and writes the socket's file descriptor with
`os.read`/`os.write` (on POSIX, the same system calls as ``recv``/``send``
without flags) and waits with `trio.lowlevel.wait_readable` /
`trio.lowlevel.wait_writable` only when a call would block. Errors are
trio's, mapped the way `trio.SocketStream` maps them: `trio.ClosedResourceError`
for a closed socket, `trio.BrokenResourceError` (the `OSError` as its cause)
otherwise.

Checkpoints are per exchange, not per call: `send_all` does not yield when
the kernel takes the bytes at once, and the first `receive_some` after it
waits for the socket to be readable before it reads (the reply is almost
never there yet, so a read would only fail with ``EAGAIN``). That wait is a
full checkpoint, so a request and its reply are one checkpoint at least, as
trio requires of every async call; later calls read first and wait only
when nothing is ready. A cancelled exchange may have sent its request: the
caller must drop the connection on any exception, as the protocol clients do.

Use `direct_stream` to get one only for a stream it suits.

Example:
    >>> import trio
    >>> async def main():
    ...     listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    ...     client = await trio.open_tcp_stream(*listener.socket.getsockname())
    ...     server = await listener.accept()
    ...     direct = direct_stream(client)
    ...     await direct.send_all(b"ping")
    ...     print(await server.receive_some())
    ...     await server.send_all(b"pong")
    ...     print(await direct.receive_some())
    ...     for resource in (client, server, listener):
    ...         await resource.aclose()
    >>> trio.run(main)
    b'ping'
    b'pong'
"""

from __future__ import annotations

import errno
import os
from typing import Any, NoReturn

import trio

__all__ = ["DirectStream", "direct_stream"]

_RECEIVE_SIZE = 65536  # as trio.SocketStream's default
_CLOSED_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK})  # as trio.SocketStream's
_SUPPORTED = os.name == "posix"  # os.read/os.write on a socket: not on Windows


def direct_stream(stream: Any) -> DirectStream | None:
    """A `DirectStream` over ``stream`` when it is exactly a `trio.SocketStream`, else None.

    Not for TLS, traced or simulated streams, nor the asyncio adapter (their
    type is another), nor a subclass, nor on Windows.

    Example:
        >>> import trio.testing
        >>> direct_stream(trio.testing.memory_stream_pair()[0]) is None
        True
    """
    if _SUPPORTED and type(stream) is trio.SocketStream:
        return DirectStream(stream.socket)
    return None


def _open_fd(socket: trio.socket.SocketType) -> int:
    """The socket's fd, or `trio.ClosedResourceError` once it is closed (checked before
    every system call: a closed fd number may already be another file's)."""
    fd = socket.fileno()
    if fd < 0:
        raise trio.ClosedResourceError("this socket was already closed")
    return fd


def _raise_translated(exc: OSError) -> NoReturn:
    # As trio.SocketStream does: a closed socket, or a broken connection with its cause.
    if exc.errno in _CLOSED_ERRNOS:
        raise trio.ClosedResourceError("this socket was already closed") from None
    raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc


class DirectStream:
    """``send_all`` and ``receive_some`` on a trio socket's file descriptor; see the module.

    It does not own the socket: closing the `trio.SocketStream` closes it,
    and a call after that raises `trio.ClosedResourceError`.

    Example:
        >>> import trio
        >>> async def main():
        ...     listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        ...     client = await trio.open_tcp_stream(*listener.socket.getsockname())
        ...     server = await listener.accept()
        ...     direct = DirectStream(client.socket)
        ...     await server.aclose()
        ...     print(await direct.receive_some())  # end of file
        ...     await client.aclose()
        ...     try:
        ...         await direct.send_all(b"late")
        ...     except trio.ClosedResourceError as exc:
        ...         print(exc)
        ...     await listener.aclose()
        >>> trio.run(main)
        b''
        this socket was already closed
    """

    __slots__ = ("_pending", "_socket")

    def __init__(self, socket: trio.socket.SocketType) -> None:
        self._socket = socket
        self._pending = False  # sent since the last wait: receive_some waits before reading

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send every byte of ``data``, waiting only while the kernel's buffer is full."""
        socket = self._socket
        self._pending = True
        view: bytes | bytearray | memoryview = data
        while True:
            fd = _open_fd(socket)
            try:
                sent = os.write(fd, view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(fd)
                self._pending = False
                continue
            except OSError as exc:
                _raise_translated(exc)
            if sent >= len(view):
                return
            view = memoryview(view)[sent:]

    async def receive_some(self, max_bytes: int = _RECEIVE_SIZE) -> bytes:
        """Up to ``max_bytes`` bytes, ``b""`` at end of file.

        The first call after `send_all` waits until the socket is readable;
        the others wait only when nothing is ready.
        """
        socket = self._socket
        if self._pending:
            self._pending = False
            await trio.lowlevel.wait_readable(_open_fd(socket))
        while True:
            fd = _open_fd(socket)
            try:
                data = os.read(fd, max_bytes)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
                continue
            except OSError as exc:
                _raise_translated(exc)
            return data
