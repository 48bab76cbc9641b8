"""The throughput cost of the live faces: ping-pong with an open dashboard, and with a
Prometheus scrape every second, side by side with neither.

The workload is bench_pingpong's ``bots-measure`` side (64-byte round trips to the C
echo server, ``bot.measure("rtt")`` around each), long enough for several ticks.

Sides:
    bots         the swarm alone.
    prometheus   plus a MetricsExporter on the swarm's tick and its /metrics server
                 (prometheus-client's, in a thread), scraped every second by a client
                 process.
    dashboard    plus the web dashboard (starlette on hypercorn, in the swarm's loop),
                 polled at /api/stats every 500 ms by a client process, as the page does.

The clients are processes of their own (as a browser or Prometheus would be) on this
machine. With ``--pin`` the swarm runs on the first CPU, and the echo server and the
pollers on the second (taskset), as benchmarks/run.py pins its sides; without it their
CPU competes with the swarm's: an upper bound of their cost.

Run:
    .venv/bin/python benchmarks/bench_live.py [--bots 100 --count 1500 --runs 3] [--pin]
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import anyio
import trio
from _common import (
    ECHO_SIZE,
    Mark,
    Result,
    alternate,
    base_parser,
    check_runs,
    echo_round_trip,
    echo_server,
    medians,
    now,
    paired_ratio,
    phase_times,
    print_environment,
    print_table,
    rate_rows,
    write_json,
)
from _run_tools import Pinning

import trio_bots
from trio_bots.web import Dashboard, MetricsExporter, serve_dashboard, serve_metrics

#: The goal: each live face costs less than 2% of the throughput.
GOAL = 0.98


_POLL = """
import sys, time, urllib.request
url, every = sys.argv[1], float(sys.argv[2])
done = 0
try:
    while True:
        time.sleep(every)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
            done += 1
        except OSError:
            pass
        print(done, flush=True)
except KeyboardInterrupt:
    pass
"""


class _Poller:
    """A client process (as a browser or Prometheus would be) that GETs `url` every
    `every` seconds until stopped; `requests` is how many it made."""

    #: The command prefix of every poller: `main` sets it to pin them beside the target.
    prefix: ClassVar[list[str]] = []

    def __init__(self, url: str, every: float) -> None:
        self.args = [*self.prefix, sys.executable, "-c", _POLL, url, str(every)]
        self.requests = 0
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> _Poller:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        lines = out.split()
        self.requests = int(lines[-1]) if lines else 0


def run_side(port: int, bots: int, count: int, face: str) -> Result:
    marks: list[Mark] = []
    polls = 0

    async def worker(bot: trio_bots.Bot) -> None:
        stream = await bot.connect_tcp("127.0.0.1", port)
        start = now()
        for _ in range(count):
            async with bot.measure("rtt"):
                await echo_round_trip(stream)
        marks.append((*start, *now()))

    async def main() -> trio_bots.SwarmResult:
        nonlocal polls
        if face == "bots":
            return await trio_bots.swarm(worker, bots)
        if face == "prometheus":
            exporter = MetricsExporter()
            server = serve_metrics(exporter, "127.0.0.1", 0)
            try:
                with _Poller(f"http://127.0.0.1:{server.port}/metrics", 1.0) as poller:
                    async with trio_bots.open_swarm(worker, bots) as swarm:
                        exporter.watch(swarm)
                polls = poller.requests
            finally:
                server.close()
            assert swarm.result is not None
            return swarm.result
        sock = socket.create_server(("127.0.0.1", 0))
        web_port = sock.getsockname()[1]
        board = Dashboard(origin=f"http://127.0.0.1:{web_port}", token=None)
        shutdown = anyio.Event()
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(serve_dashboard, board.app(), sock, shutdown.wait)
            with _Poller(f"http://127.0.0.1:{web_port}/api/stats", 0.5) as poller:
                async with trio_bots.open_swarm(worker, bots) as swarm:
                    board.watch(swarm)
            polls = poller.requests
            shutdown.set()
        assert swarm.result is not None
        return swarm.result

    wall = now()[0]
    result = trio.run(main)
    wall = now()[0] - wall
    if result.stats["rtt"].count != bots * count:
        raise RuntimeError(f"measured {result.stats['rtt'].count} round trips, not {bots * count}")
    if face != "bots" and polls < 2:
        raise RuntimeError(f"the {face} side was polled {polls} times: make the run longer")
    phase, cpu = phase_times(marks)
    trips = bots * count
    return {
        "round_trips_per_s": trips / phase,
        "round_trips_per_cpu_s": trips / cpu,
        "phase_s": phase,
        "wall_s": wall,
        "polls": float(polls),
    }


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=100, help="connections")
    parser.add_argument("--count", type=int, default=1500, help="round trips per connection")
    parser.add_argument(
        "--pin", action="store_true", help="swarm on CPU 0; echo server and pollers on CPU 1"
    )
    args = parser.parse_args()
    check_runs(args.runs)
    pinning = Pinning.detect() if args.pin else Pinning(note="unpinned (no --pin)")
    _Poller.prefix = pinning.target
    if pinning.client:
        os.sched_setaffinity(0, {int(pinning.client[-1])})
    print(pinning.note)
    with echo_server(prefix=pinning.target) as port:
        shape = (port, args.bots, args.count)
        sides: dict[str, Callable[[], Result]] = {
            face: (lambda face=face: run_side(*shape, face))  # type: ignore[misc]
            for face in ("bots", "prometheus", "dashboard")
        }
        print_environment()
        print(
            f"live faces: {args.bots} connections x {args.count} round trips of {ECHO_SIZE} bytes, "
            f"{args.runs} alternating runs"
        )
        results = alternate(sides, args.runs)
    med = medians(results)
    key, cpu_key = "round_trips_per_s", "round_trips_per_cpu_s"
    rows = rate_rows(results, med, key=key, cpu_key=cpu_key, unit="round trips/s")
    for face in ("prometheus", "dashboard"):
        ratio = paired_ratio(results, face, "bots", key)
        verdict = "met" if ratio >= GOAL else "MISSED"
        rows.append(
            (f"{face} / bots", f"{ratio:.3f}", f"paired; goal >= {GOAL} ({verdict}); "
             f"{med[face]['polls']:.0f} polls a run")
        )
    print_table("live faces (medians)", rows)
    write_json(
        args.json,
        {"benchmark": "live", "args": {k: str(v) for k, v in vars(args).items()},
         "runs": results, "medians": med},
    )


if __name__ == "__main__":
    main()
