"""``--prometheus HOST:PORT`` and ``--web HOST:PORT``: the live HTTP faces of ``trio-bots run``.

`open_live_servers` starts what the flags ask for before the run and stops it
after the reports are written, so the final values stay served until then.

Example:
    >>> with open_live_servers(None) as live:
    ...     live.watchers, live.tasks
    ([], [])
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from .._core.parse import parse_host
from .._errors import ConfigError
from ._run import EXIT_USAGE, CliExit

#: The usual ``--prometheus`` and ``--web`` addresses, for the help.
PROMETHEUS_USUAL = "127.0.0.1:9646"
WEB_USUAL = "127.0.0.1:8089"


@dataclass
class LiveServers:
    """What the serving flags add to a run: watchers called with the live swarm, and
    tasks run in the swarm's loop for the length of the run."""

    watchers: list[Callable[[Any], Any]] = field(default_factory=list)
    tasks: list[Callable[[Callable[[], Awaitable[Any]]], Awaitable[None]]] = field(
        default_factory=list
    )


def is_loopback(host: str) -> bool:
    """Whether `host` names the loopback interface.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
        (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(text: str, flag: str) -> tuple[str, int]:
    """``HOST:PORT`` of a serving flag, the port required.

    Example:
        >>> parse_address("127.0.0.1:9646", "--prometheus"), parse_address("[::1]:80", "--web")
        (('127.0.0.1', 9646), ('::1', 80))
    """
    try:
        host, port = parse_host(text, flag)
    except ConfigError as exc:
        raise CliExit(EXIT_USAGE, f"error: {exc}") from None
    if port is None:
        raise CliExit(
            EXIT_USAGE, f"error: {flag} takes HOST:PORT such as {PROMETHEUS_USUAL}, got {text!r}"
        )
    return host, port


@contextmanager
def open_live_servers(
    prometheus: str | None, web: str | None = None, web_token: str | None = None
) -> Iterator[LiveServers]:
    """Serve what the flags ask for (the sockets are bound here: a busy port is exit 2)."""
    live = LiveServers()
    watchers = live.watchers
    with ExitStack() as stack:
        if web is not None:
            stack.enter_context(_open_web(web, web_token, live))
        elif web_token is not None:
            raise CliExit(EXIT_USAGE, "error: --web-token goes with --web HOST:PORT")
        if prometheus is not None:
            host, port = parse_address(prometheus, "--prometheus")
            try:
                from ..web import MetricsExporter, serve_metrics

                exporter = MetricsExporter()
                server = serve_metrics(exporter, host, port)
            except ConfigError as exc:
                raise CliExit(EXIT_USAGE, f"error: {exc}") from None
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise CliExit(
                    EXIT_USAGE, f"error: --prometheus cannot listen on {prometheus}: {reason}"
                ) from None
            stack.callback(server.close)
            where = f"[{host}]" if ":" in host else host
            print(
                f"trio-bots: Prometheus metrics at http://{where}:{server.port}/metrics",
                file=sys.stderr,
            )
            watchers.append(exporter.watch)
        yield live


@contextmanager
def _open_web(web: str, web_token: str | None, live: LiveServers) -> Iterator[None]:
    host, port = parse_address(web, "--web")
    if web_token is None and not is_loopback(host):
        raise CliExit(
            EXIT_USAGE,
            f"error: --web {web} listens beyond this machine: give --web-token TOKEN (or "
            "--web-token auto), or listen on loopback such as --web 127.0.0.1:8089",
        )
    token = web_token
    try:
        from ..web import Dashboard, new_token, serve_dashboard

        if token == "auto":
            token = new_token()
        where = f"[{host}]" if ":" in host else host
        board = Dashboard(origin=f"http://{where}:{port}", token=token)
        app = board.app()
    except ConfigError as exc:
        raise CliExit(EXIT_USAGE, f"error: {exc}") from None
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CliExit(EXIT_USAGE, f"error: --web cannot listen on {web}: {reason}") from None
    with sock:
        url = f"http://{where}:{sock.getsockname()[1]}/"
        if token is not None:
            url += f"?token={token}"
        print(f"trio-bots: live dashboard at {url}", file=sys.stderr)

        async def serve(shutdown: Callable[[], Awaitable[Any]]) -> None:
            await serve_dashboard(app, sock, shutdown)

        live.watchers.append(board.watch)
        live.tasks.append(serve)
        yield
