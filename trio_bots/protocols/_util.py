"""Small helpers shared by the protocol clients: URLs, forceful close."""

from __future__ import annotations

from types import TracebackType
from typing import NamedTuple, Self
from urllib.parse import urlsplit

import anyio
import trio

from .._errors import ConfigError
from ._types import ByteStream

# What a stream raises when the peer reset or vanished: trio's, anyio's or the OS's.
BROKEN = (trio.BrokenResourceError, anyio.BrokenResourceError, ConnectionError)

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_TLS_SCHEMES = frozenset({"https", "wss"})


class Target(NamedTuple):
    """Where a URL points: the parts a client needs to connect and to send a request."""

    scheme: str
    host: str
    port: int
    tls: bool
    authority: str  # the Host header value
    path: str  # path (and query) without a trailing "/" for a bare origin


def split_url(url: str, schemes: tuple[str, ...]) -> Target:
    """Split ``url`` into a `Target`, raising `ConfigError` for anything else than ``schemes``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        want = " or ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"URL {url!r} must start with {want}")
    host = parts.hostname
    if not host:
        raise ConfigError(f"URL {url!r} has no host; write it as {schemes[0]}://HOST[:PORT]/PATH")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ConfigError(f"URL {url!r} has a bad port: {exc}") from None
    shown = f"[{host}]" if ":" in host else host
    authority = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    path = parts.path
    if parts.query:
        path = f"{path or '/'}?{parts.query}"
    return Target(scheme, host, port, scheme in _TLS_SCHEMES, authority, path)


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
