"""``--prometheus HOST:PORT``: the live HTTP faces of ``trio-bots run``.

`open_live_servers` starts what the flags ask for before the run and stops it
after the reports are written, so the final values stay served until then.

Example:
    >>> with open_live_servers(None) as watchers:
    ...     watchers
    []
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from .._core.parse import parse_host
from .._errors import ConfigError
from ._run import EXIT_USAGE, CliExit

#: The usual ``--prometheus`` address, for the help.
PROMETHEUS_USUAL = "127.0.0.1:9646"


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
def open_live_servers(prometheus: str | None) -> Iterator[list[Callable[[Any], Any]]]:
    """Serve what the flags ask for; give the watchers to call with the live swarm."""
    watchers: list[Callable[[Any], Any]] = []
    with ExitStack() as stack:
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
        yield watchers
