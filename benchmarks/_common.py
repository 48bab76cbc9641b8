"""Shared helpers for the benchmark scripts: alternating runs, medians, the echo server.

Benchmarks are not tests: they print figures and never assert on speed.

Example:
    >>> from _common import median
    >>> median([3.0, 1.0, 2.0])
    2.0
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ECHO_BINARY = HERE / "echo_server"
BUILD_SCRIPT = HERE / "build_echo.sh"

Result = dict[str, float]


def median(values: Sequence[float]) -> float:
    """The median of `values` (NaN when empty)."""
    return statistics.median(values) if values else float("nan")


def base_parser(description: str, *, runs: int = 3) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--runs", type=int, default=runs, help=f"alternating runs per side (default {runs}, >= 3)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--only", metavar="SIDE", help="run just this side once, e.g. under py-spy (no ratios)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="run one side (--only, or trio_bots') under cProfile"
    )
    return parser


def run_single(
    args: argparse.Namespace, sides: Mapping[str, Callable[[], Result]], *, default: str
) -> bool:
    """Handle ``--only`` and ``--profile``: run one side once; False when neither was given."""
    if args.only is None and not args.profile:
        return False
    name = args.only or default
    if name not in sides:
        sys.exit(f"--only takes one of {', '.join(sides)}, got {name!r}")
    if args.profile:
        profile_call(sides[name])
    else:
        result = sides[name]()
        print(name, ", ".join(f"{k}={v:.4g}" for k, v in result.items()))
    return True


def check_runs(runs: int) -> None:
    """Refuse fewer than 3 runs: a median of 1 or 2 hides the noise."""
    if runs < 3:
        sys.exit(f"--runs must be >= 3 so that the median means something, got {runs}")


def alternate(
    sides: Mapping[str, Callable[[], Result]], runs: int, *, quiet: bool = False
) -> dict[str, list[Result]]:
    """Run every side once per round, alternating, `runs` rounds; return each side's results.

    Even rounds go in the given order and odd rounds in reverse (A B, B A, A B...),
    so that neither side always runs first after the other warmed the machine.
    """
    results: dict[str, list[Result]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(runs):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            result = sides[name]()
            results[name].append(result)
            if not quiet:
                shown = ", ".join(f"{k}={v:.4g}" for k, v in result.items())
                print(f"  run {round_ + 1}/{runs} {name:<22} {shown}", flush=True)
    return results


def medians(results: Mapping[str, list[Result]]) -> dict[str, Result]:
    """Per side, the median of each figure over its runs."""
    out: dict[str, Result] = {}
    for name, runs in results.items():
        keys = runs[0].keys() if runs else ()
        out[name] = {key: median([run[key] for run in runs]) for key in keys}
    return out


def print_table(title: str, rows: Sequence[tuple[str, str, str]]) -> None:
    """Print (label, value, note) rows under a title."""
    print(f"\n== {title}")
    width = max(len(label) for label, _, _ in rows)
    vwidth = max(len(value) for _, value, _ in rows)
    for label, value, note in rows:
        print(f"  {label:<{width}}  {value:>{vwidth}}  {note}".rstrip())


def verdict(ratio: float, target: float, *, higher_is_better: bool = True) -> str:
    """'(target >= 0.8: met)' or '... MISSED'."""
    met = ratio >= target if higher_is_better else ratio <= target
    op = ">=" if higher_is_better else "<="
    return f"(target {op} {target:g}: {'met' if met else 'MISSED'})"


def write_json(path: Path | None, data: Mapping[str, Any]) -> None:
    """Write `data` to `path` when one was given."""
    if path is not None:
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"\nwrote {path}")


def environment() -> dict[str, str]:
    """What ran the benchmark: Python, trio, anyio, CPU count, load average at the start."""
    from importlib.metadata import version

    import trio

    return {
        "python": sys.version.split()[0],
        "trio": trio.__version__,
        "anyio": version("anyio"),
        "cpus": str(os.cpu_count()),
        # other work on the machine makes the figures noisy: say how much there was
        "loadavg": "/".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def print_environment() -> None:
    """One line saying what ran the benchmark."""
    print(" ".join(f"{k}={v}" for k, v in environment().items()))


def rss_kib() -> int:
    """This process's resident set size (VmRSS), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS line in /proc/self/status; this needs Linux")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_echo_binary() -> None:
    if ECHO_BINARY.exists():
        return
    print(f"building {ECHO_BINARY} with {BUILD_SCRIPT}", flush=True)
    subprocess.run([str(BUILD_SCRIPT)], check=True)


@contextmanager
def echo_server(*, prefix: Sequence[str] = ()) -> Iterator[int]:
    """Start the C echo server on a free 127.0.0.1 port; yield the port; kill it at the end.

    Builds the binary with build_echo.sh when it is missing. `prefix` goes before
    the command, e.g. ``["taskset", "-c", "1"]`` to pin the server to core 1.
    """
    _ensure_echo_binary()
    port = _free_port()
    proc = subprocess.Popen([*prefix, str(ECHO_BINARY), str(port)])
    try:
        deadline = time.monotonic() + 5.0
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the echo server did not start on 127.0.0.1:{port}; "
                        f"run {BUILD_SCRIPT} and check the port is free"
                    ) from None
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)


#: The ping-pong message size against the echo server, and the message itself.
ECHO_SIZE = 64
ECHO_PAYLOAD = b"p" * ECHO_SIZE


async def echo_round_trip(stream: Any) -> None:
    """One ping-pong against `echo_server`: send the payload, read its echo back."""
    await stream.send_all(ECHO_PAYLOAD)
    got = 0
    while got < ECHO_SIZE:
        data = await stream.receive_some(65536)
        if not data:
            raise RuntimeError("the echo server closed the connection")
        got += len(data)


def profile_call(fn: Callable[[], Any], *, top: int = 25) -> None:
    """Run `fn` once under cProfile; print the top functions overall and in trio_bots.

    cProfile inflates the cost of small functions; use py-spy (see README.md) for
    a sampling view that does not.
    """
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        fn()
    finally:
        profiler.disable()
    stats = pstats.Stats(profiler).strip_dirs().sort_stats("tottime")
    print(f"\n== cProfile: top {top} by own time")
    stats.print_stats(top)
    stats = pstats.Stats(profiler).sort_stats("tottime")
    print(f"== cProfile: top {top} in trio_bots by own time")
    stats.print_stats("trio_bots", top)


#: (perf_counter, process_time) when a task started its measured phase, then when it ended.
Mark = tuple[float, float, float, float]


def now() -> tuple[float, float]:
    """(wall clock, this process's CPU time), for `phase_times`."""
    return time.perf_counter(), time.process_time()


def phase_times(marks: Sequence[Mark]) -> tuple[float, float]:
    """Wall and CPU seconds from the first task's start to the last task's end.

    The CPU figure is this process's CPU time over the phase: it counts only the
    client's own work, so it is less sensitive to other load on the machine.
    """
    wall = max(m[2] for m in marks) - min(m[0] for m in marks)
    cpu = max(m[3] for m in marks) - min(m[1] for m in marks)
    return wall, cpu


def spread(runs: Sequence[Result], key: str) -> str:
    """'min..max' of one figure over the runs, to show the noise next to a median."""
    values = [run[key] for run in runs]
    form = ",.0f" if max(values) >= 100 else ".3g"
    return f"runs {min(values):{form}}..{max(values):{form}}"


def paired_ratio(results: Mapping[str, list[Result]], a: str, b: str, key: str) -> float:
    """The median over rounds of a/b, each round's runs side by side.

    Runs of one round are adjacent in time, so this cancels slow drifts in the
    machine's load that a ratio of the two medians keeps.
    """
    return median([x[key] / y[key] for x, y in zip(results[a], results[b], strict=True)])


def rate_rows(
    results: Mapping[str, list[Result]],
    med: Mapping[str, Result],
    *,
    key: str,
    cpu_key: str,
    unit: str,
) -> list[tuple[str, str, str]]:
    """Table rows for each side's median throughput (with its spread) and per CPU-second."""
    rows = [
        (f"{name} {unit}", f"{m[key]:,.0f}", spread(results[name], key)) for name, m in med.items()
    ]
    rows += [(f"{name} per CPU-s", f"{m[cpu_key]:,.0f}", "") for name, m in med.items()]
    return rows


def ratio_rows(
    results: Mapping[str, list[Result]],
    comparisons: Sequence[tuple[str, str, str, float | None]],
    *,
    key: str,
    cpu_key: str,
) -> list[tuple[str, str, str]]:
    """Table rows for (a, b, note, target) comparisons of a throughput figure.

    Each gives three ratios a/b: of the medians, paired by round, and of the
    CPU figure paired by round (the least sensitive to other load on the
    machine). The target, when given, is checked on each.
    """
    med = medians(results)
    rows = []
    for a, b, note, target in comparisons:
        ratios = (
            med[a][key] / med[b][key],
            paired_ratio(results, a, b, key),
            paired_ratio(results, a, b, cpu_key),
        )
        labels = (f"{a} / {b}", "  paired by round", "  CPU, paired by round")
        for index, (label, ratio) in enumerate(zip(labels, ratios, strict=True)):
            shown = verdict(ratio, target) if target is not None else (note if index == 0 else "")
            if target is not None and index == 0 and note:
                shown = f"{shown} {note}"
            rows.append((label, f"{ratio:.3f}", shown))
    return rows
