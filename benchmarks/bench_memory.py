"""Memory of a long run: heap growth per virtual second, and the timeline of a day.

Two measurements, both in virtual time (no sleeping):

- ``swarm``: a real swarm under ``trio.testing.MockClock`` (20 bots, 10 request
  names, 100 ms to 500 ms per request), heap measured with ``tracemalloc``
  after ``gc.collect()`` at the end of the first and of the second virtual
  hour: the growth per virtual second over the second hour.
- ``day``: the `Recorder` alone, fed 10 names for 24 virtual hours; the heap
  its timeline holds at the end (and its pickled size).

Benchmarks are not tests: this prints figures and never fails on them.

    python benchmarks/bench_memory.py swarm --hours 2
    python benchmarks/bench_memory.py day --hours 24
"""

from __future__ import annotations

import argparse
import gc
import pickle
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio
import trio.testing

import trio_bots
from trio_bots.metrics import Recorder

NAMES = [f"req{i}" for i in range(10)]
#: The growth budget: 50 MB for a 24 h timeline.
TARGET_BYTES = 50e6


def heap() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def swarm(hours: float, bots: int) -> None:
    marks: list[tuple[int, int]] = []

    async def worker(bot: trio_bots.Bot) -> None:
        while not bot.stopping.is_set():
            for name in NAMES:
                async with bot.measure(name):
                    await trio.sleep(bot.random.uniform(0.1, 0.5))

    async def main() -> None:
        async with trio_bots.open_swarm(worker, bots, duration=hours * 3600, seed=1) as s:

            def mark(tick: trio_bots.Tick) -> None:
                if tick.second in (3599, 7199):
                    marks.append((tick.second, heap()))

            s.on_tick(mark)

    tracemalloc.start()
    started = time.perf_counter()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    wall = time.perf_counter() - started
    tracemalloc.stop()
    (t1, h1), (t2, h2) = marks[:2]
    per_second = (h2 - h1) / (t2 - t1)
    print(f"swarm: {bots} bots, {len(NAMES)} names, {hours:g} virtual h in {wall:.0f} s wall")
    print(f"  heap after hour 1: {h1 / 1e6:.1f} MB, after hour 2: {h2 / 1e6:.1f} MB")
    print(f"  growth over the second hour: {per_second:.0f} B per virtual second")
    print(f"  = {per_second * 3600 / 1e6:.1f} MB/h, {per_second * 86400 / 1e6:.0f} MB/day")


def day(hours: float, per_second: int) -> None:
    rng = random.Random(1)
    tracemalloc.start()
    rec = Recorder(0.0)
    for name in NAMES:  # the names' cumulative histograms are not the timeline
        rec.record(name, 1000)
    rec.tick(0, 20)
    before = heap()
    started = time.perf_counter()
    for second in range(1, int(hours * 3600)):
        for name in NAMES:
            for _ in range(per_second):
                rec.record(name, int(rng.lognormvariate(9, 1.5)))
            if rng.random() < 0.05:
                rec.record_failure(name, "OSError", "reset", 1)
        rec.tick(second, 20)
    wall = time.perf_counter() - started
    after = heap()
    timeline = rec.snapshot(hours * 3600, bots_running=20, active_seconds=hours * 3600)["timeline"]
    tracemalloc.stop()
    size = after - before
    verdict = "ok" if size < TARGET_BYTES * hours / 24 else "MISSED"
    print(f"day: {len(NAMES)} names x {per_second}/s, {hours:g} virtual h in {wall:.0f} s wall")
    print(
        f"  timeline: {len(timeline)} buckets, heap {size / 1e6:.1f} MB ({verdict}), "
        f"pickled {len(pickle.dumps(timeline)) / 1e6:.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["swarm", "day"])
    parser.add_argument("--hours", type=float, default=None)
    parser.add_argument("--bots", type=int, default=20)
    parser.add_argument("--per-second", type=int, default=20)
    args = parser.parse_args()
    if args.mode == "swarm":
        swarm(args.hours or 2.0, args.bots)
    else:
        day(args.hours or 24.0, args.per_second)


if __name__ == "__main__":
    main()
