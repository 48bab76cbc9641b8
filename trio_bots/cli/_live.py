"""The CLI's view of a running swarm: a rich live panel, or plain periodic lines.

One task in the swarm's own event loop reads `Swarm.statistics` about
twice a second and redraws; nothing runs on the bots' hot path and no
thread is started. On a terminal it is a rich ``Live(auto_refresh=False)``
panel: a progress bar of the elapsed time against the duration, the bots
running against the target, and per-name RPS, failures, p50 and p99 over
the last second (the last complete timeline bucket). When stdout is not a
terminal it prints one plain line a second instead.

Example:
    >>> from trio_bots._core.swarm import SwarmStatistics
    >>> stats = SwarmStatistics(elapsed=2.0, duration=10.0, bots_running=5, bots_target=5,
    ...     bots_started=5, bots_finished=0, dropped_messages=0, dropped_arrivals=0,
    ...     stopping=False, metrics={"names": {}, "timeline": []})
    >>> plain_line(stats)
    '[2.0s/10s] bots 5/5  rps 0  failures 0 (total 0)  p50 -  p99 -'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import anyio
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..metrics import Stats, format_value, stats_from_snapshot
from ..report import format_duration

if TYPE_CHECKING:
    from .._core.result import SwarmStatistics
    from .._core.runtime import Tick
    from .._core.swarm import Swarm

#: Seconds between redraws of the live panel, and between plain lines.
LIVE_EVERY = 0.5
PLAIN_EVERY = 1.0

ViewMode = Literal["live", "plain", "off"]


class _Interval:
    """The figures of the last complete second, read from a snapshot's timeline."""

    def __init__(self, stats: SwarmStatistics) -> None:
        timeline: list[Mapping[str, Any]] = stats.metrics.get("timeline", [])
        # The bucket of the current second is still filling: take the one before.
        done = [b for b in timeline if b["t"] <= stats.elapsed - 1.0]
        if done:
            self.bucket: Mapping[str, Any] = done[-1]
            self.width = 1.0
        else:
            # No second is complete yet: the figures so far, from the cumulative stats.
            self.bucket = _so_far(stats.metrics) if stats.metrics.get("names") else {}
            self.width = max(stats.elapsed, 1e-3)
        names: Mapping[str, Mapping[str, Any]] = stats.metrics.get("names", {})
        self.kinds = {name: entry.get("kind", "request") for name, entry in names.items()}
        self.total_failures = sum(
            entry.get("failure_count", 0)
            for entry in names.values()
            if entry.get("kind", "request") == "request"
        )
        self.total_requests = self.total_failures + sum(
            entry.get("count", 0)
            for entry in names.values()
            if entry.get("kind", "request") == "request"
        )

    def rps(self, entry: Mapping[str, Any]) -> float:
        return float(entry.get("count", 0) + entry.get("failures", 0)) / self.width

    def names(self) -> list[tuple[str, Mapping[str, Any]]]:
        entries: Mapping[str, Mapping[str, Any]] = self.bucket.get("names", {})
        # Request names first, then the fan-out ones, each alphabetically.
        return sorted(
            entries.items(), key=lambda item: (self.kinds.get(item[0]) != "request", item[0])
        )


def _so_far(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A timeline-bucket-shaped summary of everything recorded so far."""
    stats = stats_from_snapshot(metrics)

    def entry(s: Stats) -> dict[str, Any]:
        return {
            "count": s.count,
            "failures": s.failure_count,
            "p50": s.percentile(50),
            "p99": s.percentile(99),
        }

    total = entry(stats.total)
    return {**total, "names": {name: entry(s) for name, s in stats.items()}}


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 60 else f"{int(value) // 60}m{int(value) % 60:02d}s"


def _planned(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}s" if value < 60 else _seconds(value)


def _percentile(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key, math.nan)
    return format_duration(value if isinstance(value, int | float) else math.nan)


def plain_line(stats: SwarmStatistics, planned: float | None = None) -> str:
    """One plain status line, for output that is not a terminal.

    Args:
        stats: a snapshot from `Swarm.statistics`.
        planned: the run's planned length in seconds, when the swarm's
            ``duration`` is None but stages give one.

    Example:
        >>> from trio_bots._core.swarm import SwarmStatistics
        >>> stats = SwarmStatistics(elapsed=75.0, duration=None, bots_running=3,
        ...     bots_target=4, bots_started=3, bots_finished=0, dropped_messages=0,
        ...     dropped_arrivals=2, stopping=True, metrics={"names": {}, "timeline": []})
        >>> line = plain_line(stats, planned=120.0)
        >>> line.split("  ")[:3]
        ['[1m15s/2m00s] bots 3/4', 'rps 0', 'failures 0 (total 0)']
        >>> line.split("  ")[-2:]
        ['dropped arrivals 2', 'stopping']
    """
    interval = _Interval(stats)
    bucket = interval.bucket
    total = stats.duration if stats.duration is not None else planned
    parts = [
        f"[{_seconds(stats.elapsed)}/{_planned(total)}]",
        f"bots {stats.bots_running}/{stats.bots_target}",
        f" rps {interval.rps(bucket):,.0f}",
        f" failures {bucket.get('failures', 0)} (total {interval.total_failures})",
        f" p50 {_percentile(bucket, 'p50')}",
        f" p99 {_percentile(bucket, 'p99')}",
    ]
    if stats.dropped_arrivals:
        parts.append(f" dropped arrivals {stats.dropped_arrivals}")
    if stats.thresholds:
        failed = [t.expression for t in stats.thresholds if t.status == "failed"]
        parts.append(f" thresholds {len(failed)} failed" + (f" ({failed[0]})" if failed else ""))
    if stats.stopping:
        parts.append(" stopping")
    return " ".join(parts)


def render_live(
    stats: SwarmStatistics, planned: float | None = None, *, open_model: bool = False
) -> RenderableType:
    """The live panel for one snapshot: progress bar, bots, per-name table.

    Args:
        stats: a snapshot from `Swarm.statistics`.
        planned: the run's planned length, when ``duration`` is None.
        open_model: show the dropped arrivals even when there are none.

    Example:
        >>> import io
        >>> from trio_bots._core.swarm import SwarmStatistics
        >>> stats = SwarmStatistics(elapsed=2.0, duration=10.0, bots_running=5,
        ...     bots_target=5, bots_started=5, bots_finished=0, dropped_messages=0,
        ...     dropped_arrivals=0, stopping=False, metrics={"names": {}, "timeline": []})
        >>> out = io.StringIO()
        >>> Console(file=out, width=100).print(render_live(stats))
        >>> "bots 5/5" in out.getvalue() and "p99" in out.getvalue()
        True
    """
    interval = _Interval(stats)
    total = stats.duration if stats.duration is not None else planned
    bar = ProgressBar(
        total=total if total else None,
        completed=min(stats.elapsed, total) if total else 0,
        width=40,
    )
    header = Table.grid(padding=(0, 2))
    header.add_row(
        bar,
        Text(f"{_seconds(stats.elapsed)} / {_planned(total)}"),
        Text(f"bots {stats.bots_running}/{stats.bots_target}", style="bold"),
        Text("stopping…", style="yellow") if stats.stopping else Text(""),
    )
    table = Table(title="last second", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Name", overflow="fold")
    for heading in ("RPS", "Failures", "p50", "p99"):
        table.add_column(heading, justify="right")
    for name, entry in interval.names():
        failures = entry.get("failures", 0)
        table.add_row(
            Text(name),
            f"{interval.rps(entry):,.0f}",
            Text(str(failures), style="red" if failures else ""),
            _percentile(entry, "p50"),
            _percentile(entry, "p99"),
            style=None if interval.kinds.get(name, "request") == "request" else "dim",
        )
    bucket = interval.bucket
    table.add_row(
        Text("Total"),
        f"{interval.rps(bucket):,.0f}",
        str(bucket.get("failures", 0)),
        _percentile(bucket, "p50"),
        _percentile(bucket, "p99"),
        style="bold",
    )
    footer = (
        f"requests {interval.total_requests:,}  failures {interval.total_failures:,}"
        f"  bots started {stats.bots_started:,}  finished {stats.bots_finished:,}"
    )
    if stats.dropped_arrivals or open_model:
        footer += f"  dropped arrivals {stats.dropped_arrivals:,}"
    if stats.dropped_messages:
        footer += f"  dropped messages {stats.dropped_messages:,}"
    return Group(header, table, *_thresholds(stats), Text(footer, style="dim"))


#: How the live view marks each threshold state.
_MARKS = {"pending": ("…", "dim"), "passed": ("✓", "green"), "failed": ("✗", "bold red")}


def _thresholds(stats: SwarmStatistics) -> list[Text]:
    """One line per threshold: its state, the expression, what it measures now."""
    lines = []
    for state in stats.thresholds:
        mark, style = _MARKS[state.status]
        measured = format_value(state.result.measured, state.result.unit)
        lines.append(Text(f"{mark} {state.expression}  {measured}", style=style))
    return lines


class _Feed:
    """The live view's figures, kept by the swarm's per-second ticks: the last second's
    bucket, and per-name totals summed from the buckets, so that a redraw re-reads no
    histogram. Until the first second is complete, the full statistics stand in."""

    def __init__(self, swarm: Swarm) -> None:
        self._swarm = swarm
        self._last: Mapping[str, Any] | None = None
        self._totals: dict[str, dict[str, Any]] = {}
        self.close = swarm.on_tick(self._tick)

    def _tick(self, tick: Tick) -> None:
        self._last = tick.bucket
        for name, entry in tick.delta.get("names", {}).items():
            total = self._totals.setdefault(
                name, {"kind": entry.get("kind", "request"), "count": 0, "failure_count": 0}
            )
            total["count"] += entry["count"]
            total["failure_count"] += entry["failures"]

    def statistics(self) -> SwarmStatistics:
        if self._last is None:
            return self._swarm.statistics()
        metrics = {"names": self._totals, "timeline": [self._last]}
        return dataclasses.replace(self._swarm.statistics(metrics=False), metrics=metrics)


async def watch_swarm(
    swarm: Swarm, console: Console, mode: ViewMode, planned: float | None = None
) -> None:
    """Show `swarm` on `console` until cancelled (the CLI cancels it at the end).

    Args:
        swarm: the running swarm.
        console: where to draw.
        mode: ``"live"`` (a rich live panel), ``"plain"`` (one line a
            second) or ``"off"`` (nothing; returns at once).
        planned: the run's planned length, for the progress bar, when the
            swarm has no ``duration``.

    Example:
        >>> import io, trio, trio.testing, trio_bots
        >>> async def worker(bot):
        ...     await bot.stopping.wait()
        >>> async def main(console):
        ...     async with trio.open_nursery() as nursery:
        ...         async with trio_bots.open_swarm(worker, 2, duration=2.5) as swarm:
        ...             nursery.start_soon(watch_swarm, swarm, console, "plain")
        ...         nursery.cancel_scope.cancel()
        >>> out = io.StringIO()
        >>> trio.run(main, Console(file=out, width=100),
        ...          clock=trio.testing.MockClock(autojump_threshold=0))
        >>> print(out.getvalue().splitlines()[-1][:23])
        [2.0s/2.5s] bots 2/2  r
    """
    if mode == "off":
        return
    open_model = swarm.options.get("rate") is not None
    feed = _Feed(swarm)
    try:
        if mode == "plain":
            while True:
                await anyio.sleep(PLAIN_EVERY)
                line = plain_line(feed.statistics(), planned)
                console.print(line, highlight=False, soft_wrap=True)
        with Live(
            render_live(feed.statistics(), planned, open_model=open_model),
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=True,
            redirect_stderr=True,
        ) as live:
            while True:
                await anyio.sleep(LIVE_EVERY)
                live.update(
                    render_live(feed.statistics(), planned, open_model=open_model), refresh=True
                )
    finally:
        feed.close()
