"""Idle connected bots: memory per bot, time to connect them all, time to close them all.

N tasks each open one TCP connection to the C echo server and hold it. Each
side runs in a fresh subprocess (so their memory does not mix) with its own
echo server, alternating raw / bots, and reports:

    rss_per_bot_kib   (VmRSS with every connection up - VmRSS before the first task) / N
    objects_per_bot   the same delta of gc-tracked Python objects
    connect_s         from spawning the first task to the last connection up
    close_s           from cancelling everything to the nursery / swarm exiting
    heap_per_bot_b    (the -heap sides) the same delta of the Python heap under
                      tracemalloc: exact and repeatable, while RSS also holds the
                      allocator's leftovers from connecting (freed but not returned)

Sides:
    raw    trio nursery; each task ``async with await trio.open_tcp_stream(...)`` and sleeps.
    bots   trio_bots.open_swarm; each bot ``await bot.connect_tcp(...)`` and sleeps;
           the close is a cancel of the scope around open_swarm.
    raw-heap, bots-heap   the same under tracemalloc (heap only: its times are slowed).

The marginal memory per bot (the slope between two sizes) is also printed: it
leaves out fixed costs (the swarm's recorder, imports) that a large N only dilutes.

Run:
    .venv/bin/python benchmarks/bench_idle.py [--sizes 9000 5000 --runs 3]
"""

from __future__ import annotations

import functools
import gc
import json
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

import trio
from _common import (
    Result,
    alternate,
    base_parser,
    check_runs,
    echo_server,
    medians,
    now,
    print_environment,
    print_table,
    rss_kib,
    verdict,
    write_json,
)

TARGET_RSS = 1.15
SIDES = ("raw", "bots")
CHILD_TIMEOUT = 300.0


async def _measure_raw(port: int, bots: int) -> Result:
    connected = 0
    all_up = trio.Event()

    async def holder() -> None:
        nonlocal connected
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            connected += 1
            if connected == bots:
                all_up.set()
            await trio.sleep_forever()

    base = _baseline()
    start = now()[0]
    async with trio.open_nursery() as nursery:
        for _ in range(bots):
            nursery.start_soon(holder)
        await all_up.wait()
        up = now()[0]
        figures = _memory(bots, base)
        cancel = now()[0]
        nursery.cancel_scope.cancel()
    return {**figures, "connect_s": up - start, "close_s": now()[0] - cancel}


async def _measure_bots(port: int, bots: int) -> Result:
    import trio_bots

    connected = 0
    all_up = trio.Event()

    async def worker(bot: trio_bots.Bot) -> None:
        nonlocal connected
        await bot.connect_tcp("127.0.0.1", port)
        connected += 1
        if connected == bots:
            all_up.set()
        await trio.sleep_forever()

    base = _baseline()
    start = now()[0]
    with trio.CancelScope() as scope:
        async with trio_bots.open_swarm(worker, bots):
            await all_up.wait()
            up = now()[0]
            figures = _memory(bots, base)
            cancel = now()[0]
            scope.cancel()
    return {**figures, "connect_s": up - start, "close_s": now()[0] - cancel}


def _baseline() -> tuple[int, int, int]:
    gc.collect()
    return rss_kib(), len(gc.get_objects()), tracemalloc.get_traced_memory()[0]


def _memory(bots: int, base: tuple[int, int, int]) -> Result:
    base_rss, base_objects, base_heap = base
    gc.collect()
    rss = rss_kib()
    objects = len(gc.get_objects())
    figures = {
        "rss_per_bot_kib": (rss - base_rss) / bots,
        "objects_per_bot": (objects - base_objects) / bots,
        "rss_kib": float(rss),
        "base_rss_kib": float(base_rss),
    }
    if tracemalloc.is_tracing():
        figures = {"heap_per_bot_b": (tracemalloc.get_traced_memory()[0] - base_heap) / bots}
    return figures


def child(side: str, port: int, bots: int) -> None:
    """Run one side in this (fresh) process and print its figures as one JSON line.

    A side ending in ``-heap`` runs under tracemalloc and reports only the
    Python heap per bot: exact, but tracemalloc slows everything down, so
    its times are not reported.
    """
    import trio_bots  # noqa: F401  imported by both sides, so the baseline includes it

    if side.endswith("-heap"):
        tracemalloc.start()
        side = side.removesuffix("-heap")
    measure = _measure_raw if side == "raw" else _measure_bots
    print(json.dumps(trio.run(measure, port, bots)))


def run_side(side: str, bots: int) -> Result:
    """Start an echo server and a fresh Python for `side`; return its figures."""
    with echo_server() as port:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", side, "--port", str(port), "--bots", str(bots)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"the {side} child failed ({proc.returncode}):\n{proc.stderr}")
    result: Result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[9000, 5000], help="bot counts")
    parser.add_argument(
        "--child", choices=["raw", "bots", "raw-heap", "bots-heap"], help=argparse_hidden()
    )
    parser.add_argument("--port", type=int, help=argparse_hidden())
    parser.add_argument("--bots", type=int, help=argparse_hidden())
    args = parser.parse_args()
    if args.child:
        child(args.child, args.port, args.bots)
        return
    check_runs(args.runs)
    if args.only or args.profile:
        sys.exit("bench_idle.py runs each side in a subprocess: profile with py-spy (README.md)")
    print_environment()
    report: dict[str, Any] = {"benchmark": "idle", "sizes": {}}
    per_size: dict[int, dict[str, Result]] = {}
    for bots in args.sizes:
        print(f"idle: {bots} connected bots, {args.runs} alternating runs, fresh process each")
        sides: dict[str, Callable[[], Result]] = {
            side: functools.partial(run_side, side, bots)
            for side in ("raw", "bots", "raw-heap", "bots-heap")
        }
        results = alternate(sides, args.runs)
        med = per_size[bots] = medians(results)
        ratios = _print_size(bots, med)
        report["sizes"][str(bots)] = {"runs": results, "medians": med, **ratios}
    if len(per_size) >= 2:
        big, small = max(per_size), min(per_size)
        # per-bot figures times N are totals; the slope of the totals is the marginal cost
        heap = {
            side: (
                per_size[big][f"{side}-heap"]["heap_per_bot_b"] * big
                - per_size[small][f"{side}-heap"]["heap_per_bot_b"] * small
            )
            / (big - small)
            for side in SIDES
        }
        rss = {
            side: (
                per_size[big][side]["rss_per_bot_kib"] * big
                - per_size[small][side]["rss_per_bot_kib"] * small
            )
            / (big - small)
            for side in SIDES
        }
        print_table(
            f"marginal memory per bot, {small} -> {big} bots (slope of the medians)",
            [
                ("raw heap B/bot", f"{heap['raw']:.0f}", ""),
                ("bots heap B/bot", f"{heap['bots']:.0f}", ""),
                ("bots / raw heap", f"{heap['bots'] / heap['raw']:.3f}", ""),
                ("raw RSS KiB/bot", f"{rss['raw']:.2f}", ""),
                ("bots RSS KiB/bot", f"{rss['bots']:.2f}", ""),
                ("bots / raw RSS", f"{rss['bots'] / rss['raw']:.3f}", ""),
            ],
        )
        report["marginal"] = {"heap_b_per_bot": heap, "rss_kib_per_bot": rss}
    write_json(args.json, report)


def _print_size(bots: int, med: dict[str, Result]) -> dict[str, float]:
    raw, ours = med["raw"], med["bots"]
    raw_heap, bots_heap = med["raw-heap"]["heap_per_bot_b"], med["bots-heap"]["heap_per_bot_b"]
    ratios = {
        "rss_ratio": ours["rss_per_bot_kib"] / raw["rss_per_bot_kib"],
        "heap_ratio": bots_heap / raw_heap,
        "connect_ratio": ours["connect_s"] / raw["connect_s"],
        "close_ratio": ours["close_s"] / raw["close_s"],
    }
    raw_objects, bots_objects = raw["objects_per_bot"], ours["objects_per_bot"]
    rows = [
        ("raw RSS KiB/bot", f"{raw['rss_per_bot_kib']:.2f}", f"{raw_objects:.1f} objects/bot"),
        ("bots RSS KiB/bot", f"{ours['rss_per_bot_kib']:.2f}", f"{bots_objects:.1f} objects/bot"),
        ("bots / raw RSS", f"{ratios['rss_ratio']:.3f}", _rss_verdict(ratios["rss_ratio"])),
        ("raw heap B/bot", f"{raw_heap:.0f}", "tracemalloc"),
        ("bots heap B/bot", f"{bots_heap:.0f}", "tracemalloc"),
        ("bots / raw heap", f"{ratios['heap_ratio']:.3f}", _rss_verdict(ratios["heap_ratio"])),
        ("raw connect s", f"{raw['connect_s']:.3f}", ""),
        ("bots connect s", f"{ours['connect_s']:.3f}", ""),
        ("bots / raw connect", f"{ratios['connect_ratio']:.3f}", "lower is better"),
        ("raw close s", f"{raw['close_s']:.3f}", ""),
        ("bots close s", f"{ours['close_s']:.3f}", ""),
        ("bots / raw close", f"{ratios['close_ratio']:.3f}", "lower is better"),
    ]
    print_table(f"idle, {bots} bots (medians)", rows)
    return ratios


def _rss_verdict(ratio: float) -> str:
    return verdict(ratio, TARGET_RSS, higher_is_better=False)


def argparse_hidden() -> str:
    """argparse's marker for an option left out of --help."""
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
