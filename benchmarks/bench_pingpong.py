"""64-byte ping-pong against the C echo server: trio_bots vs raw trio.SocketStream.

Each of N connections does the same fixed count of round trips: send 64 bytes,
then read until the 64 bytes are back.

Sides:
    raw            trio.open_tcp_stream per task in a nursery, no metrics: the anchor.
    bots-measure   trio_bots, ``async with bot.measure("rtt")`` around every round trip.
    bots-plain     the same trio_bots loop without measure(): engine cost alone.

Round trips/s = N * count / (last connection done - first connection started its loop).

Run:
    benchmarks/build_echo.sh   # once; the script also builds it when missing
    .venv/bin/python benchmarks/bench_pingpong.py [--bots 100 --count 300 --runs 3]
"""

from __future__ import annotations

from collections.abc import Callable

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
    ratio_rows,
    run_single,
    spread,
    write_json,
)

import trio_bots

TARGET = 0.95


def _summary(marks: list[Mark], trips: int, wall: float) -> Result:
    phase, cpu = phase_times(marks)
    return {
        "round_trips_per_s": trips / phase,
        "round_trips_per_cpu_s": trips / cpu,
        "phase_s": phase,
        "wall_s": wall,
    }


def run_raw(port: int, bots: int, count: int) -> Result:
    """The anchor: one task per connection, no metrics."""
    marks: list[Mark] = []

    async def task() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            start = now()
            for _ in range(count):
                await echo_round_trip(stream)
            marks.append((*start, *now()))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(bots):
                nursery.start_soon(task)

    wall = now()[0]
    trio.run(main)
    return _summary(marks, bots * count, now()[0] - wall)


def run_bots(port: int, bots: int, count: int, *, measure: bool) -> Result:
    """trio_bots: each bot connects (owned stream), then the same loop."""
    marks: list[Mark] = []

    async def worker(bot: trio_bots.Bot) -> None:
        stream = await bot.connect_tcp("127.0.0.1", port)
        start = now()
        if measure:
            for _ in range(count):
                async with bot.measure("rtt"):
                    await echo_round_trip(stream)
        else:
            for _ in range(count):
                await echo_round_trip(stream)
        marks.append((*start, *now()))

    async def main() -> trio_bots.SwarmResult:
        return await trio_bots.swarm(worker, bots)

    wall = now()[0]
    result = trio.run(main)
    wall = now()[0] - wall
    if result.bots_finished != bots or result.bot_failures:
        raise RuntimeError(f"the swarm did not finish cleanly: {result.bot_failures[:3]}")
    if measure and result.stats["rtt"].count != bots * count:
        raise RuntimeError(f"measured {result.stats['rtt'].count} round trips, not {bots * count}")
    return _summary(marks, bots * count, wall)


def measure_cost(calls: int) -> Result:
    """CPU µs of one empty ``async with bot.measure(name)`` in a one-bot swarm, no sockets."""
    out: Result = {}

    async def worker(bot: trio_bots.Bot) -> None:
        start = now()[1]
        for _ in range(calls):
            async with bot.measure("empty"):
                pass
        out["measure_cpu_us"] = (now()[1] - start) / calls * 1e6

    async def main() -> None:
        await trio_bots.swarm(worker, 1, sockets_per_bot=0)

    trio.run(main)
    return out


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=100, help="connections")
    parser.add_argument("--count", type=int, default=300, help="round trips per connection")
    args = parser.parse_args()
    check_runs(args.runs)
    with echo_server() as port:
        shape = (port, args.bots, args.count)
        sides: dict[str, Callable[[], Result]] = {
            "raw": lambda: run_raw(*shape),
            "bots-measure": lambda: run_bots(*shape, measure=True),
            "bots-plain": lambda: run_bots(*shape, measure=False),
        }
        if run_single(args, sides, default="bots-measure"):
            return
        print_environment()
        print(
            f"ping-pong: {args.bots} connections x {args.count} round trips of {ECHO_SIZE} bytes, "
            f"{args.runs} alternating runs, echo server on 127.0.0.1:{port}"
        )
        results = alternate(sides, args.runs)
    med = medians(results)
    key, cpu_key = "round_trips_per_s", "round_trips_per_cpu_s"
    rows = rate_rows(results, med, key=key, cpu_key=cpu_key, unit="round trips/s")
    rows += ratio_rows(
        results,
        [
            ("bots-measure", "raw", "", TARGET),
            ("bots-plain", "raw", "engine, no metrics", None),
            ("bots-measure", "bots-plain", "with / without measure()", None),
        ],
        key=key,
        cpu_key=cpu_key,
    )
    print_table("ping-pong (medians)", rows)
    calls = args.count * 500
    cost = alternate({"measure-cost": lambda: measure_cost(calls)}, args.runs, quiet=True)
    cost_us = medians(cost)["measure-cost"]["measure_cpu_us"]
    rtt_us = 1e6 / med["raw"][cpu_key]
    print_table(
        "measure() alone: an empty body, one bot, no sockets (median CPU)",
        [
            ("µs per measure()", f"{cost_us:.2f}", spread(cost["measure-cost"], "measure_cpu_us")),
            ("raw CPU µs per round trip", f"{rtt_us:.2f}", ""),
            ("measure() / round trip", f"{cost_us / rtt_us:.3f}", "the share measure() adds"),
        ],
    )
    ratio = med["bots-measure"][key] / med["raw"][key]
    paired = paired_ratio(results, "bots-measure", "raw", key)
    cpu_ratio = paired_ratio(results, "bots-measure", "raw", cpu_key)
    write_json(
        args.json,
        {
            "benchmark": "pingpong",
            "args": {k: str(v) for k, v in vars(args).items()},
            "runs": results,
            "medians": med,
            "ratio": ratio,
            "paired_ratio": paired,
            "cpu_paired_ratio": cpu_ratio,
            "measure_cpu_us": cost_us,
            "target": TARGET,
        },
    )


if __name__ == "__main__":
    main()
