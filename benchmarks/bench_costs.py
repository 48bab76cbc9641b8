"""Per-call CPU costs that the side-by-side benchmarks cannot resolve: `measure()`'s
parts, and what a live face (dashboard, Prometheus) costs the swarm's loop per answer.

The ratios of run.py and bench_live.py move by 5-15% between runs on a small machine;
these micro-timings (best of 3, ``timeit`` inside a running swarm) say where the
microseconds go. Not a target: a diagnostic.

Run:
    .venv/bin/python benchmarks/bench_costs.py          # pin it for steadier figures:
    taskset -c 0 .venv/bin/python benchmarks/bench_costs.py
"""

from __future__ import annotations

import json
import time
import timeit
from collections.abc import Callable
from typing import Any

import trio

import trio_bots

CALLS = 200_000


def _ns(fn: Callable[[], Any], calls: int = CALLS) -> float:
    return min(timeit.repeat(fn, number=calls, repeat=3)) / calls * 1e9


def _drive(make: Callable[[], Any]) -> Callable[[], None]:
    """A call that runs one coroutine that never suspends, to its end."""

    def run() -> None:
        coro = make()
        try:
            coro.send(None)
        except StopIteration:
            pass

    return run


def measure_parts() -> dict[str, float]:
    """ns per call of each part of a ``measure()`` block, with nothing inside it."""
    figures: dict[str, float] = {}

    async def worker(bot: trio_bots.Bot) -> None:
        def plain_with() -> None:
            with bot.measure("x"):
                pass

        async def async_with() -> None:
            async with bot.measure("x"):
                pass

        async def empty() -> None:
            pass

        figures["bot.measure('x'): the object"] = _ns(lambda: bot.measure("x"))
        figures["with bot.measure('x'): pass"] = _ns(plain_with)
        figures["async with bot.measure('x'): pass"] = _ns(_drive(async_with))
        figures["an empty coroutine, for scale"] = _ns(_drive(empty))

    trio.run(trio_bots.swarm, worker, 1)
    return figures


def face_costs(bots: int = 100) -> dict[str, float]:
    """µs of CPU in the swarm's loop for one /api/stats answer and one /metrics text."""
    from trio_bots.web import Dashboard, MetricsExporter

    figures: dict[str, float] = {}

    async def worker(bot: trio_bots.Bot) -> None:
        while not bot.stopping.is_set():
            async with bot.measure("rtt"):
                await trio.sleep(0.001)

    async def main() -> None:
        board = Dashboard(origin="http://127.0.0.1:1", token=None)
        exporter = MetricsExporter()
        async with trio_bots.open_swarm(worker, bots, duration=3) as swarm:
            board.watch(swarm)
            exporter.watch(swarm)
            await trio.sleep(2.2)  # two ticks: the figures have something to show
            calls = 300
            cpu = time.process_time()
            for _ in range(calls):
                json.dumps(board.stats())
            figures["/api/stats answer (Dashboard.stats + JSON)"] = (
                (time.process_time() - cpu) / calls * 1e6
            )
            cpu = time.process_time()
            for _ in range(calls):
                exporter.text()
            figures["/metrics text (prometheus-client)"] = (time.process_time() - cpu) / calls * 1e6

    trio.run(main)
    return figures


def main() -> None:
    print("measure(), ns per block (best of 3):")
    for name, ns in measure_parts().items():
        print(f"  {name:40} {ns:8.0f} ns")
    costs = face_costs()
    print("live faces, µs of CPU per answer, mid-run, 100 bots:")
    for name, us in costs.items():
        print(f"  {name:44} {us:6.0f} µs")
    stats, text = costs.values()
    print(
        f"  share of one core: dashboard polled every 0.5 s {2 * stats / 1e4:.3f}%, "
        f"Prometheus every 1 s {text / 1e4:.3f}% (plus the HTTP server's own work)"
    )


if __name__ == "__main__":
    main()
