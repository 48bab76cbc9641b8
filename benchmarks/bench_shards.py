"""Scaling over local processes: the same swarm in 1 and in 2 shard processes, alternately.

Workloads:
    groups     400 bots in groups of 10 (shard_align=10); each round a bot sends to its
               group and takes the 9 messages of the others: CPU-bound messaging.
    pingpong   100 bots doing 64-byte round trips against the C echo server (which needs
               a core too, so on 2 cores this one cannot double).

Figure: rounds (or round trips) per second over the run, from the merged result; the
ratio is 2 processes against 1, per pair of runs, median over the runs.

Run:
    benchmarks/build_echo.sh   # once; the script also builds it when missing
    .venv/bin/python benchmarks/bench_shards.py [--duration 5 --runs 3]
"""

from __future__ import annotations

import functools
import statistics
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, echo_server, print_environment

import trio_bots

GROUP = 10
PAYLOAD = b"p" * 64


async def groups(bot: trio_bots.Bot) -> None:
    group = bot.id // GROUP
    bot.join(group)
    await bot.step()
    send, take = trio_bots.send_group(group), trio_bots.recv_group(group)
    while not bot.stopping.is_set():
        async with bot.measure("round"):
            await bot.send(send, bot.id)
            for _ in range(GROUP - 1):
                await bot.receive(take)


async def pingpong(bot: trio_bots.Bot) -> None:
    host, port = bot.swarm.options["host"].split(":")
    stream = await bot.connect_tcp(host, int(port))
    while not bot.stopping.is_set():
        async with bot.measure("rtt"):
            await stream.send_all(PAYLOAD)
            got = 0
            while got < len(PAYLOAD):
                got += len(await stream.receive_some(65536))


def one(worker: object, size: int, processes: int, duration: float, **options: object) -> float:
    run = functools.partial(
        trio_bots.swarm, worker, size, processes=processes, duration=duration,
        stop_grace=0.5, **options,
    )
    result = trio.run(run)
    name = "round" if worker is groups else "rtt"
    return result.stats[name].count / duration


def main() -> None:
    parser = base_parser(__doc__ or "", runs=3)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    print_environment()
    with echo_server() as port:
        workloads = {
            "groups": (groups, 400, {"shard_align": GROUP}),
            "pingpong": (pingpong, 100, {"host": f"127.0.0.1:{port}"}),
        }
        for name, (worker, size, options) in workloads.items():
            rates: dict[int, list[float]] = {1: [], 2: []}
            for _ in range(args.runs):
                for processes in (1, 2):
                    rates[processes].append(one(worker, size, processes, args.duration, **options))
            ratios = [b / a for a, b in zip(rates[1], rates[2], strict=True)]
            print(
                f"{name:9s} 1 process {statistics.median(rates[1]):>10,.0f}/s   "
                f"2 processes {statistics.median(rates[2]):>10,.0f}/s   "
                f"ratio {statistics.median(ratios):.2f}x "
                f"(runs {', '.join(f'{r:.2f}' for r in ratios)})"
            )


if __name__ == "__main__":
    main()
