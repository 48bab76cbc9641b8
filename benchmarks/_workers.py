"""The client side of each `run.py` workload: one call per child process.

`run.py` starts ``python benchmarks/run.py --worker NAME --spec JSON`` pinned to the
client core; the child calls ``WORKERS[NAME](**spec)`` and prints the figures as one
JSON line. Every figure a side reports is over the wall time of its whole run (from
before the first connection to after the last task ended), not over a measured phase.

Example:
    >>> from _workers import percentile
    >>> percentile([0.1, 0.2, 0.3, 0.4], 0.5)
    0.2
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from _common import Result, echo_round_trip

import trio_bots

HERE = Path(__file__).resolve().parent
#: Locust's user classes (run by the Locust venv, never imported here).
LOCUSTFILE = HERE / "locustfile.py"


def _timed(fn: Callable[[], int]) -> Result:
    """Run `fn` (returns a request count); its rate over the wall and CPU time of the call."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = fn()
    if not count:
        raise RuntimeError("the side did no requests")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"rate": count / wall, "count": float(count), "wall_s": wall, "cpu_s": cpu}


# -- 1. 64-byte ping-pong against the C echo server ------------------------------------


#: The loops a ping-pong side may run on: ``bots-measure@asyncio`` is `bots-measure` on
#: asyncio's own loop, ``@uvloop`` on uvloop (anyio's ``use_uvloop``); trio by default.
LOOPS: dict[str, dict[str, Any]] = {
    "trio": {"backend": "trio"},
    "asyncio": {"backend": "asyncio"},
    "uvloop": {"backend": "asyncio", "backend_options": {"use_uvloop": True}},
}


def pingpong(side: str, port: int, bots: int, seconds: float) -> Result:
    """`bots` connections doing round trips for `seconds`; `side` is one of PINGPONG_SIDES,
    with ``@LOOP`` (a key of LOOPS) to run it on another loop than trio's."""
    name, _, loop = side.partition("@")
    if loop:
        import anyio

        run = functools.partial(anyio.run, PINGPONG_SIDES[name], port, bots, seconds, **LOOPS[loop])
        return _timed(run)
    return _timed(functools.partial(trio.run, PINGPONG_SIDES[side], port, bots, seconds))


async def _pingpong_raw(port: int, bots: int, seconds: float) -> int:
    """The anchor: raw trio SocketStream tasks, stopped by an event like ``bot.stopping``."""
    stop = trio.Event()
    total = [0]

    async def task() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        count = 0
        async with stream:
            while not stop.is_set():
                await echo_round_trip(stream)
                count += 1
        total[0] += count

    async with trio.open_nursery() as nursery:
        for _ in range(bots):
            nursery.start_soon(task)
        await trio.sleep(seconds)
        stop.set()
    return total[0]


def _bots_side(loop: Callable[[trio_bots.Bot, Any], Any]) -> Callable[..., Any]:
    """A ping-pong side: each bot connects, then runs `loop(bot, stream)`.

    The loop returns its count of round trips, or None when ``measure("rtt")``
    counted them.
    """

    async def run(port: int, bots: int, seconds: float) -> int:
        total = [0]

        async def worker(bot: trio_bots.Bot) -> None:
            stream = await bot.connect_tcp("127.0.0.1", port)
            count = await loop(bot, stream)
            total[0] += 0 if count is None else count

        result = await trio_bots.swarm(worker, bots, duration=seconds)
        if result.bot_failures:
            raise RuntimeError(f"the swarm's bots failed: {result.bot_failures[:3]}")
        return total[0] if "rtt" not in result.stats else result.stats["rtt"].count

    return run


async def _measure_loop(bot: trio_bots.Bot, stream: Any) -> None:
    while not bot.stopping.is_set():
        async with bot.measure("rtt"):
            await echo_round_trip(stream)


async def _sync_measure_loop(bot: trio_bots.Bot, stream: Any) -> None:
    while not bot.stopping.is_set():
        with bot.measure("rtt"):  # the plain-with form: no coroutine in or out
            await echo_round_trip(stream)


async def _plain_loop(bot: trio_bots.Bot, stream: Any) -> int:
    count = 0
    while not bot.stopping.is_set():
        await echo_round_trip(stream)
        count += 1
    return count


async def _iterations_loop(bot: trio_bots.Bot, stream: Any) -> int:
    count = 0
    async for _ in bot.iterations():
        await echo_round_trip(stream)
        count += 1
    return count


PINGPONG_SIDES: dict[str, Callable[..., Any]] = {
    "raw-trio": _pingpong_raw,
    "bots-measure": _bots_side(_measure_loop),
    "bots-measure-with": _bots_side(_sync_measure_loop),
    "bots-plain": _bots_side(_plain_loop),
    "bots-iterations": _bots_side(_iterations_loop),
}


# -- Locust and wrk (run as grandchildren, so they inherit this process's pinning) -----


def _http_args(connections: int, seconds: float) -> argparse.Namespace:
    return argparse.Namespace(connections=connections, duration=seconds, path="/")


def locust(user: str, port: int, users: int, seconds: float, command: str) -> Result:
    """Locust headless: `users` of class `user` (locustfile.py) for `seconds`.

    The rate is the requests over the wall time of the load window (test_start to
    test_stop, spawning included). Users are spawned at 10x `users` per second, so
    that a short run is not all ramp.
    """
    with tempfile.TemporaryDirectory(prefix="run-locust-") as folder:
        result_file = Path(folder) / "result.json"
        cmd = [command, "-f", str(LOCUSTFILE), user, "--headless", "-u", str(users)]
        cmd += ["-r", str(10 * users), "-t", f"{seconds:g}s", "--host", f"http://127.0.0.1:{port}"]
        cmd += ["--only-summary", "--loglevel", "WARNING", "--stop-timeout", "0"]
        cmd += ["--exit-code-on-error", "0"]
        env = {**os.environ, "RUN_LOCUST_RESULT": str(result_file)}
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 60, env=env, cwd=folder
        )
        if proc.returncode != 0 or not result_file.exists():
            raise RuntimeError(f"locust exited with {proc.returncode}: {proc.stderr[-1500:]}")
        figures = json.loads(result_file.read_text())
    if figures["failures"] or not figures["requests"]:
        raise RuntimeError(f"locust: {figures}; its output ends with {proc.stderr[-1500:]}")
    return {
        "rate": figures["requests"] / figures["wall_s"],
        "count": figures["requests"],
        "wall_s": figures["wall_s"],
        "cpu_s": figures["cpu_s"],
    }


def wrk(port: int, connections: int, seconds: float) -> Result:
    """``wrk -t1 -cN -dS`` against nginx; its own Requests/sec."""
    import bench_http

    result = bench_http.side_wrk(1, _http_args(connections, seconds), port)
    figures = {"rate": result["rps"], "count": result["requests"], "cpu_s": result["cpu"]}
    return {**figures, "errors": result["errors"]}


# -- 2. keep-alive HTTP GET against nginx ------------------------------------------------


def http(port: int, connections: int, seconds: float) -> Result:
    """`connections` bots, each an ``http.connect`` client GETting ``/`` in bot.iterations()."""
    import bench_http

    url = f"http://127.0.0.1:{port}"
    errors: Result = {}

    def run() -> int:
        result = bench_http.run_trio_bots(url, "/", connections, seconds)
        errors["errors"] = result["errors"]
        return int(result["requests"])

    return {**_timed(run), **errors}


# -- 3. group fan-out ---------------------------------------------------------------------


def fanout(side: str, bots: int, group: int, rounds: int) -> Result:
    """bench_fanout's sides; deliveries over the wall time of the whole trio.run."""
    import bench_fanout

    shape = (bots, group, rounds, 1000)
    if side == "raw-nowait":
        result = bench_fanout.run_raw(*shape, nowait=True)
    else:
        result = bench_fanout.run_bots(*shape, fanout="group")
    deliveries = bots * (group - 1) * rounds
    return {
        "rate": deliveries / result["wall_s"],
        "count": float(deliveries),
        "wall_s": result["wall_s"],
        "phase_rate": result["deliveries_per_s"],
    }


# -- 5. the open model's highest stable arrival rate ---------------------------------------

#: A rate is stable when nothing was dropped, at least this share of the intended arrivals
#: ran, and the p99 of the engine's dispatch lateness is under LATENESS_P99_S.
MIN_DONE = 0.99
LATENESS_P99_S = 0.001


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def arrival_probe(rate: float, seconds: float, pool: int) -> Result:
    """One open-model run at `rate`: drops, share done, lateness.

    Stability is judged on the engine's dispatch lateness p99
    (`SwarmStatistics.arrival_lateness_p99`). Each iteration's ``started -
    intended_start`` is kept beside it: it also counts the bot's wake-up after the
    dispatch, so it is at least the dispatch lateness.
    """
    late: list[float] = []

    async def worker(bot: trio_bots.Bot) -> None:
        async for it in bot.iterations():
            late.append(it.started - it.intended_start)

    async def main() -> trio_bots.SwarmStatistics:
        async with trio_bots.open_swarm(
            worker, pool, rate=rate, duration=seconds, max_bots=pool, stop_grace=1
        ) as swarm:
            pass
        assert swarm.result is not None
        if swarm.result.bot_failures:
            raise RuntimeError(f"the swarm's bots failed: {swarm.result.bot_failures[:3]}")
        return swarm.statistics()

    stats = trio.run(main)
    p99 = percentile(late, 0.99)
    done = len(late) / (rate * seconds)
    return {
        "rate": rate,
        "done_share": done,
        "dropped": float(stats.dropped_arrivals),
        "start_lateness_p99_ms": p99 * 1e3,
        "dispatch_lateness_mean_ms": stats.arrival_lateness_mean * 1e3,
        "dispatch_lateness_max_ms": stats.arrival_lateness_max * 1e3,
        "dispatch_lateness_p99_ms": stats.arrival_lateness_p99 * 1e3,
        "stable": float(
            stats.dropped_arrivals == 0
            and done >= MIN_DONE
            and stats.arrival_lateness_p99 < LATENESS_P99_S
        ),
    }


def highest_stable(
    probe: Callable[[float], bool],
    *,
    start: float,
    cap: float,
    max_probes: int,
    budget_s: float,
    tolerance: float = 0.1,
) -> float | None:
    """The highest rate `probe` calls stable: doubling from `start`, then bisection.

    When `start` is not stable it halves instead, down to `start` / 8. Bounded: at
    most `max_probes` probes, none started after `budget_s` seconds, and bisection
    stops when the gap between the stable and the unstable rate is within
    `tolerance` of the stable one. None when no probed rate was stable.

    Example:
        >>> highest_stable(lambda r: r <= 5000, start=1000, cap=1e6, max_probes=20, budget_s=9)
        5000
    """
    deadline = time.monotonic() + budget_s
    good: float | None = None
    bad: float | None = None
    rate = start
    for _ in range(max_probes):
        if time.monotonic() >= deadline:
            break
        if probe(rate):
            good = rate
        else:
            bad = rate
        if bad is None:
            if rate >= cap:
                break
            rate = min(rate * 2, cap)
        elif good is None:
            if rate <= start / 8:
                break
            rate /= 2
        elif bad - good <= tolerance * good:
            break
        else:
            rate = math.floor((good + bad) / 2)
    return good


def arrivals(seconds: float, pool: int, start: float, max_probes: int, budget_s: float) -> Result:
    """Two searches over one cache of probes: the highest rate held, then the highest stable.

    Held leaves the lateness out (no drops, at least 99% of the arrivals ran): the
    dispatcher's capacity. Stable is the issue's definition (no drops, p99
    lateness under 1 ms). Stability need not grow or shrink with the rate (at low
    rates the dispatcher sleeps between arrivals and its wake-ups come late; at high
    rates it seldom sleeps), so the stable search starts from the highest stable
    rate the first search met, and the figure is the highest stable rate of every
    probe. Each probe's figures go to stderr as they come.
    """
    import sys

    probes: dict[float, Result] = {}

    def run(rate: float) -> Result:
        if rate not in probes:
            probes[rate] = arrival_probe(rate, seconds, pool)
            print(json.dumps(probes[rate]), file=sys.stderr, flush=True)
        return probes[rate]

    def held(rate: float) -> bool:
        result = run(rate)
        return result["dropped"] == 0 and result["done_share"] >= MIN_DONE

    def stable_rates() -> list[float]:
        return [rate for rate, probe in probes.items() if probe["stable"]]

    search = functools.partial(
        highest_stable, cap=1e6, max_probes=max_probes, budget_s=budget_s / 2
    )
    held_rate = search(held, start=start)
    search(lambda rate: bool(run(rate)["stable"]), start=max(stable_rates(), default=start))
    best = max(stable_rates(), default=None)
    # the probe to show: at the stable rate, else the one with the lowest p99 lateness
    shown = (
        probes[best]
        if best
        else min(probes.values(), key=lambda p: p["dispatch_lateness_p99_ms"])
    )
    out: Result = {"rate": best or 0.0, "held_rate": held_rate or 0.0, "probes": len(probes)}
    out.update({f"at_{k}": v for k, v in shown.items()})
    return out


WORKERS: dict[str, Callable[..., Result]] = {
    "pingpong": pingpong,
    "locust": locust,
    "wrk": wrk,
    "http": http,
    "fanout": fanout,
    "arrivals": arrivals,
}
