"""A fast HTTP/1.1 keep-alive client over a bot's stream, parsed with httptools.

One `Client` holds one connection at a time and sends one request at a time
(no pipelining), like a browser tab or a Locust ``FastHttpUser``. Each request
is measured under the bot's ``measure``: ``"GET /path"`` by default, with the
query string left out so that ``/item?id=1`` and ``/item?id=2`` share a name.

Semantics:
    * Every status is returned as a `Response`, never raised. A status >= 400
      is recorded as a failed request (``"HTTP 404"``) unless ``expect=``
      lists it; with ``expect=``, any status it does not list is a failure.
    * Bodies framed by Content-Length, by chunked encoding, or by the end of
      the connection are read; HEAD, 1xx, 204 and 304 responses have none.
    * The connection is reopened after ``Connection: close``. An idempotent
      request (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) that finds a stale
      keep-alive connection (closed or reset before any response byte) is
      retried once on a fresh connection; other methods raise
      `trio_bots.ProtocolError`.
    * A malformed or truncated response raises `trio_bots.ProtocolError`
      inside the measurement, so it counts as a failure.

Example:
    >>> import trio, trio_bots
    >>> from trio_bots.protocols import http, testing
    >>> async def worker(bot: trio_bots.Bot) -> None:
    ...     client = await http.connect(bot, f"http://{bot.swarm.host}")
    ...     response = await client.get("/health?full=1")
    ...     print(response.status, response.json()["target"])
    >>> async def main():
    ...     async with testing.open_server(testing.http_echo) as host:
    ...         result = await trio_bots.swarm(worker, 1, host=host)
    ...     print(sorted(result.stats), result.stats["GET /health"].failure_count)
    >>> trio.run(main)
    200 /health?full=1
    ['GET /health'] 0

The examples here run against `trio_bots.protocols.testing.http_echo`,
which answers every request with a JSON description of it.
"""

from __future__ import annotations

import json as _json
import ssl
from collections.abc import Callable, Container, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httptools

from .._errors import ConfigError, ProtocolError
from ._direct import DirectStream, direct_stream
from ._response import Headers, Response
from ._types import BotLike, ByteStream
from ._util import (
    BROKEN,
    AsyncResource,
    ConflictDetector,
    Target,
    aclose_forcefully,
    annotator,
    shown,
    split_url,
)

__all__ = ["Client", "Headers", "Response", "connect"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
_USER_AGENT = "trio-bots/0.1"
_CACHE_SIZE = 512  # distinct (method, path) heads kept pre-built
_MAX_HEAD = 1 << 20  # bytes of status line and headers before we give up
_SAFE_PATH = "/?&=%:@!$'()*+,;~#[]"
_NOTE_HEAD = 4000  # characters of a request or response head in a transcript note

HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | None


class _Stale(Exception):
    """The connection closed or reset before any byte of the response."""


class _Reader:
    """httptools callbacks for one response at a time on one connection."""

    __slots__ = (
        "body",
        "done",
        "extra",
        "head",
        "headers",
        "headers_done",
        "keep_alive",
        "parser",
        "reason",
        "status",
        "version",
    )

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reset(False)

    def reset(self, head: bool) -> None:
        self.head = head
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.reason = b""
        self.headers_done = False
        self.done = False
        self.extra = False  # bytes arrived after the response: do not reuse the connection
        self.keep_alive = False
        self.status = 0
        self.version = "1.1"

    def on_message_begin(self) -> None:
        if self.done:  # a second response nobody asked for: stop parsing, drop the connection
            self.extra = True
            raise _Stale

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        # llhttp forgets status, version and keep-alive once the message ends: keep them.
        parser = self.parser
        self.headers_done = True
        self.status = status = parser.get_status_code()
        self.version = parser.get_http_version()
        self.keep_alive = parser.should_keep_alive()
        # httptools cannot be told that a HEAD response has no body: stop here.
        if self.head and not 100 <= status < 200:
            self.done = True

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        status = self.status
        self.keep_alive = self.parser.should_keep_alive()
        if 100 <= status < 200 and status != 101:  # interim response: wait for the real one
            self.headers = []
            self.reason = b""
            self.headers_done = False
        else:
            self.done = True

    def ends_at_eof(self) -> bool:
        # True when the body is delimited by the end of the connection.
        if not self.headers_done:
            return False
        for name, value in self.headers:
            lname = name.lower()
            if lname == b"content-length" or (
                lname == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                return False
        return True


class Client(AsyncResource):
    """An HTTP/1.1 client bound to one origin and one bot; get one from `connect`.

    It is an async context manager; leaving it closes the connection.

    Attributes:
        url: the origin (and path prefix) given to `connect`.
        connections: how many connections it has opened so far.
        direct: True while the connection is a plain `trio.SocketStream`, which
            the client reads and writes on its socket directly, without the
            stream's layers (faster, same errors); False for TLS, traced or
            simulated streams and on asyncio.

    Example:
        >>> import trio, trio_bots
        >>> from trio_bots.protocols import http, testing
        >>> async def worker(bot):
        ...     async with await http.connect(bot, f"http://{bot.swarm.host}/api") as client:
        ...         r = await client.post("/login", json={"user": "bot"}, expect=[200, 401])
        ...         print(r.status, r.json()["target"], r.json()["body"], client.connections)
        ...         print(client.direct)  # a plain trio.SocketStream on trio
        >>> async def main():
        ...     async with testing.open_server(testing.http_echo) as host:
        ...         await trio_bots.swarm(worker, 1, host=host)
        >>> trio.run(main)
        200 /api/login {"user":"bot"} 1
        True
    """

    def __init__(
        self,
        bot: BotLike,
        url: str,
        *,
        headers: HeadersArg = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self._target: Target = split_url(url, ("http", "https"))
        self._prefix = self._target.path.rstrip("/").split("?")[0].encode("ascii")
        self._bot = bot
        self._ssl_context = ssl_context
        base = {"host": ("Host", self._target.authority), "user-agent": ("User-Agent", _USER_AGENT)}
        for key, value in _pairs(headers):
            base[key.lower()] = (key, value)
        self._base = base
        self._base_block = _header_block(base.values())
        self._cache: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._stream: ByteStream | None = None
        #: What requests go through: the stream, or a DirectStream on its socket.
        self._wire: ByteStream | DirectStream | None = None
        self._reader: _Reader | None = None
        #: The connection's ``annotate`` when the bot is traced (docs/traces.md), else None.
        self._annotate: Callable[[str], None] | None = None
        self._guard = ConflictDetector("HTTP client", "await http.connect(...)")
        self._sent = 0
        self._received = 0
        self.connections = 0
        self.direct = False

    # -- requests ---------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: HeadersArg = None,
        body: bytes | str | None = None,
        json: Any = None,
        name: str | None = None,
        expect: Container[int] | None = None,
    ) -> Response:
        """Send one request and return its response, whatever its status.

        Args:
            method: the HTTP method, such as ``"GET"``.
            path: the path and query, such as ``"/items?page=2"``.
            headers: extra request headers; they replace defaults of the same name.
            body: the request body (a str is sent as UTF-8).
            json: an object sent as a JSON body with ``Content-Type: application/json``.
            name: the metric name; ``"METHOD /path"`` (without the query) by default.
            expect: the statuses that count as success; by default any below 400.

        Raises:
            ProtocolError: malformed or truncated response, or a stale connection
                for a non-idempotent request (counted as a failure).
            trio_bots.ConnectError: reconnecting failed (counted as a failure).
            trio.BusyResourceError: another task is using this client.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import http, testing
            >>> async def worker(bot):
            ...     client = await http.connect(bot, f"http://{bot.swarm.host}")
            ...     r = await client.request("PATCH", "/items/1", json={"n": 2}, name="edit")
            ...     print(r.json()["method"], r.json()["body"], r.json()["headers"]["content-type"])
            >>> async def main():
            ...     async with testing.open_server(testing.http_echo) as host:
            ...         await trio_bots.swarm(worker, 1, host=host)
            >>> trio.run(main)
            PATCH {"n":2} application/json
        """
        if headers is None and body is None and json is None:
            entry = self._cache.get((method, path))
            if entry is None:
                entry = self._prepare(method, path)
            payload, default_name = entry
        else:
            payload = self._build(method, path, headers, body, json)
            default_name = f"{method} {path.partition('?')[0]}"
        with self._bot.measure(name or default_name) as m:  # the cheaper, plain form
            self._sent = self._received = 0
            try:
                response = await self._exchange(method, path, payload)
            finally:
                m.add_bytes(self._sent, self._received)
            status = response.status
            failed = status >= 400 if expect is None else status not in expect
            if failed:
                m.fail(f"HTTP {status}")
        return response

    async def get(
        self,
        path: str,
        *,
        headers: HeadersArg = None,
        name: str | None = None,
        expect: Container[int] | None = None,
    ) -> Response:
        """Send a GET request; see `request`.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import http, testing
            >>> async def worker(bot):
            ...     client = await http.connect(bot, f"http://{bot.swarm.host}")
            ...     for page in (1, 2):  # both measured as "GET /items"
            ...         print((await client.get(f"/items?page={page}")).json()["target"])
            >>> async def main():
            ...     async with testing.open_server(testing.http_echo) as host:
            ...         await trio_bots.swarm(worker, 1, host=host)
            >>> trio.run(main)
            /items?page=1
            /items?page=2
        """
        return await self.request("GET", path, headers=headers, name=name, expect=expect)

    async def head(
        self,
        path: str,
        *,
        headers: HeadersArg = None,
        name: str | None = None,
        expect: Container[int] | None = None,
    ) -> Response:
        """Send a HEAD request; the response has headers and an empty body.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import http, testing
            >>> async def worker(bot):
            ...     client = await http.connect(bot, f"http://{bot.swarm.host}")
            ...     r = await client.head("/big")
            ...     print(r.status, r.body, "content-length" in r.headers)
            >>> async def main():
            ...     async with testing.open_server(testing.http_echo) as host:
            ...         await trio_bots.swarm(worker, 1, host=host)
            >>> trio.run(main)
            200 b'' True
        """
        return await self.request("HEAD", path, headers=headers, name=name, expect=expect)

    async def post(
        self,
        path: str,
        *,
        body: bytes | str | None = None,
        json: Any = None,
        headers: HeadersArg = None,
        name: str | None = None,
        expect: Container[int] | None = None,
    ) -> Response:
        """Send a POST request with ``body`` or ``json``; see `request`.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import http, testing
            >>> async def worker(bot):
            ...     client = await http.connect(bot, f"http://{bot.swarm.host}")
            ...     r = await client.post("/login", body="user=bot")
            ...     print(r.json()["method"], r.json()["body"])
            >>> async def main():
            ...     async with testing.open_server(testing.http_echo) as host:
            ...         await trio_bots.swarm(worker, 1, host=host)
            >>> trio.run(main)
            POST user=bot
        """
        return await self.request(
            "POST", path, headers=headers, body=body, json=json, name=name, expect=expect
        )

    async def put(
        self,
        path: str,
        *,
        body: bytes | str | None = None,
        json: Any = None,
        headers: HeadersArg = None,
        name: str | None = None,
        expect: Container[int] | None = None,
    ) -> Response:
        """Send a PUT request with ``body`` or ``json``; see `request`.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import http, testing
            >>> async def worker(bot):
            ...     client = await http.connect(bot, f"http://{bot.swarm.host}")
            ...     r = await client.put("/items/1", json={"n": 1})
            ...     print(r.json()["method"], r.json()["target"], r.json()["body"])
            >>> async def main():
            ...     async with testing.open_server(testing.http_echo) as host:
            ...         await trio_bots.swarm(worker, 1, host=host)
            >>> trio.run(main)
            PUT /items/1 {"n":1}
        """
        return await self.request(
            "PUT", path, headers=headers, body=body, json=json, name=name, expect=expect
        )

    async def delete(
        self,
        path: str,
        *,
        headers: HeadersArg = None,
        name: str | None = None,
        expect: Container[int] | None = None,
    ) -> Response:
        """Send a DELETE request; see `request`.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import http, testing
            >>> async def worker(bot):  # http_echo answers 200, which is not expected here
            ...     client = await http.connect(bot, f"http://{bot.swarm.host}")
            ...     print((await client.delete("/items/1", expect=[204, 404])).status)
            >>> async def main():
            ...     async with testing.open_server(testing.http_echo) as host:
            ...         result = await trio_bots.swarm(worker, 1, host=host)
            ...     print(result.stats["DELETE /items/1"].failure_count)
            >>> trio.run(main)
            200
            1
        """
        return await self.request("DELETE", path, headers=headers, name=name, expect=expect)

    # -- wire -------------------------------------------------------------------

    def _prepare(self, method: str, path: str) -> tuple[bytes, str]:
        entry = (self._build(method, path, None, None, None), f"{method} {path.partition('?')[0]}")
        if len(self._cache) >= _CACHE_SIZE:  # paths with ids would grow it forever
            self._cache.clear()
        self._cache[(method, path)] = entry
        return entry

    def _build(
        self,
        method: str,
        path: str,
        headers: HeadersArg,
        body: bytes | str | None,
        json: Any,
    ) -> bytes:
        if not path.startswith("/"):
            raise ConfigError(f"request path {path!r} must start with '/'")
        try:
            target = path.encode("ascii")
        except UnicodeEncodeError:
            target = quote(path, safe=_SAFE_PATH).encode("ascii")
        if b" " in target or b"\r" in target or b"\n" in target:
            target = quote(path, safe=_SAFE_PATH).encode("ascii")
        extra: list[tuple[str, str]] = []
        if json is not None:
            if body is not None:
                raise ConfigError("pass either body= or json=, not both")
            body = _json.dumps(json, separators=(",", ":")).encode()
            extra.append(("Content-Type", "application/json"))
        if isinstance(body, str):
            body = body.encode()
        if body is not None or method in ("POST", "PUT", "PATCH"):
            extra.append(("Content-Length", str(len(body or b""))))
        block = self._base_block
        if headers is not None:
            merged = dict(self._base)
            for key, value in _pairs(headers):
                merged[key.lower()] = (key, value)
            block = _header_block(merged.values())
        head = b"".join(
            (
                method.encode("ascii"),
                b" ",
                self._prefix,
                target,
                b" HTTP/1.1\r\n",
                block,
                _header_block(extra) if extra else b"",
                b"\r\n",
            )
        )
        return head + body if body else head

    async def _exchange(self, method: str, path: str, payload: bytes) -> Response:
        with self._guard:
            retried = False
            while True:
                stream, reader = self._wire, self._reader
                reused = stream is not None
                if stream is None or reader is None:
                    stream, reader = await self._open()
                reader.reset(method == "HEAD")
                try:
                    response = await self._roundtrip(stream, reader, payload, method, path)
                except _Stale as exc:
                    await self._discard()
                    if reused and not retried and method in _IDEMPOTENT:
                        retried = True
                        continue
                    why = (
                        "it was retried once already"
                        if retried
                        else "the connection was new"
                        if not reused
                        else f"{method} is not idempotent, so it is not retried"
                    )
                    raise ProtocolError(
                        f"the server closed the connection without answering {method} "
                        f"{path} ({why}); check the server's keep-alive timeout"
                    ) from exc.__cause__
                except BaseException:
                    await self._discard()
                    raise
                return response

    async def _roundtrip(
        self,
        stream: ByteStream | DirectStream,
        reader: _Reader,
        payload: bytes,
        method: str,
        path: str,
    ) -> Response:
        annotate = self._annotate
        if annotate is not None:
            head, _, body = payload.partition(b"\r\n\r\n")
            annotate(f"http > {shown(head, _NOTE_HEAD)} + {len(body)} body bytes")
        try:
            await stream.send_all(payload)
        except BROKEN as exc:
            raise _Stale from exc
        self._sent += len(payload)
        parser = reader.parser
        received = 0
        keep = True
        while not reader.done:
            try:
                data = await stream.receive_some()
            except BROKEN as exc:
                if not received:
                    raise _Stale from exc
                raise ProtocolError(
                    f"the connection broke after {received} bytes of the response to "
                    f"{method} {path}"
                ) from exc
            if not data:
                if reader.ends_at_eof():  # a body delimited by the end of the connection
                    keep = False
                    break
                if not received:
                    raise _Stale
                raise ProtocolError(
                    f"the server closed the connection after {received} bytes of an "
                    f"incomplete response to {method} {path}; it sent a truncated response"
                )
            received += len(data)
            self._received += len(data)
            if received > _MAX_HEAD and not reader.headers_done:
                raise ProtocolError(
                    f"the response to {method} {path} sent {received} bytes without ending "
                    f"its headers (the limit is {_MAX_HEAD}); the server broke HTTP/1.1"
                )
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                raise ProtocolError(
                    f"the server switched protocols (HTTP {parser.get_status_code()}) on "
                    f"{method} {path}; use trio_bots.protocols.websocket for upgrades"
                ) from None
            except httptools.HttpParserError as exc:
                if reader.done:  # junk after a complete response: drop the connection
                    keep = False
                    break
                raise ProtocolError(
                    f"malformed HTTP response to {method} {path}: {exc} (after {received} "
                    "bytes); the server broke HTTP/1.1"
                ) from None
        response = Response(
            reader.status,
            Headers(reader.headers),
            b"".join(reader.body),
            reason=reader.reason.decode("latin-1"),
            http_version=reader.version,
        )
        if annotate is not None:
            lines = [f"HTTP/{reader.version} {reader.status} {response.reason}"]
            lines += [f"{k.decode('latin-1')}: {v.decode('latin-1')}" for k, v in reader.headers]
            text = shown("\r\n".join(lines), _NOTE_HEAD)
            annotate(f"http < {text} + {len(response.body)} body bytes")
        if not keep or reader.extra or not reader.keep_alive:
            await self._discard()
        elif reader.head:  # the parser still waits for a HEAD body: start afresh
            self._reader = _Reader()
        return response

    async def _open(self) -> tuple[ByteStream | DirectStream, _Reader]:
        t = self._target
        stream = await self._bot.connect_tcp(
            t.host,
            t.port,
            tls=t.tls,
            ssl_context=self._ssl_context,
            server_hostname=t.host if t.tls else None,
        )
        self.connections += 1
        self._stream, self._reader = stream, _Reader()
        self._annotate = annotator(stream)
        direct = direct_stream(stream)
        self.direct = direct is not None
        self._wire = wire = stream if direct is None else direct
        return wire, self._reader

    async def _discard(self) -> None:
        stream, self._stream, self._reader, self._wire = self._stream, None, None, None
        self.direct = False
        if stream is not None:
            await aclose_forcefully(stream)

    async def aclose(self) -> None:
        """Close the connection; the next request would open a new one.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols import http, testing
            >>> async def worker(bot):
            ...     client = await http.connect(bot, f"http://{bot.swarm.host}")
            ...     await client.aclose()
            ...     await client.get("/again")  # on a second connection
            ...     print(client.connections)
            >>> async def main():
            ...     async with testing.open_server(testing.http_echo) as host:
            ...         await trio_bots.swarm(worker, 1, host=host)
            >>> trio.run(main)
            2
        """
        await self._discard()  # no graceful TLS close: HTTP does not need it

    def __repr__(self) -> str:
        state = "connected" if self._stream is not None else "idle"
        return f"<http.Client {self.url} {state}, {self.connections} connections>"


def _pairs(headers: HeadersArg) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = list(headers.items() if isinstance(headers, Mapping) else headers)
    for key, value in items:
        if not key or ":" in key or "\n" in key + value or "\r" in key + value:
            raise ConfigError(
                f"bad header {key!r}: {value!r}; a name is a non-empty token and neither "
                "may hold a line break"
            )
    return items


def _header_block(pairs: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(
        b"%s: %s\r\n" % (key.encode("latin-1"), value.encode("latin-1")) for key, value in pairs
    )


async def connect(
    bot: BotLike,
    url: str,
    *,
    headers: HeadersArg = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Client:
    """Open an HTTP/1.1 keep-alive client to ``url`` over ``bot.connect_tcp``.

    Args:
        bot: the bot that owns the connections and records the measurements.
        url: ``http://host[:port][/prefix]`` or ``https://...``; a path here
            prefixes every request path.
        headers: default headers sent with every request (after ``Host`` and
            ``User-Agent``, which they may replace).
        ssl_context: the client TLS context for ``https://``; the bot's default otherwise.

    Raises:
        trio_bots.ConfigError: the URL is not http:// or https://.
        trio_bots.ConnectError: the first connection failed.

    Example:
        >>> import trio, trio_bots
        >>> from trio_bots.protocols import http, testing
        >>> async def worker(bot):
        ...     url = f"http://{bot.swarm.host}"
        ...     client = await http.connect(bot, url, headers={"Authorization": "Bearer x"})
        ...     print((await client.get("/me")).json()["headers"]["authorization"])
        >>> async def main():
        ...     async with testing.open_server(testing.http_echo) as host:
        ...         await trio_bots.swarm(worker, 1, host=host)
        >>> trio.run(main)
        Bearer x
    """
    client = Client(bot, url, headers=headers, ssl_context=ssl_context)
    await client._open()
    return client
