"""Every workload of issue 17 side by side, the user's way: one command, one table.

The client runs pinned to one core and its target (the C echo server, nginx) to
another, with ``taskset``. Each side runs in a process of its own, and its rate is
its requests over the wall time of its whole run. Within a workload the sides
alternate (A B C, C B A, ...) for ``--rounds`` rounds, and each figure is the
median over the rounds.

Workloads (``--only NAME``):
    pingpong   100 bots, 64 B TCP ping-pong against the C echo server:
               ``async with bot.measure()`` on every round trip vs raw trio
               SocketStream tasks; the engine alone, ``bot.iterations()``, and a
               Locust ``User`` on gevent raw sockets beside.
    http       100 bots, keep-alive GET / against nginx (1 worker) with
               ``trio_bots.protocols.http`` vs ``wrk -t1 -c100``; Locust
               ``FastHttpUser`` beside.
    fanout     1,000 bots in groups of 10, each broadcasting to its group and
               receiving its groupmates' messages, vs raw memory channels with
               ``send_nowait``.
    idle       9,000 idle connected bots vs raw trio tasks: KiB/bot (RSS),
               time to connect them all, time to cancel them all.
    arrivals   the open model's highest stable arrival rate (no anchor).

Locust runs from a venv of its own, ``benchmarks/.locust-venv``, made on the first
run (``python -m venv`` + ``pip install locust``); when that fails, or with
``--no-locust``, its rows are SKIPPED. A side whose tool is missing (nginx, wrk,
the echo server's source or a C compiler, Locust) is SKIPPED with the reason.

Exit status: 2 when a side or a workload crashed; otherwise, without ``--smoke``,
1 when a target is missed; else 0. ``--smoke`` runs every workload for about a
second with small sizes, one round, and ignores the targets: it exits 0 whenever
every workload that could run (nothing SKIPPED it) ran. Skipped rows never fail.

Run:
    .venv/bin/python benchmarks/run.py                      # about 5 minutes on 2 cores
    .venv/bin/python benchmarks/run.py --smoke --json /tmp/bench.json
    .venv/bin/python benchmarks/run.py --only pingpong http --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import Result, echo_server, environment, median, medians
from _run_tools import REPO, Pinning, Skip, ensure_echo, ensure_locust, need, run_child

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "run.json"
NGINX = "/usr/sbin/nginx"
WRK = "/usr/bin/wrk"
WORKLOADS = ("pingpong", "http", "fanout", "idle", "arrivals")

#: Sizes per mode: the full run, and the smoke (about a second per side).
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "seconds": 5.0,
        "bots": 100,
        "fanout": {"bots": 1000, "group": 10, "rounds": 100},
        "idle_bots": 9000,
        "arrivals": {
            "seconds": 5.0,
            "pool": 100,
            "start": 1000.0,
            "max_probes": 10,
            "budget_s": 120.0,
        },
    },
    "smoke": {
        "seconds": 1.0,
        "bots": 100,
        "fanout": {"bots": 1000, "group": 10, "rounds": 10},
        "idle_bots": 300,
        "arrivals": {
            "seconds": 0.5,
            "pool": 100,
            "start": 1000.0,
            "max_probes": 1,
            "budget_s": 5.0,
        },
    },
}


Sides = dict[str, Callable[[], Result]]


@dataclass
class Context:
    """What every workload's sides share: sizes, pinning, the Locust command."""

    mode: str
    seconds: float
    pinning: Pinning
    locust: str | None
    locust_skip: str

    @property
    def sizes(self) -> dict[str, Any]:
        return SIZES[self.mode]

    def worker(self, name: str, timeout: float = 180.0, **spec: Any) -> Result:
        """Run ``_workers.WORKERS[name](**spec)`` in a child pinned to the client core."""
        cmd = [*self.pinning.client, sys.executable, str(Path(__file__).resolve())]
        return run_child([*cmd, "--worker", name, "--spec", json.dumps(spec)], timeout)

    def add_locust(self, sides: Sides, name: str, user: str, port: int) -> None:
        """Add side `name`: Locust's `user` class against 127.0.0.1:`port` (when it is here)."""
        if self.locust is not None:
            spec = {"user": user, "port": port, "users": self.sizes["bots"]}
            spec.update(seconds=self.seconds, command=self.locust)
            sides[name] = functools.partial(self.worker, "locust", **spec)

    @contextlib.contextmanager
    def echo(self) -> Iterator[int]:
        ensure_echo()
        with echo_server(prefix=self.pinning.target) as port:
            yield port


# -- the workloads --------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One row of the table: `side` / `anchor` of figure `key`, against `target`.

    kind: "target" (a miss fails the run), "beside" (reported, never fails) or
    "diagnostic" (no target).
    """

    label: str
    side: str
    anchor: str | None
    key: str
    unit: str
    target: float | None = None
    kind: str = "target"
    lower_is_better: bool = False
    #: What to say beside the figure, from the side's medians.
    note: Callable[[Result], str] | None = None


@contextlib.contextmanager
def pingpong(ctx: Context) -> Iterator[Sides]:
    bots = ctx.sizes["bots"]
    with ctx.echo() as port:
        shape = {"port": port, "bots": bots, "seconds": ctx.seconds}
        sides: Sides = {
            side: functools.partial(ctx.worker, "pingpong", side=side, **shape)
            for side in (
                "raw-trio",
                "bots-measure",
                "bots-measure-with",
                "bots-plain",
                "bots-iterations",
                "bots-measure@asyncio",
                "bots-measure@uvloop",
            )
        }
        ctx.add_locust(sides, "locust-user", "PingPong", port)
        yield sides


@contextlib.contextmanager
def http(ctx: Context) -> Iterator[Sides]:
    import bench_http

    need(NGINX, "nginx")
    bots = ctx.sizes["bots"]
    with (
        tempfile.TemporaryDirectory(prefix="run-nginx-") as folder,
        contextlib.ExitStack() as stack,
    ):
        try:
            port, pid = stack.enter_context(bench_http.nginx(Path(folder)))
        except SystemExit as exc:  # bench_http.nginx exits with its reason
            raise RuntimeError(str(exc.code)) from None
        ctx.pinning.pin_target_pid(pid)
        shape = {"port": port, "connections": bots, "seconds": ctx.seconds}
        sides: Sides = {"trio_bots": functools.partial(ctx.worker, "http", **shape)}
        if os.access(WRK, os.X_OK):
            sides["wrk-t1"] = functools.partial(ctx.worker, "wrk", **shape)
        ctx.add_locust(sides, "locust-fasthttp", "Get", port)
        yield sides


@contextlib.contextmanager
def fanout(ctx: Context) -> Iterator[Sides]:
    shape = ctx.sizes["fanout"]
    yield {
        side: functools.partial(ctx.worker, "fanout", side=side, **shape)
        for side in ("raw-nowait", "bots-group")
    }


@contextlib.contextmanager
def idle(ctx: Context) -> Iterator[Sides]:
    ensure_echo()
    bots = ctx.sizes["idle_bots"]

    def run(side: str) -> Result:
        with ctx.echo() as port:  # a fresh server per run: 9,000 connections to forget
            cmd = [*ctx.pinning.client, sys.executable, str(HERE / "bench_idle.py")]
            cmd += ["--child", side, "--port", str(port), "--bots", str(bots)]
            return run_child(cmd, timeout=300.0)

    yield {"raw-trio": functools.partial(run, "raw"), "bots": functools.partial(run, "bots")}


@contextlib.contextmanager
def arrivals(ctx: Context) -> Iterator[Sides]:
    spec = ctx.sizes["arrivals"]
    timeout = spec["budget_s"] + 4 * spec["seconds"] + 120
    yield {"trio_bots": functools.partial(ctx.worker, "arrivals", timeout=timeout, **spec)}


SETUPS: dict[str, Callable[[Context], contextlib.AbstractContextManager[Sides]]] = {
    "pingpong": pingpong,
    "http": http,
    "fanout": fanout,
    "idle": idle,
    "arrivals": arrivals,
}
#: How many rounds a workload runs at most (the arrival search runs once: it is a search).
MAX_ROUNDS = {"arrivals": 1}


def _arrival_note(m: Result) -> str:
    """The lateness at the stable rate, or at the probe that came closest."""
    where = "at it" if m["rate"] else f"none stable; closest at {m['at_rate']:,.0f}/s"
    return (
        f"{where}: dispatch lateness p99 {m['at_dispatch_lateness_p99_ms']:.2f} ms "
        f"(mean {m['at_dispatch_lateness_mean_ms']:.2f} / max "
        f"{m['at_dispatch_lateness_max_ms']:.2f} ms; iteration start p99 "
        f"{m['at_start_lateness_p99_ms']:.2f} ms)"
    )


RT, REQ, DLV = "rt/s", "req/s", "deliveries/s"
COMPARISONS: dict[str, list[Comparison]] = {
    "pingpong": [
        Comparison("measure() on every round trip", "bots-measure", "raw-trio", "rate", RT, 0.95),
        Comparison(
            "plain `with bot.measure()`",
            "bots-measure-with",
            "raw-trio",
            "rate",
            RT,
            kind="diagnostic",
        ),
        Comparison(
            "on asyncio: uvloop vs asyncio's own loop",
            "bots-measure@uvloop",
            "bots-measure@asyncio",
            "rate",
            RT,
            kind="diagnostic",
        ),
        Comparison(
            "--backend asyncio --uvloop vs raw trio",
            "bots-measure@uvloop",
            "raw-trio",
            "rate",
            RT,
            kind="diagnostic",
        ),
        Comparison(
            "engine alone (no measure)", "bots-plain", "raw-trio", "rate", RT, kind="diagnostic"
        ),
        Comparison(
            "bot.iterations()", "bots-iterations", "raw-trio", "rate", RT, kind="diagnostic"
        ),
        Comparison(
            "measure() vs Locust User (moonshot)",
            "bots-measure",
            "locust-user",
            "rate",
            RT,
            1.1,
            kind="beside",
        ),
    ],
    "http": [
        Comparison("protocols.http vs wrk -t1", "trio_bots", "wrk-t1", "rate", REQ, 0.6),
        Comparison(
            "protocols.http vs Locust FastHttpUser",
            "trio_bots",
            "locust-fasthttp",
            "rate",
            REQ,
            5.0,
            kind="beside",
        ),
    ],
    "fanout": [
        Comparison("groups of 10 vs send_nowait", "bots-group", "raw-nowait", "rate", DLV, 0.8),
    ],
    "idle": [
        Comparison(
            "KiB/bot (RSS)",
            "bots",
            "raw-trio",
            "rss_per_bot_kib",
            "KiB",
            1.15,
            lower_is_better=True,
        ),
        Comparison("connect all", "bots", "raw-trio", "connect_s", "s", 1.2, lower_is_better=True),
        Comparison("cancel all", "bots", "raw-trio", "close_s", "s", 1.2, lower_is_better=True),
    ],
    "arrivals": [
        Comparison(
            "highest stable rate (no drops, p99 lateness < 1 ms)",
            "trio_bots",
            None,
            "rate",
            "arrivals/s",
            kind="diagnostic",
            note=_arrival_note,
        ),
        Comparison(
            "highest rate held (no drops, 99% ran, any lateness)",
            "trio_bots",
            None,
            "held_rate",
            "arrivals/s",
            kind="diagnostic",
        ),
    ],
}


# -- rounds, verdicts, the table ---------------------------------------------------------


def alternate(
    workload: str, sides: Sides, rounds: int
) -> tuple[dict[str, list[Result]], dict[str, str]]:
    """Every side once per round (reversed on odd rounds); a side that fails is dropped.

    Unlike _common.alternate, a failing side does not end the workload: its error is
    kept, and the other sides go on.
    """
    names = list(sides)
    results: dict[str, list[Result]] = {name: [] for name in names}
    errors: dict[str, str] = {}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            if name in errors:
                continue
            try:
                result = sides[name]()
            except Exception as exc:  # recorded and reported: the run exits 2
                errors[name] = f"{type(exc).__name__}: {exc}"
                print(f"  {workload} round {round_ + 1}/{rounds} {name}: FAILED {exc}", flush=True)
                continue
            results[name].append(result)
            shown = ", ".join(f"{k}={v:.4g}" for k, v in result.items() if not k.startswith("at_"))
            print(f"  {workload} round {round_ + 1}/{rounds} {name:<16} {shown}", flush=True)
    return results, errors


def compare(
    comparison: Comparison,
    results: dict[str, list[Result]],
    skipped: dict[str, str],
    errors: dict[str, str],
) -> dict[str, Any]:
    """The row of one comparison: medians, ratios and the verdict."""
    row: dict[str, Any] = {
        name: getattr(comparison, name)
        for name in ("label", "side", "anchor", "key", "unit", "target", "kind", "lower_is_better")
    }
    row.update(verdict="", note="")
    needed = [comparison.side] + ([comparison.anchor] if comparison.anchor else [])
    for name in needed:
        if name in errors:
            row.update(verdict="FAILED", note=errors[name])
            return row
        if name in skipped or not results.get(name):
            row.update(verdict="SKIPPED", note=skipped.get(name, "did not run"))
            return row
    med = medians({name: results[name] for name in needed})
    row["value"] = med[comparison.side][comparison.key]
    if comparison.note is not None:
        row["note"] = comparison.note(med[comparison.side])
    if comparison.anchor is None:
        row["verdict"] = "report"
        return row
    anchor = results[comparison.anchor]
    row["anchor_value"] = med[comparison.anchor][comparison.key]
    row["ratio"] = _ratio(row["value"], row["anchor_value"])
    ours = results[comparison.side]
    if len(ours) == len(anchor):  # paired by round: the two runs were next to each other
        row["paired_ratio"] = median(
            [
                _ratio(a[comparison.key], b[comparison.key])
                for a, b in zip(ours, anchor, strict=True)
            ]
        )
    if comparison.target is not None:
        ratio, target = row["ratio"], comparison.target
        met = ratio <= target if comparison.lower_is_better else ratio >= target
        row["verdict"] = "OK" if met else "MISSED"
    return row


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("s", "KiB"):
        return f"{value:.3g} {unit}"
    return f"{value:,.0f} {unit}"


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ("workload", "comparison", "trio_bots", "anchor", "ratio", "paired", "target", "")
    lines = [header]
    for row in rows:
        target = row["target"]
        if target is None:
            shown_target = "(diagnostic)" if row["anchor"] else "(report)"
        else:
            op = "<=" if row["lower_is_better"] else ">="
            shown_target = f"{op} {target:g}" + (" beside" if row["kind"] == "beside" else "")
        anchor = "-"
        if row["anchor"]:
            anchor = f"{row['anchor']} {_figure(row.get('anchor_value'), row['unit'])}"
        verdict = row["verdict"] + (f": {row['note']}" if row["note"] else "")
        lines.append(
            (
                row["workload"],
                row["label"],
                f"{row['side']} {_figure(row.get('value'), row['unit'])}",
                anchor,
                f"{row['ratio']:.3f}" if "ratio" in row else "",
                f"{row['paired_ratio']:.3f}" if "paired_ratio" in row else "",
                shown_target,
                verdict[:160],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    print()
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        print("  ".join([*cells, line[-1]]).rstrip())


# -- main ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    mode = "smoke" if args.smoke else "full"
    rounds = args.rounds if args.rounds is not None else (1 if args.smoke else 3)
    pinning = Pinning.detect()
    locust: str | None = None
    locust_skip = ""
    wanted = args.only or list(WORKLOADS)
    if {"pingpong", "http"} & set(wanted):
        try:
            locust = ensure_locust(not args.no_locust)
        except Skip as exc:
            locust_skip = str(exc)
            print(f"Locust rows SKIPPED: {locust_skip}", flush=True)
    ctx = Context(mode, args.seconds or SIZES[mode]["seconds"], pinning, locust, locust_skip)
    env = environment()
    print(" ".join(f"{k}={v}" for k, v in env.items()))
    print(f"{mode} run, {rounds} round(s), {ctx.seconds:g} s per run; {pinning.note}", flush=True)
    rows: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "mode": mode,
        "rounds": rounds,
        "seconds": ctx.seconds,
        "pinning": pinning.note,
        "environment": env,
        "workloads": {},
    }
    crashed = False
    for workload in wanted:
        print(f"\n### {workload}", flush=True)
        skipped: dict[str, str] = {}
        errors: dict[str, str] = {}
        results: dict[str, list[Result]] = {}
        started = time.monotonic()
        try:
            with SETUPS[workload](ctx) as sides:
                for comparison in COMPARISONS[workload]:
                    for name in (comparison.side, comparison.anchor):
                        if name and name not in sides:
                            skipped[name] = _why_missing(name, ctx)
                n = min(rounds, MAX_ROUNDS.get(workload, rounds))
                results, errors = alternate(workload, sides, n)
        except Skip as exc:
            skipped = {c.side: str(exc) for c in COMPARISONS[workload]}
            print(f"  {workload} SKIPPED: {exc}", flush=True)
        except Exception as exc:  # the workload's setup failed: reported, exit 2
            errors = {c.side: f"{type(exc).__name__}: {exc}" for c in COMPARISONS[workload]}
            print(f"  {workload} FAILED: {exc}", flush=True)
        crashed = crashed or bool(errors)
        for comparison in COMPARISONS[workload]:
            rows.append({"workload": workload, **compare(comparison, results, skipped, errors)})
        report["workloads"][workload] = {
            "runs": results,
            "medians": medians(results),
            "skipped": skipped,
            "errors": errors,
            "seconds": time.monotonic() - started,
        }
    print_table(rows)
    report["rows"] = rows
    missed = [row for row in rows if row["kind"] == "target" and row["verdict"] == "MISSED"]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    print(f"\nwrote {args.json}")
    if crashed:
        print("a side or a workload FAILED: exit 2", file=sys.stderr)
        return 2
    if missed and not args.smoke:
        print(f"{len(missed)} target(s) MISSED: exit 1", file=sys.stderr)
        return 1
    return 0


def _why_missing(name: str, ctx: Context) -> str:
    if name.startswith("locust"):
        return ctx.locust_skip
    if name.startswith("wrk"):
        return f"{WRK} is not installed (apt-get install wrk)"
    return "not run"


def worker_main(name: str, spec: str) -> None:
    """Child mode: run one side and print its figures as one JSON line."""
    from _workers import WORKERS

    print(json.dumps(WORKERS[name](**json.loads(spec))), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="about a second per side, small sizes, 1 round; ignore targets",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=WORKLOADS,
        metavar="WORKLOAD",
        help=f"run only these workloads ({', '.join(WORKLOADS)})",
    )
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3; smoke 1)")
    parser.add_argument(
        "--seconds", type=float, help="seconds per ping-pong and HTTP run (default 5; smoke 1)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"where to write the figures (default {DEFAULT_JSON.relative_to(REPO)})",
    )
    parser.add_argument("--no-locust", action="store_true", help="skip the Locust rows")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker, args.spec)
        return
    if args.rounds is not None and not 1 <= args.rounds <= 50:
        parser.error(f"--rounds takes 1 to 50, got {args.rounds}")
    if args.seconds is not None and not 0.2 <= args.seconds <= 600:
        parser.error(f"--seconds takes 0.2 to 600, got {args.seconds}")
    # SIGTERM unwinds like Ctrl-C, so that every target and child is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(run(args))


if __name__ == "__main__":
    main()
