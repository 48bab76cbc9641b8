"""Connections a bot opens: TCP (with TLS), UDP and listeners.

On trio the bot gets trio's own objects (`trio.SocketStream`, `trio.SSLStream`,
`trio.SocketListener`). On asyncio it gets small adapters with the same
surface, which raise trio's `BrokenResourceError`/`ClosedResourceError`, so
worker code is the same on both backends.

Example:
    >>> import trio
    >>> async def main():
    ...     listener = await open_tcp_listener(0, "127.0.0.1")
    ...     port = listener.socket.getsockname()[1]
    ...     stream = await connect_tcp("127.0.0.1", port)
    ...     await stream.aclose(); await listener.aclose()
    ...     return type(stream).__name__
    >>> trio.run(main)
    'SocketStream'
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any, Protocol

import anyio
import anyio.abc
import trio

from .._errors import ConfigError, ConnectError
from .backend import current_backend

_RECEIVE_SIZE = 65536


class SimulatedNetwork(Protocol):
    """What the ``network`` option takes: a simulated network that bots connect over.

    `trio_bots.testing.Network` is one. With ``network=``, `connect_tcp` asks
    it for the stream and never opens a socket; UDP and listeners refuse.
    """

    async def connect_tcp(self, host: str, port: int) -> Any:
        """A trio stream to whatever the network serves at (host, port).

        Raises:
            ConnectError: nothing serves that address.
        """

    def reseed(self, seed: int | str | None) -> None:
        """Called as each swarm starts, with its ``seed``: start the jitter afresh."""


def _no_sockets(what: str, network: Any) -> ConfigError:
    return ConfigError(
        f"{what} does not go over the simulated network (network={network!r}), and with "
        "network= nothing falls back to a real socket; use bot.connect_tcp, or run "
        "without network="
    )


#: OS errors that say the machine, not the target, ran out of something: what to do.
_LIMITS = {
    errno.EMFILE: "too many open files (EMFILE): this process is at its fd limit "
    "(RLIMIT_NOFILE); raise it with `ulimit -n`, or give sockets_per_bot so that the "
    "swarm's preflight raises it",
    errno.ENFILE: "too many open files in the system (ENFILE): the machine is at its fd "
    "limit; raise fs.file-max, or run fewer bots",
    errno.EADDRNOTAVAIL: "no free local port (EADDRNOTAVAIL): the ephemeral ports are used "
    "up; widen net.ipv4.ip_local_port_range, enable net.ipv4.tcp_tw_reuse, reuse "
    "connections, or spread the bots over more target addresses",
}


def _limit(exc: BaseException | None, depth: int = 0) -> str | None:
    """The teaching message of a resource limit somewhere in `exc`, its group or causes."""
    if exc is None or depth > 8:
        return None
    if isinstance(exc, OSError) and exc.errno in _LIMITS:
        return _LIMITS[exc.errno]
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _limit(inner, depth + 1)
            if found:
                return found
    return _limit(exc.__cause__, depth + 1)


def _reason(exc: BaseException) -> str:
    # No local address or port in it: the failures of every bot fold into one group.
    limit = _limit(exc)
    if limit:
        return limit
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in exc.exceptions)
    return str(exc) or type(exc).__name__


async def connect_tcp(
    host: str,
    port: int,
    *,
    tls: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    network: SimulatedNetwork | None = None,
) -> Any:
    """Open a TCP connection with TCP_NODELAY, and do the TLS handshake when asked.

    Returns a `trio.SocketStream` (or `trio.SSLStream`) on trio, an
    `AsyncioStream` elsewhere. With a `network`, the stream comes from it
    (trio only), and TLS runs over that stream.

    Raises:
        ConnectError: naming host and port, with the OS or TLS error as ``__cause__``.
    """
    if ssl_context is not None or server_hostname is not None:
        tls = True
    if tls and ssl_context is None:
        ssl_context = ssl.create_default_context()
    if network is not None or current_backend().is_trio:
        if network is not None:
            stream: Any = await network.connect_tcp(host, port)
        else:
            try:
                stream = await trio.open_tcp_stream(host, port)
            except (OSError, BaseExceptionGroup) as exc:
                raise ConnectError(f"cannot connect to {host}:{port}: {_reason(exc)}") from exc
        if not tls:
            return stream
        assert ssl_context is not None
        ssl_stream = trio.SSLStream(
            stream, ssl_context, server_hostname=server_hostname or host, https_compatible=True
        )
        try:
            await ssl_stream.do_handshake()
        except (trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
            await trio.aclose_forcefully(stream)
            cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
            raise ConnectError(
                f"TLS handshake with {host}:{port} failed: {_reason(cause or exc)}"
            ) from (cause or exc)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return ssl_stream
    try:
        raw: Any
        if tls:
            # Not standard_compatible, like trio's https_compatible: aclose() does not wait
            # for the peer's close_notify, and an EOF without one is a plain EOF.
            raw = await anyio.connect_tcp(
                host,
                port,
                ssl_context=ssl_context,
                tls_hostname=server_hostname or host,
                tls_standard_compatible=False,
            )
        else:
            raw = await anyio.connect_tcp(host, port)
    except ssl.SSLError as exc:
        raise ConnectError(f"TLS handshake with {host}:{port} failed: {_reason(exc)}") from exc
    except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:
        # Only the TLS handshake raises these: the peer reset or closed the connection.
        # anyio raises EndOfStream "from None", leaving the SSL error as its context.
        cause = exc.__cause__ or exc.__context__
        if not isinstance(cause, OSError):
            cause = exc
        why = _reason(cause) if cause is not exc else "the peer closed the connection"
        raise ConnectError(f"TLS handshake with {host}:{port} failed: {why}") from cause
    except (OSError, BaseExceptionGroup) as exc:
        raise ConnectError(f"cannot connect to {host}:{port}: {_reason(exc)}") from exc
    sock = raw.extra(anyio.abc.SocketAttribute.raw_socket, None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return AsyncioStream(raw)


class AsyncioStream:
    """A trio-shaped byte stream over an anyio stream, for bots on asyncio.

    ``receive_some()`` returns ``b""`` at EOF; errors are trio's
    `BrokenResourceError` and `ClosedResourceError`.

    Example:
        >>> import anyio
        >>> async def main():
        ...     listener = await open_tcp_listener(0, "127.0.0.1")
        ...     stream = await connect_tcp("127.0.0.1", listener.socket.getsockname()[1])
        ...     server = await listener.accept()
        ...     await stream.send_all(b"ping")
        ...     data = await server.receive_some()
        ...     for resource in (stream, server, listener):
        ...         await resource.aclose()
        ...     return type(stream).__name__, data
        >>> anyio.run(main, backend="asyncio")
        ('AsyncioStream', b'ping')
    """

    __slots__ = ("_stream",)

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream

    @property
    def socket(self) -> Any:
        """The underlying socket, when there is one."""
        return self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send every byte of `data`."""
        try:
            await self._stream.send(bytes(data))
        except anyio.ClosedResourceError as exc:
            raise trio.ClosedResourceError(str(exc)) from exc
        except (anyio.BrokenResourceError, OSError) as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Receive up to `max_bytes` bytes; ``b""`` at EOF."""
        try:
            return await self._stream.receive(max_bytes or _RECEIVE_SIZE)
        except anyio.EndOfStream:
            return b""
        except anyio.ClosedResourceError as exc:
            raise trio.ClosedResourceError(str(exc)) from exc
        except (anyio.BrokenResourceError, OSError) as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    async def send_eof(self) -> None:
        """Close the sending side, where the stream supports it."""
        send_eof = getattr(self._stream, "send_eof", None)
        if send_eof is not None:
            await send_eof()

    async def aclose(self) -> None:
        """Close the stream."""
        await self._stream.aclose()


class UDPConnection:
    """A connected UDP socket: ``send(data)``, ``receive()``, ``aclose()``.

    Example:
        >>> import trio, trio_bots
        >>> async def main():
        ...     server = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        ...     await server.bind(("127.0.0.1", 0))
        ...     async def worker(bot):
        ...         udp = await bot.connect_udp(*server.getsockname())
        ...         await udp.send(b"ping")
        ...     await trio_bots.swarm(worker, 1)
        ...     data, _ = await server.recvfrom(100)
        ...     server.close()
        ...     return data
        >>> trio.run(main)
        b'ping'
    """

    __slots__ = ("_anyio", "_sock")

    def __init__(self, sock: Any = None, anyio_socket: Any = None) -> None:
        self._sock = sock
        self._anyio = anyio_socket

    async def send(self, data: bytes) -> None:
        """Send one datagram."""
        if self._sock is not None:
            await self._sock.send(data)
        else:
            await self._anyio.send(data)

    async def receive(self) -> bytes:
        """Wait for one datagram."""
        if self._sock is not None:
            return bytes(await self._sock.recv(_RECEIVE_SIZE))
        return bytes(await self._anyio.receive())

    async def aclose(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            await trio.lowlevel.checkpoint()
        else:
            await self._anyio.aclose()


async def connect_udp(
    host: str, port: int, *, network: SimulatedNetwork | None = None
) -> UDPConnection:
    """A UDP socket connected to (host, port).

    Raises:
        ConnectError: when the address cannot be resolved or used.
        ConfigError: with a `network`: UDP is not simulated.
    """
    if network is not None:
        raise _no_sockets("UDP (bot.connect_udp)", network)
    try:
        if current_backend().is_trio:
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            family, _, _, _, address = infos[0]
            sock = trio.socket.socket(family, socket.SOCK_DGRAM)
            try:
                await sock.connect(address)
            except BaseException:
                sock.close()
                raise
            return UDPConnection(sock=sock)
        udp = await anyio.create_connected_udp_socket(host, port)
        return UDPConnection(anyio_socket=udp)
    except OSError as exc:
        raise ConnectError(f"cannot open UDP to {host}:{port}: {_reason(exc)}") from exc


class AsyncioListener:
    """A trio-shaped TCP listener on asyncio: ``accept()`` gives an `AsyncioStream`."""

    __slots__ = ("_listener",)

    def __init__(self, listener: Any) -> None:
        self._listener = listener

    @property
    def socket(self) -> Any:
        """The listening socket."""
        return self._listener.extra(anyio.abc.SocketAttribute.raw_socket)

    async def accept(self) -> AsyncioStream:
        """Wait for the next connection."""
        return AsyncioStream(await self._listener.accept())

    async def aclose(self) -> None:
        """Stop listening."""
        await self._listener.aclose()


async def open_tcp_listener(
    port: int = 0, host: str = "127.0.0.1", *, network: SimulatedNetwork | None = None
) -> Any:
    """A TCP listener on (host, port); port 0 picks a free one.

    Read the port back with ``listener.socket.getsockname()[1]``.

    Raises:
        ConfigError: with a `network`: serve with ``net.serve`` instead.
    """
    if network is not None:
        raise _no_sockets("a TCP listener (bot.open_tcp_listener; serve with net.serve)", network)
    try:
        if current_backend().is_trio:
            listeners: list[Any] = await trio.open_tcp_listeners(port, host=host)
            for extra in listeners[1:]:
                await extra.aclose()
            return listeners[0]
        multi: Any = await anyio.create_tcp_listener(local_host=host, local_port=port)
        inner = multi.listeners[0]
        for extra in multi.listeners[1:]:
            await extra.aclose()
        return AsyncioListener(inner)
    except OSError as exc:
        raise ConnectError(f"cannot listen on {host}:{port}: {_reason(exc)}") from exc
