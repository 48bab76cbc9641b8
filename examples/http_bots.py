"""Bots fetch static files from a real nginx over keep-alive HTTP/1.1 connections.

Run it::

    python examples/http_bots.py                         # starts its own nginx
    python examples/http_bots.py --host 127.0.0.1:8080   # or an nginx of services.py

It needs ``nginx`` (``apt-get install nginx``) unless ``--host`` is given; the
body checks expect the files that services.py serves (`services.NGINX_FILES`).

Each bot opens one connection with `trio_bots.protocols.http` and sends GETs
for the three files until the stop. Each request is measured under
``GET /path``; the run checks that every body was the file's and that every
bot kept its single connection open (nginx has ``keepalive_requests`` high).
It exits with 0 when every request and check passed, 1 otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

from _support import Report, address, cli, counter, run_swarm
from services import NGINX_FILES

import trio_bots
from trio_bots.protocols import http

DURATION = 3.0  # seconds
BOTS = 20

# The defaults of `trio-bots run` (its flags win); `size` is the number of bots.
# One request per iteration.
options: dict[str, Any] = {
    "size": BOTS,
    "duration": DURATION,
    "stop_grace": 5.0,
    "iterations": 10_000,
    "think_time": (0.0, 0.005),
}


async def worker(bot: trio_bots.Bot) -> None:
    """One browsing bot; see the module docstring."""
    address(bot.swarm.host, "http_bots", "start one: python examples/services.py start DIR nginx")
    paths = sorted(NGINX_FILES)
    async with await http.connect(bot, f"http://{bot.swarm.host}") as client:
        async for _ in bot.iterations():
            path = bot.random.choice(paths)
            response = await client.get(path)
            if response.ok and response.body != NGINX_FILES[path]:
                bot.count("wrong bodies")
        bot.count("connections", client.connections)


async def run(
    *,
    bots: int = BOTS,
    duration: float | None = DURATION,
    host: str | None = None,
    seed: str | None = None,
    handle_sigint: bool = False,
) -> Report:
    """Run the HTTP swarm against the nginx at ``host``.

    Example:
        >>> import tempfile, services, trio
        >>> with tempfile.TemporaryDirectory() as folder, services.running("nginx", folder) as host:
        ...     report = trio.run(lambda: run(bots=4, duration=1, host=host))
        >>> report.ok
        True
    """
    result, host = await run_swarm(
        worker,
        options,
        None,  # the command line starts the server
        bots=bots,
        duration=duration,
        host=host,
        seed=seed,
        handle_sigint=handle_sigint,
    )
    total = result.stats.total
    connections = counter(result, "connections")
    report = Report(
        f"http_bots: {bots} bots against nginx at {host}",
        result,
        [f"GET {path}" for path in sorted(NGINX_FILES)],
        [
            ("requests", f"{total.count + total.failure_count} at {total.rps:.0f} per second"),
            ("keep-alive", f"{connections} connections for {bots} bots"),
        ],
    )
    if total.count == 0:
        report.problems.append("no request succeeded")
    if counter(result, "wrong bodies"):
        report.problems.append(f"{counter(result, 'wrong bodies')} bodies were not the file's")
    if connections != bots and not result.interrupted:
        report.problems.append(f"{connections} connections instead of {bots}: keep-alive broke")
    return report


if __name__ == "__main__":
    sys.exit(cli(run, options, __doc__, service="nginx"))
