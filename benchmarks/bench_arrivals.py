"""Open-model arrival timing: how late the scheduler hands out arrivals, and the top rate.

For each rate, a swarm with a trivial worker runs for a few seconds on the
real clock; the driver records each arrival's dispatch lateness (actual -
intended). A rate is "held" when no arrival was dropped and at least 99% of
the intended arrivals ran.

Usage: python benchmarks/bench_arrivals.py [--seconds 3] [--rates 1000,5000,20000]
"""

from __future__ import annotations

import argparse
import functools

import trio

import trio_bots


async def trivial(bot: trio_bots.Bot) -> None:
    async for _ in bot.iterations():
        bot.count("done")


async def run(rate: float, seconds: float, pool: int) -> dict[str, float]:
    async with trio_bots.open_swarm(
        trivial, pool, rate=rate, duration=seconds, max_bots=pool, stop_grace=1
    ) as swarm:
        pass
    dispatch = swarm.statistics()  # the open model's dispatch figures, read after the run
    result = swarm.result
    assert result is not None
    done = result.metrics["counters"].get("done", 0)
    return {
        "rate": rate,
        "arrivals": dispatch.arrivals,
        "done": done,
        "dropped": result.dropped_arrivals,
        "mean_late_us": dispatch.arrival_lateness_mean * 1e6,
        "max_late_us": dispatch.arrival_lateness_max * 1e6,
        "held": float(result.dropped_arrivals == 0 and done >= 0.99 * rate * seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rates", default="1000,5000,20000,40000,60000")
    parser.add_argument("--pool", type=int, default=100)
    args = parser.parse_args()
    print(f"{'rate/s':>8} {'arrivals':>9} {'done':>8} {'dropped':>8} "
          f"{'mean late':>10} {'max late':>10} held")
    for rate in (float(r) for r in args.rates.split(",")):
        row = trio.run(functools.partial(run, rate, args.seconds, args.pool))
        print(f"{row['rate']:>8.0f} {row['arrivals']:>9.0f} {row['done']:>8.0f} "
              f"{row['dropped']:>8.0f} {row['mean_late_us']:>8.0f}µs {row['max_late_us']:>8.0f}µs "
              f"{'yes' if row['held'] else 'no'}")


if __name__ == "__main__":
    main()
