"""What every fault test shares: loopback targets that misbehave, and the invariants.

The invariants, checked after every fault test:

- accounting: for each name, ``count + failure_count + cancelled`` equals the
  ``measure()`` blocks the workers entered (`Entered` counts them itself);
- nothing outlives the swarm: no task and no fd (`_leaks.live_task_names`, `_leaks.open_fds`);
- the reports parse (`check_reports`).
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

import trio_bots

#: The interpreter and environment for child processes: this tree first on the path.
PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child ``python``: this tree's trio_bots first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


class Entered:
    """Counts the ``measure()`` blocks that workers enter, by name, as a test's own record.

    ``async with entered.measure(bot, name) as m:`` counts one, then enters
    ``bot.measure(name)``; `check` asserts the swarm's accounting against it.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def measure(self, bot: trio_bots.Bot, name: str) -> Any:
        self.counts[name] += 1
        return bot.measure(name)

    def check(self, result: trio_bots.SwarmResult) -> dict[str, tuple[int, int, int, int]]:
        """Assert started = ok + failed + cancelled for every name; return those figures."""
        figures: dict[str, tuple[int, int, int, int]] = {}
        for name, started in self.counts.items():
            s = result.stats[name]
            figures[name] = (started, s.count, s.failure_count, s.cancelled)
            assert s.count + s.failure_count + s.cancelled == started, (name, figures[name])
        measured = {n for n, s in result.stats.items() if s.kind == "request"} - {"iteration"}
        assert measured <= set(self.counts), measured - set(self.counts)
        return figures


def check_run_file_accounting(doc: Mapping[str, Any], started: Mapping[str, int]) -> None:
    """The JSON report's own figures: ok + failed + cancelled = started, by name."""
    for name, n in started.items():
        entry = doc["stats"][name]
        assert entry["count"] + entry["failure_count"] + entry["cancelled"] == n, (name, entry)


def check_reports(json_path: Path | None = None, csv_prefix: Path | None = None) -> dict[str, Any]:
    """Parse the reports written; return the JSON document (empty without one)."""
    doc: dict[str, Any] = {}
    if json_path is not None:
        doc = json.loads(json_path.read_text())
        assert doc["schema"] == "trio-bots/1"
    if csv_prefix is not None:
        for suffix in ("stats", "failures", "history"):
            with open(f"{csv_prefix}_{suffix}.csv", newline="") as file:
                rows = list(csv.reader(file))
            assert rows and all(len(row) == len(rows[0]) for row in rows)
    leftovers = [
        p.name
        for folder in {p.parent for p in (json_path, csv_prefix) if p is not None}
        for p in folder.iterdir()
        if p.name.endswith(".tmp")
    ]
    assert leftovers == []  # no temporary file of an atomic write left behind
    return doc


Serve = Callable[[trio.SocketStream], Awaitable[None]]


@asynccontextmanager
async def loopback_server(serve: Serve, port: int = 0) -> AsyncIterator[int]:
    """Serve `serve(stream)` per connection on 127.0.0.1; give the port. Closed on exit."""
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    bound = listeners[0].socket.getsockname()[1]

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            try:
                await serve(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        try:
            yield bound
        finally:
            nursery.cancel_scope.cancel()


async def echo(stream: trio.SocketStream) -> None:
    """Echo everything back until EOF."""
    while data := await stream.receive_some():
        await stream.send_all(data)


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
