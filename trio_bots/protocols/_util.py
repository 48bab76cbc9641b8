"""Small helpers shared by the protocol clients: URLs, one task at a time, forceful close."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import urlsplit

import anyio
import trio

from .._errors import ConfigError
from ._types import ByteStream

# What a stream raises when the peer reset or vanished: trio's, anyio's or the OS's.
BROKEN = (trio.BrokenResourceError, anyio.BrokenResourceError, ConnectionError)


class _Scheme(NamedTuple):
    port: int  # the default port
    tls: bool
    example: str  # a URL to show in error messages


_SCHEMES = {
    "http": _Scheme(80, False, "http://127.0.0.1:8080/api"),
    "https": _Scheme(443, True, "https://localhost:8443/api"),
    "ws": _Scheme(80, False, "ws://127.0.0.1:9000/chat"),
    "wss": _Scheme(443, True, "wss://localhost:9443/chat"),
    "redis": _Scheme(6379, False, "redis://127.0.0.1:6379/0"),
}


class Target(NamedTuple):
    """Where a URL points: the parts a client needs to connect and to send a request."""

    scheme: str
    host: str
    port: int
    tls: bool
    authority: str  # the Host header value
    path: str  # path (and query) without a trailing "/" for a bare origin


def split_url(url: str, schemes: tuple[str, ...]) -> Target:
    """Split ``url`` into a `Target`, raising `ConfigError` for anything else than ``schemes``.

    The port defaults to the scheme's (80, 443, 6379...); ``https`` and ``wss`` mean TLS.

    Raises:
        ConfigError: another scheme, no host or a bad port; the message shows a good URL.

    Example:
        >>> target = split_url("https://example.test/api?v=2", ("http", "https"))
        >>> target.host, target.port, target.tls, target.path
        ('example.test', 443, True, '/api?v=2')
        >>> try:
        ...     split_url("ftp://example.test", ("redis",))
        ... except ConfigError as exc:
        ...     print(exc)
        URL 'ftp://example.test' must start with redis://, such as redis://127.0.0.1:6379/0
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    example = _SCHEMES[schemes[0]].example
    if scheme not in schemes:
        want = " or ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"URL {url!r} must start with {want}, such as {example}")
    host = parts.hostname
    if not host:
        raise ConfigError(f"URL {url!r} has no host; write it like {example}")
    default = _SCHEMES[scheme].port
    try:
        port = parts.port or default
    except ValueError as exc:
        raise ConfigError(f"URL {url!r} has a bad port ({exc}); write it like {example}") from None
    shown = f"[{host}]" if ":" in host else host
    authority = shown if port == default else f"{shown}:{port}"
    path = parts.path
    if parts.query:
        path = f"{path or '/'}?{parts.query}"
    return Target(scheme, host, port, _SCHEMES[scheme].tls, authority, path)


class ConflictDetector:
    """Refuse a second task on a connection that carries one request at a time.

    Use it as a synchronous context manager around each request: while one
    task is inside, another one entering raises `trio.BusyResourceError`
    (their requests and replies would interleave on the wire). Like trio's
    own detector of concurrent ``send_all`` calls, it is a check, not a lock.

    Args:
        what: the resource, as the error names it, such as ``"HTTP client"``.
        hint: how to get another one, such as ``"await http.connect(...)"``.

    Example:
        >>> guard = ConflictDetector("Redis client", "await resp.connect(...)")
        >>> with guard:  # doctest: +NORMALIZE_WHITESPACE
        ...     try:
        ...         with guard:  # a second task would get here
        ...             pass
        ...     except trio.BusyResourceError as exc:
        ...         print(exc)
        another task is already using this Redis client: it carries one request at a time,
        so their replies would interleave; give each task its own client
        (await resp.connect(...))
        >>> guard.held
        False
    """

    __slots__ = ("_held", "_message")

    def __init__(self, what: str, hint: str) -> None:
        self._message = (
            f"another task is already using this {what}: it carries one request at a time, "
            f"so their replies would interleave; give each task its own client ({hint})"
        )
        self._held = False

    @property
    def held(self) -> bool:
        """True while a task is inside the ``with`` block."""
        return self._held

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._message)
        self._held = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._held = False


async def aclose_forcefully(stream: ByteStream) -> None:
    """Close ``stream`` at once, without a graceful TLS close, even when cancelled."""
    with anyio.CancelScope() as scope:
        scope.cancel()
        await stream.aclose()


class AsyncResource:
    """``async with`` support for a class with ``aclose()``: leaving the block closes it."""

    __slots__ = ()

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


#: The longest text a protocol helper writes into a transcript for one frame.
NOTE_LIMIT = 200


def annotator(stream: Any) -> Callable[[str], None] | None:
    """The stream's ``annotate(text)`` when it has one (a traced bot's stream), else None.

    Protocol helpers look it up once, when they wrap a stream, and then write
    their frames into the bot's wire transcript only when it is not None: an
    untraced stream costs one ``is None`` test per frame.

    Example:
        >>> import trio.testing
        >>> annotator(trio.testing.memory_stream_pair()[0]) is None
        True
    """
    annotate = getattr(stream, "annotate", None)
    return annotate if callable(annotate) else None


def shown(data: bytes | bytearray | memoryview | str, limit: int = NOTE_LIMIT) -> str:
    """`data` as readable text for a transcript note, cut at `limit` characters.

    Example:
        >>> shown(b"GET / HTTP/1.1\\xff")
        'GET / HTTP/1.1\\\\xff'
    """
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", "backslashreplace")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
