"""Simulation mode: the wall time of a long virtual run, and how it splits between server and bots.

The chat example (examples/chat_server.py and chat_swarm.py) runs in one trio
run: N bots in rooms of five, each saying a line every THINK seconds (uniform),
over a `trio_bots.testing.Network` with 20 ms of latency, for MINUTES virtual
minutes, under ``MockClock(autojump_threshold=0)``.

A trio Instrument times every task step (perf_counter) and files it under the
server (the handler tasks and their children) or the bots (the bot tasks and
their children); the rest of the wall time is trio's scheduler, the engine's
own tasks (ticker, timers) and the clock jumps.

Not a test: it prints figures and asserts nothing.

Run:
    .venv/bin/python benchmarks/bench_simulation.py [--bots 1000 --minutes 10 --think 5-15]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import chat_server
import chat_swarm

import trio_bots
from trio_bots.testing import Network


class Split(trio.abc.Instrument):
    """Wall time of task steps, by who the task belongs to: server, bots or other."""

    def __init__(self) -> None:
        self.seconds = {"server": 0.0, "bots": 0.0, "other": 0.0}
        self.steps = {"server": 0, "bots": 0, "other": 0}
        self._kind: dict[Any, str] = {}
        self._started = 0.0

    def _classify(self, task: Any) -> str:
        kind = self._kind.get(task)
        if kind is None:
            kind = "other"
            walk = task
            while walk is not None:
                if walk.name.startswith("handler "):
                    kind = "server"
                    break
                if walk.name == "trio_bots.bot":
                    kind = "bots"
                    break
                nursery = walk.parent_nursery
                walk = nursery.parent_task if nursery is not None else None
            self._kind[task] = kind
        return kind

    def before_task_step(self, task: Any) -> None:
        self._started = time.perf_counter()

    def after_task_step(self, task: Any) -> None:
        kind = self._classify(task)
        self.seconds[kind] += time.perf_counter() - self._started
        self.steps[kind] += 1

    def task_exited(self, task: Any) -> None:
        self._kind.pop(task, None)


async def run(bots: int, minutes: float, think: tuple[float, float]) -> trio_bots.SwarmResult:
    net = Network(latency=0.020)
    options = {k: v for k, v in chat_swarm.options.items() if k != "size"}
    options.update(duration=minutes * 60, iterations=None, think_time=think, stop_grace=30.0)
    async with net.serve(chat_server.ChatServer().handle, "chat.test", 7777):
        return await trio_bots.swarm(
            chat_swarm.worker, bots, **options, host="chat.test:7777", network=net, seed=1
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0, help="virtual minutes")
    parser.add_argument("--think", default="5-15", help="seconds between two lines, LOW-HIGH")
    args = parser.parse_args()
    low, high = (float(x) for x in args.think.split("-"))
    split = Split()
    start = time.perf_counter()
    result = trio.run(
        run,
        args.bots,
        args.minutes,
        (low, high),
        clock=trio.testing.MockClock(autojump_threshold=0),
        instruments=[split],
    )
    wall = time.perf_counter() - start
    say = result.stats["say"]
    print(
        f"{args.bots} bots, {result.duration:.0f} virtual s, think {args.think} s: "
        f"wall {wall:.1f} s ({result.duration / wall:.0f}x faster than real time)"
    )
    print(
        f"  say: {say.count} round trips, p50 {say.percentile(50) * 1000:.2f} ms, "
        f"{say.failure_count} failed; bot failures {len(result.bot_failures)}"
    )
    for kind in ("server", "bots", "other"):
        print(
            f"  {kind:<6} {split.seconds[kind]:6.1f} s in task steps "
            f"({split.seconds[kind] / wall:5.1%} of the wall), {split.steps[kind]} steps"
        )
    rest = wall - sum(split.seconds.values())
    print(f"  trio's scheduler, clock jumps, setup: {rest:.1f} s ({rest / wall:.1%})")


if __name__ == "__main__":
    main()
