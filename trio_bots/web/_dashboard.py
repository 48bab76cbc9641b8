"""The live web dashboard: a starlette app served by hypercorn in the run's own loop.

`Dashboard` follows one swarm through `trio_bots.Swarm.on_tick` and serves:

- ``GET /``: the page (plain HTML and JS shipped in the package, plotly.js from the
  ``plotly`` package), which polls ``/api/stats`` every 500 ms;
- ``GET /api/stats``: the `trio_bots.SwarmStatistics` fields (without ``metrics``;
  ``thresholds`` as `threshold_rows` writes them, ``shards`` one row per shard in a
  run over several processes), ``groups`` (`group_rows`, the first
  `GROUPS_LISTED`), ``group_count`` and ``last_tick``, the last second's figures
  by name; never the raw snapshot;
- ``POST /api/stop`` (``{"grace": 0}`` stops now), ``POST /api/target {"bots": n}``,
  ``POST /api/rate {"rate": r}``;
- ``GET /metrics``: the Prometheus text of the run.

Access: with a token, ``GET /?token=T`` sets a cookie, and every other request
needs that cookie or ``Authorization: Bearer T``. A POST needs the bearer token,
or an ``Origin`` equal to the dashboard's own (and the cookie when there is a
token), so another page in the browser cannot steer the run. Anything else is 403;
bad input is a 4xx with ``{"error": ...}`` and changes nothing.

Example:
    >>> board = Dashboard(origin="http://127.0.0.1:8089", token=None)
    >>> board.stats()
    {'running': False}
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import math
import secrets
from collections.abc import Callable, Hashable, Iterable, Mapping
from importlib import resources
from typing import Any

from .._core.runtime import Tick
from .._errors import ConfigError
from ..metrics import ThresholdState, format_value
from ._prometheus import WEB_MISSING, MetricsExporter

COOKIE = "trio_bots_token"
#: The groups that ``/api/stats`` lists (the first, by name); ``group_count`` says how
#: many there are: the answer stays small, since the run's own loop writes it.
GROUPS_LISTED = 100


def new_token() -> str:
    """A fresh random token for ``--web-token auto``.

    Example:
        >>> len(new_token()) >= 22
        True
    """
    return secrets.token_urlsafe(18)


def _plain(value: Any) -> Any:
    """NaN and infinities to None: JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def threshold_rows(states: Iterable[ThresholdState]) -> list[dict[str, Any]]:
    """The ``thresholds`` of ``/api/stats``: one row per threshold, as of the last second.

    ``value`` is what it measured (None while there is nothing to measure), in
    its base ``unit`` (``"s"``, ``"ratio"``, ``"1/s"``, ``"count"`` or ``"value"``);
    ``shown`` is that value as every report writes it (`trio_bots.metrics.format_value`);
    ``status`` is ``"pending"``, ``"passed"`` or ``"failed"``, and ``ok`` is False
    only when it failed.

    Example:
        >>> from trio_bots.metrics import ThresholdResult
        >>> failed = ThresholdResult("p99(nap) < 1ms", False, 0.0123, 0.001)
        >>> threshold_rows([ThresholdState("p99(nap) < 1ms", "failed", failed)])
        ... # doctest: +NORMALIZE_WHITESPACE
        [{'expression': 'p99(nap) < 1ms', 'status': 'failed', 'ok': False, 'value': 0.0123,
          'unit': 's', 'shown': '12.3 ms', 'required': 0.001, 'reason': ''}]
    """
    rows = []
    for state in states:
        result = state.result
        rows.append(
            {
                "expression": state.expression,
                "status": state.status,
                "ok": state.status != "failed",
                "value": result.measured,
                "unit": result.unit,
                "shown": format_value(result.measured, result.unit),
                "required": result.required,
                "reason": result.reason,
            }
        )
    return rows


def group_rows(sizes: Mapping[Hashable, int]) -> list[dict[str, Any]]:
    """The ``groups`` of ``/api/stats``: each group's name (as text) and its live
    members (``bots``), by name.

    Example:
        >>> group_rows({"table-1": 2, "table-0": 3})
        [{'group': 'table-0', 'bots': 3}, {'group': 'table-1', 'bots': 2}]
    """
    named = sorted((str(group), int(bots)) for group, bots in sizes.items())
    return [{"group": group, "bots": bots} for group, bots in named]


class Dashboard:
    """The dashboard of one run (see the module docstring).

    Attributes:
        origin: the dashboard's own origin, such as ``http://127.0.0.1:8089``.
        token: the access token, or None (loopback only).
        exporter: the run's Prometheus series, served at ``/metrics``.
    """

    def __init__(
        self, *, origin: str, token: str | None, exporter: MetricsExporter | None = None
    ) -> None:
        self.origin = origin
        self.token = token
        self.exporter = exporter if exporter is not None else MetricsExporter()
        self._swarm: Any = None
        self._last: dict[str, Any] | None = None
        self._origins = {origin}
        if origin.startswith("http://127.0.0.1:"):
            self._origins.add(origin.replace("127.0.0.1", "localhost", 1))

    def watch(self, swarm: Any) -> None:
        """Follow `swarm` from now on (its ticks, its statistics, its controls)."""
        self._swarm = swarm
        swarm.on_tick(self._tick)
        self.exporter.watch(swarm)

    def _tick(self, tick: Tick) -> None:
        names = {
            name: _plain({k: v for k, v in entry.items() if k != "hist"})
            for name, entry in tick.bucket.get("names", {}).items()
        }
        raw = {name: _plain(dict(q)) for name, q in tick.raw_percentiles.items()}
        self._last = {"second": tick.second, "bots": tick.bots_running, "names": names, "raw": raw}

    def stats(self) -> dict[str, Any]:
        """What ``GET /api/stats`` returns."""
        if self._swarm is None:
            return {"running": False}
        statistics = self._swarm.statistics(metrics=False)
        fields = {
            f.name: getattr(statistics, f.name)
            for f in dataclasses.fields(statistics)
            if f.name != "metrics"
        }
        fields["thresholds"] = threshold_rows(statistics.thresholds)
        groups = group_rows(self._swarm.group_sizes())  # counted now, when asked
        answer: dict[str, Any] = _plain(
            {
                "running": True,
                **fields,
                "groups": groups[:GROUPS_LISTED],
                "group_count": len(groups),
                "last_tick": self._last,
            }
        )
        return answer

    # -- access

    def _has_token(self, request: Any) -> bool:
        token = self.token
        if token is None:
            return True
        given = request.cookies.get(COOKIE, "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        return hmac.compare_digest(given.encode(), token.encode())

    def _may_control(self, request: Any) -> bool:
        header = request.headers.get("authorization", "")
        if self.token is not None and header.lower().startswith("bearer "):
            return self._has_token(request)
        return request.headers.get("origin") in self._origins and self._has_token(request)

    # -- the app

    def app(self) -> Any:
        """The starlette application."""
        try:
            from starlette.applications import Starlette
            from starlette.background import BackgroundTask
            from starlette.requests import Request
            from starlette.responses import HTMLResponse, JSONResponse, Response
            from starlette.routing import Route
        except ImportError:
            raise ConfigError(WEB_MISSING) from None

        def refused() -> Any:
            return JSONResponse({"error": "forbidden: give the dashboard's token"}, 403)

        async def page(request: Request) -> Any:
            query = request.query_params.get("token")
            if self.token is not None and query is not None:
                if not hmac.compare_digest(query.encode(), self.token.encode()):
                    return refused()
                response = HTMLResponse(_page())
                response.set_cookie(COOKIE, query, httponly=True, samesite="strict")
                return response
            if not self._has_token(request):
                return refused()
            return HTMLResponse(_page())

        async def plotly_js(request: Request) -> Any:
            return Response(_plotly_js(), media_type="application/javascript")

        async def stats(request: Request) -> Any:
            if not self._has_token(request):
                return refused()
            return JSONResponse(self.stats())

        async def metrics(request: Request) -> Any:
            if not self._has_token(request):
                return refused()
            return Response(self.exporter.text(), media_type="text/plain; version=0.0.4")

        def control(field: str | None, call: Callable[[Any, Any], None]) -> Any:
            async def endpoint(request: Request) -> Any:
                if not self._may_control(request):
                    return refused()
                try:
                    body = json.loads(await request.body() or b"{}")
                except ValueError:
                    return JSONResponse({"error": "the body must be JSON"}, 400)
                if not isinstance(body, dict) or (field is not None and field not in body):
                    return JSONResponse({"error": f"expected a JSON object with {field!r}"}, 400)
                if self._swarm is None:
                    return JSONResponse({"error": "the run has not started"}, 409)
                if field is None:  # a stop: answer first, or the run may end mid-answer
                    grace = body.get("grace")
                    if grace is not None and (
                        isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0
                    ):
                        return JSONResponse(
                            {"error": f"grace must be seconds >= 0: {grace!r}"}, 400
                        )
                    return JSONResponse(
                        {"ok": True}, background=BackgroundTask(call, self._swarm, body)
                    )
                try:
                    call(self._swarm, body)
                except ConfigError as exc:
                    return JSONResponse({"error": str(exc)}, 400)
                return JSONResponse({"ok": True})

            return endpoint

        routes = [
            Route("/", page),
            Route("/plotly.min.js", plotly_js),
            Route("/api/stats", stats),
            Route("/metrics", metrics),
            Route(
                "/api/stop",
                control(None, lambda swarm, body: swarm.stop(grace=body.get("grace"))),
                methods=["POST"],
            ),
            Route(
                "/api/target",
                control("bots", lambda swarm, body: swarm.set_target(body["bots"])),
                methods=["POST"],
            ),
            Route(
                "/api/rate",
                control("rate", lambda swarm, body: swarm.set_rate(body["rate"])),
                methods=["POST"],
            ),
        ]
        return Starlette(routes=routes)


def _page() -> str:
    return resources.files(__package__).joinpath("static/dashboard.html").read_text("utf-8")


def _plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ConfigError(WEB_MISSING) from None
    return str(get_plotlyjs())


async def serve_dashboard(app: Any, sock: Any, shutdown: Callable[[], Any]) -> None:
    """Serve `app` on the bound, listening socket `sock` until ``await shutdown()``
    returns, with hypercorn's server for the running loop (trio or asyncio).

    Hypercorn takes the socket over (``fd://N``) and closes it: `sock` is detached.
    """
    import sniffio
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.graceful_timeout = 1.0
    if sniffio.current_async_library() == "trio":
        from hypercorn.trio import serve
    else:
        from hypercorn.asyncio import serve  # type: ignore[assignment]
    await serve(app, config, shutdown_trigger=shutdown)
