"""What the HTTP client returns: `Response` and its case-insensitive `Headers`."""

from __future__ import annotations

import json as _json
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Headers", "Response"]


class Headers(Mapping[str, str]):
    """Response headers: a read-only, case-insensitive mapping of str to str.

    A header sent several times maps to its values joined with ``", "``;
    `get_list` gives them one by one (use it for ``Set-Cookie``). ``raw``
    keeps the original ``(name, value)`` byte pairs in order.

    Example:
        >>> h = Headers([(b"Content-Type", b"text/plain"), (b"Set-Cookie", b"a=1"),
        ...              (b"set-cookie", b"b=2")])
        >>> h["content-type"], h.get_list("Set-Cookie"), "CONTENT-TYPE" in h
        ('text/plain', ['a=1', 'b=2'], True)
    """

    __slots__ = ("_index", "raw")

    def __init__(self, raw: list[tuple[bytes, bytes]] | None = None) -> None:
        self.raw: list[tuple[bytes, bytes]] = raw if raw is not None else []
        self._index: dict[str, list[str]] | None = None

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:  # built on first use: most load tests never read headers
            index = {}
            for name, value in self.raw:
                index.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
            self._index = index
        return index

    def __getitem__(self, name: str) -> str:
        return ", ".join(self._lookup()[name.lower()])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __len__(self) -> int:
        return len(self._lookup())

    def get_list(self, name: str) -> list[str]:
        """Every value of header ``name``, in order; ``[]`` when absent.

        Example:
            >>> Headers([(b"Via", b"a"), (b"via", b"b")]).get_list("VIA")
            ['a', 'b']
        """
        return list(self._lookup().get(name.lower(), ()))

    def __repr__(self) -> str:
        return f"Headers({self.raw!r})"


class Response:
    """An HTTP response: ``status``, ``headers``, ``body`` (bytes), ``reason``.

    Example:
        >>> r = Response(200, Headers([(b"Content-Type", b"application/json")]), b'{"a": 1}')
        >>> r.status, r.json(), r.text, r.ok
        (200, {'a': 1}, '{"a": 1}', True)
    """

    __slots__ = ("body", "headers", "http_version", "reason", "status")

    def __init__(
        self,
        status: int,
        headers: Headers,
        body: bytes,
        *,
        reason: str = "",
        http_version: str = "1.1",
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.reason = reason
        self.http_version = http_version

    @property
    def ok(self) -> bool:
        """True for a status below 400.

        Example:
            >>> Response(404, Headers(), b"").ok
            False
        """
        return self.status < 400

    @property
    def text(self) -> str:
        """The body decoded with the Content-Type charset (UTF-8 by default).

        Example:
            >>> Response(200, Headers([(b"content-type", b"text/plain; charset=latin-1")]),
            ...          b"caf\\xe9").text
            'café'
        """
        charset = "utf-8"
        ctype = self.headers.get("content-type", "")
        for param in ctype.split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body decoded as JSON.

        Example:
            >>> Response(200, Headers(), b"[1, 2]").json()
            [1, 2]
        """
        return _json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}, {len(self.body)} bytes>"
