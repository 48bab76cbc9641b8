"""The cost of the anyio layer: spawn and finish N trivial tasks, per task.

Sides:
    raw-trio         a trio nursery, N ``start_soon`` of a task that returns at once: the anchor.
    anyio-trio       an anyio task group on trio: the anyio layer alone.
    bots-trio        ``await trio_bots.swarm(worker, N)`` on trio, the worker returns at once.
    bots-asyncio     the same swarm under ``anyio.run(..., backend="asyncio")``, for reference.
    raw-asyncio      an ``asyncio.TaskGroup`` of N trivial tasks, for reference.

Each figure is µs per task, timed inside the running loop from before the
first spawn to after the nursery / task group / swarm has exited.

Run:
    .venv/bin/python benchmarks/bench_anyio.py [--tasks 10000 --runs 3]
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
import trio
from _common import (
    Result,
    alternate,
    base_parser,
    check_runs,
    medians,
    now,
    paired_ratio,
    print_environment,
    print_table,
    run_single,
    write_json,
)

import trio_bots


async def _noop(*_: Any) -> None:
    pass


def _per_task(tasks: int, wall: float, cpu: float) -> Result:
    return {"us_per_task": wall / tasks * 1e6, "cpu_us_per_task": cpu / tasks * 1e6}


def run_raw_trio(tasks: int) -> Result:
    async def main() -> Result:
        wall, cpu = now()
        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(_noop)
        end_wall, end_cpu = now()
        return _per_task(tasks, end_wall - wall, end_cpu - cpu)

    return trio.run(main)


def run_anyio(tasks: int, backend: str) -> Result:
    async def main() -> Result:
        wall, cpu = now()
        async with anyio.create_task_group() as group:
            for _ in range(tasks):
                group.start_soon(_noop)
        end_wall, end_cpu = now()
        return _per_task(tasks, end_wall - wall, end_cpu - cpu)

    return anyio.run(main, backend=backend)


def run_bots(tasks: int, backend: str) -> Result:
    async def main() -> Result:
        wall, cpu = now()
        result = await trio_bots.swarm(_noop, tasks, sockets_per_bot=0)
        end_wall, end_cpu = now()
        if result.bots_finished != tasks:
            raise RuntimeError(f"{result.bots_finished} of {tasks} bots finished")
        return _per_task(tasks, end_wall - wall, end_cpu - cpu)

    return anyio.run(main, backend=backend)


def run_raw_asyncio(tasks: int) -> Result:
    async def main() -> Result:
        wall, cpu = now()
        async with asyncio.TaskGroup() as group:
            for _ in range(tasks):
                group.create_task(_noop())
        end_wall, end_cpu = now()
        return _per_task(tasks, end_wall - wall, end_cpu - cpu)

    return asyncio.run(main())


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10000)
    args = parser.parse_args()
    check_runs(args.runs)
    n = args.tasks
    sides: dict[str, Callable[[], Result]] = {
        "raw-trio": lambda: run_raw_trio(n),
        "anyio-trio": lambda: run_anyio(n, "trio"),
        "bots-trio": lambda: run_bots(n, "trio"),
        "bots-asyncio": lambda: run_bots(n, "asyncio"),
        "raw-asyncio": lambda: run_raw_asyncio(n),
    }
    if run_single(args, sides, default="bots-trio"):
        return
    print_environment()
    print(f"spawn+finish: {n} trivial tasks, {args.runs} alternating runs")
    results = alternate(sides, args.runs)
    med = medians(results)
    us = {name: m["us_per_task"] for name, m in med.items()}
    cpu = {name: m["cpu_us_per_task"] for name, m in med.items()}
    rows = [(f"{name} µs/task", f"{us[name]:.2f}", f"CPU {cpu[name]:.2f} µs") for name in us]
    comparisons = [
        ("anyio-trio", "raw-trio", "the anyio layer"),
        ("bots-trio", "raw-trio", "lower is better"),
        ("bots-trio", "anyio-trio", "the engine over anyio"),
        ("bots-asyncio", "raw-asyncio", ""),
        ("bots-asyncio", "bots-trio", ""),
    ]
    for a, b, note in comparisons:
        cpu_ratio = paired_ratio(results, a, b, "cpu_us_per_task")
        rows.append((f"{a} / {b}", f"{us[a] / us[b]:.2f}", f"CPU {cpu_ratio:.2f} (paired)  {note}"))
    print_table("spawn+finish per task (medians)", rows)
    write_json(
        args.json,
        {
            "benchmark": "anyio",
            "args": {k: str(v) for k, v in vars(args).items()},
            "runs": results,
            "medians": med,
        },
    )


if __name__ == "__main__":
    main()
