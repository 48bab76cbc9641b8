"""What live thresholds and the HDR log cost a long run, in virtual time.

A swarm of 20 bots with 10 request names (100 ms to 500 ms per request) runs
for `--minutes` virtual minutes under ``trio.testing.MockClock``, four ways:
plain; with five thresholds (cumulative, a 60 s and a 600 s window, a counter);
with ``hdr_log=``; and with both. It prints the CPU seconds each takes per
virtual second, the extra over plain, and the HDR log's bytes per second.

Benchmarks are not tests: this prints figures and never fails on them.

    python benchmarks/bench_longrun.py --minutes 20
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio
import trio.testing

import trio_bots

NAMES = [f"req{i}" for i in range(10)]
THRESHOLDS = [
    "p99 < 1s",
    "p99(req3) < 600ms",
    "p95[60s](req1) < 600ms",
    "max[10m] < 1s",
    "failure_rate < 1%",
]


async def worker(bot: trio_bots.Bot) -> None:
    rng = random.Random(bot.id)
    while not bot.stopping.is_set():
        async with bot.measure(NAMES[rng.randrange(len(NAMES))]):
            await trio.sleep(rng.uniform(0.1, 0.5))


def one(seconds: float, **options: Any) -> float:
    async def main() -> None:
        await trio_bots.swarm(worker, 20, duration=seconds, stop_grace=1, **options)

    start = time.process_time()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=20.0)
    args = parser.parse_args()
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "run.hlog"
        plain = one(seconds)
        checked = one(seconds, thresholds=THRESHOLDS)
        logged = one(seconds, hdr_log=log)
        size = log.stat().st_size
        both = one(seconds, thresholds=THRESHOLDS, hdr_log=log)
    print(f"{args.minutes:g} virtual minutes, 20 bots, 10 names")
    for label, cpu in [("plain", plain), ("5 thresholds", checked), ("hdr_log", logged),
                       ("both", both)]:
        extra = (cpu - plain) / seconds * 1e3
        print(f"  {label:13} {cpu / seconds * 1e3:7.3f} ms CPU per virtual s  "
              f"(+{extra:.3f} ms)")
    print(f"  HDR log: {size / seconds:,.0f} bytes per virtual second "
          f"({size / seconds * 86400 / 1e6:,.0f} MB a day)")


if __name__ == "__main__":
    main()
