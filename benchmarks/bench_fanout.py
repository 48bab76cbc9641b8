"""Group fan-out: trio_bots (fan-out latency recorded per group) vs raw trio memory channels.

N bots in groups of G. In each round every bot sends one message to the G-1
others of its group, then takes G-1 messages from its inbox. The anchor does
the same deliveries with one `trio.open_memory_channel` per task, no metrics.

Sides:
    raw-nowait     send_nowait to each peer (await send only when full), then one
                   checkpoint: the same delivery strategy as the engine; the anchor.
    raw-await      ``await peer.send(msg)`` per peer: the plain idiom (one
                   checkpoint per delivery).
    bots-group     trio_bots, fanout="group" (the default): the figure for the target.
    bots-off       trio_bots, fanout="off": splits delivery cost from recording cost.

Deliveries/s = N * (G - 1) * rounds / (last task done - first task started sending).

Run:
    .venv/bin/python benchmarks/bench_fanout.py [--bots 1000 --group 10 --rounds 30 --runs 3]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import trio
from _common import (
    Mark,
    Result,
    alternate,
    base_parser,
    check_runs,
    medians,
    now,
    paired_ratio,
    phase_times,
    print_environment,
    print_table,
    rate_rows,
    ratio_rows,
    run_single,
    write_json,
)

import trio_bots

PAYLOAD = b"x" * 64
TARGET = 0.8


def _summary(marks: list[Mark], deliveries: int, wall: float) -> Result:
    phase, cpu = phase_times(marks)
    return {
        "deliveries_per_s": deliveries / phase,
        "deliveries_per_cpu_s": deliveries / cpu,
        "phase_s": phase,
        "wall_s": wall,
    }


def run_raw(bots: int, group: int, rounds: int, inbox: int, *, nowait: bool) -> Result:
    """The anchor: one memory channel per task, no metrics."""
    marks: list[Mark] = []
    expected = group - 1

    async def task(i: int, channels: list[Any]) -> None:
        first = i - i % group
        peers = [channels[j][0] for j in range(first, first + group) if j != i]
        inbox_rx = channels[i][1]
        start = now()
        for _ in range(rounds):
            if nowait:
                for peer in peers:
                    try:
                        peer.send_nowait(PAYLOAD)
                    except trio.WouldBlock:
                        await peer.send(PAYLOAD)
                await trio.lowlevel.checkpoint()
            else:
                for peer in peers:
                    await peer.send(PAYLOAD)
            for _ in range(expected):
                await inbox_rx.receive()
        marks.append((*start, *now()))

    async def main() -> None:
        channels = [trio.open_memory_channel[bytes](inbox) for _ in range(bots)]
        async with trio.open_nursery() as nursery:
            for i in range(bots):
                nursery.start_soon(task, i, channels)

    wall = time.perf_counter()
    trio.run(main)
    wall = time.perf_counter() - wall
    return _summary(marks, bots * expected * rounds, wall)


def run_bots(bots: int, group: int, rounds: int, inbox: int, *, fanout: str) -> Result:
    """trio_bots: join a group, step, then the same rounds through send/receive."""
    marks: list[Mark] = []
    expected = group - 1

    async def worker(bot: trio_bots.Bot) -> None:
        name = bot.id // group
        bot.join(name)
        await bot.step()  # every bot has joined before anyone sends
        target = trio_bots.send_group(name)
        receive = bot.receive
        start = now()
        for _ in range(rounds):
            await bot.send(target, PAYLOAD)
            for _ in range(expected):
                await receive()
        marks.append((*start, *now()))

    wall = time.perf_counter()
    result = trio.run(
        _swarm, worker, bots, {"fanout": fanout, "inbox_size": inbox, "sockets_per_bot": 0}
    )
    wall = time.perf_counter() - wall
    if result.bots_finished != bots or result.bot_failures:
        raise RuntimeError(f"the swarm did not finish cleanly: {result.bot_failures[:3]}")
    return _summary(marks, bots * expected * rounds, wall)


async def _swarm(worker: Any, size: int, options: dict[str, Any]) -> trio_bots.SwarmResult:
    return await trio_bots.swarm(worker, size, **options)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--group", type=int, default=10, help="group size (bots must divide)")
    parser.add_argument("--rounds", type=int, default=30, help="sends per bot")
    parser.add_argument("--inbox", type=int, default=1000, help="inbox / channel size")
    args = parser.parse_args()
    check_runs(args.runs)
    if args.bots % args.group:
        parser.error(f"--bots ({args.bots}) must be a multiple of --group ({args.group})")
    shape = (args.bots, args.group, args.rounds, args.inbox)
    sides: dict[str, Callable[[], Result]] = {
        "raw-nowait": lambda: run_raw(*shape, nowait=True),
        "raw-await": lambda: run_raw(*shape, nowait=False),
        "bots-group": lambda: run_bots(*shape, fanout="group"),
        "bots-off": lambda: run_bots(*shape, fanout="off"),
    }
    if run_single(args, sides, default="bots-group"):
        return
    deliveries = args.bots * (args.group - 1) * args.rounds
    print_environment()
    print(
        f"fan-out: {args.bots} bots, groups of {args.group}, {args.rounds} rounds, "
        f"{deliveries} deliveries per run, {args.runs} alternating runs"
    )
    results = alternate(sides, args.runs)
    med = medians(results)
    key, cpu_key = "deliveries_per_s", "deliveries_per_cpu_s"
    rows = rate_rows(results, med, key=key, cpu_key=cpu_key, unit="deliveries/s")
    rows += ratio_rows(
        results,
        [
            ("bots-group", "raw-nowait", "", TARGET),
            ("bots-group", "raw-await", "vs the plain idiom", None),
            ("bots-off", "raw-nowait", "engine, no recording", None),
            ("bots-group", "bots-off", "cost of recording", None),
        ],
        key=key,
        cpu_key=cpu_key,
    )
    print_table("fan-out (medians)", rows)
    ratio = med["bots-group"][key] / med["raw-nowait"][key]
    paired = paired_ratio(results, "bots-group", "raw-nowait", key)
    cpu_ratio = paired_ratio(results, "bots-group", "raw-nowait", cpu_key)
    write_json(
        args.json,
        {
            "benchmark": "fanout",
            "args": {k: str(v) for k, v in vars(args).items()},
            "runs": results,
            "medians": med,
            "ratio": ratio,
            "paired_ratio": paired,
            "cpu_paired_ratio": cpu_ratio,
            "target": TARGET,
        },
    )


if __name__ == "__main__":
    main()
