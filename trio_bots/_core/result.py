"""What a run gives back: `SwarmResult`, `BotFailure` and the live `SwarmStatistics`.

Example:
    >>> import functools, trio, trio_bots
    >>> async def worker(bot):
    ...     raise ValueError("boom")
    >>> result = trio.run(functools.partial(trio_bots.swarm, worker, 3, max_failures=None))
    >>> [f.bot_id for f in sorted(result.bot_failures, key=lambda f: f.bot_id)]
    [0, 1, 2]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..metrics import (
    FailureGroup,
    RunFigures,
    StatsMap,
    Threshold,
    ThresholdResult,
    ThresholdState,
    TimelineBucket,
    assert_thresholds,
    check_thresholds,
)

#: The report schema: fields are added, never renamed or removed.
SCHEMA = "trio-bots/1"


@dataclass(frozen=True)
class BotFailure:
    """An exception that escaped a worker and ended its bot.

    Example:
        >>> BotFailure(3, ValueError("boom"))
        BotFailure(bot_id=3, exception=ValueError('boom'))
    """

    bot_id: int
    exception: BaseException


@dataclass(frozen=True)
class SwarmStatistics:
    """A frozen snapshot of a running swarm, from `Swarm.statistics`.

    Times are seconds on the swarm clock; `metrics` is a plain-data metrics snapshot (see
    `trio_bots.metrics`). In the open model, `arrivals` counts the arrivals dispatched so
    far, and `arrival_lateness_mean` / `_max` / `_p99` say how late (in seconds) the
    scheduler dispatched them: a measure of the load tool's own health (in one process; 0 in
    a run over several). `thresholds` holds each threshold's live `ThresholdState` (pending,
    passed or failed) as of the last second. In a run over several processes or Ray actors,
    `shards` holds one dict per shard as of its last second (``index``, ``pid``,
    ``first_bot``, ``last_bot``, ``state``: ``"starting"``, ``"running"``, ``"done"``,
    ``"lost"`` or ``"error"``, ``bots_running``, ``bots_started``, ``requests``,
    ``failure_count``, ``cpu_seconds`` and ``lost``: None or why it was lost); it is empty
    otherwise. Reading it changes nothing.

    Example:
        >>> import trio, trio_bots
        >>> async def idle(bot):
        ...     await bot.stopping.wait()
        >>> async def main():
        ...     async with trio_bots.open_swarm(idle, 4, duration=1) as swarm:
        ...         await trio.sleep(0.5)
        ...         stats = swarm.statistics()
        ...     return stats.bots_running, stats.elapsed, stats.stopping
        >>> trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        (4, 0.5, False)
    """

    elapsed: float
    duration: float | None
    bots_running: int
    bots_target: int
    bots_started: int
    bots_finished: int
    dropped_messages: int
    dropped_arrivals: int
    stopping: bool
    metrics: dict[str, Any] = field(repr=False)
    arrivals: int = 0
    arrival_lateness_mean: float = 0.0
    arrival_lateness_max: float = 0.0
    arrival_lateness_p99: float = 0.0
    thresholds: tuple[ThresholdState, ...] = ()
    shards: tuple[Mapping[str, Any], ...] = ()


@dataclass
class SwarmResult:
    """What a swarm measured and how its bots ended.

    Attributes:
        stats: a `StatsMap`: ``stats[name]`` and ``stats.total``.
        failures: the request failures, grouped by (type, message).
        timeline: one bucket per second.
        bot_failures: every `BotFailure`.
        bots_started, bots_finished: bot counts.
        dropped_messages: messages dropped under ``on_full="drop"``.
        dropped_arrivals: open-model arrivals dropped (queue full, or queued at the stop).
        duration: seconds from the start to the end of the run.
        interrupted: True only when SIGINT/SIGTERM or `Swarm.stop` ended the run.
        aborted: True when the failure policy ended the run.
        signal: the signal number that interrupted the run, or None.
        timed_out: True when the seed's ``timeout=`` cancelled the bots still running.
        bots_cancelled: how many bots that timeout cancelled.
        warnings: what the engine warned about during the run (also logged).
        cross_shard_skipped: ``send_bots`` ids skipped because they ran in another shard.
        shards: in a run over several processes or Ray actors, one dict per shard
            (``index``, ``pid``, ``first_bot``, ``last_bot``, ``count``, ``requests``,
            ``failure_count``, ``cancelled``: its ``measure()`` blocks cut off by a
            cancellation, ``cpu_seconds``, ``lost``: None or why it was lost); empty otherwise.
        split_groups: groups that spanned shards, as ``{"group": g, "shards": [...]}``.
        thresholds: the final `ThresholdResult` of each ``thresholds=`` expression.
        aborted_by: the threshold (as written) whose failure stopped the run
            (``abort_on_fail=True``), or None.
        aborted_at: when it did, in seconds from the start, or None.

    Example:
        >>> import trio, trio_bots
        >>> async def worker(bot):
        ...     async with bot.measure("noop"):
        ...         pass
        >>> result = trio.run(trio_bots.swarm, worker, 10)
        >>> result.stats["noop"].count, result.stats.total.failure_count
        (10, 0)
    """

    stats: StatsMap
    failures: list[FailureGroup]
    timeline: list[TimelineBucket]
    bot_failures: list[BotFailure]
    bots_started: int
    bots_finished: int
    dropped_messages: int
    dropped_arrivals: int
    duration: float
    interrupted: bool
    aborted: bool
    size: int
    started_wall: float
    options: Mapping[str, Any] = field(repr=False)
    metrics: dict[str, Any] = field(repr=False)
    signal: int | None = None
    timed_out: bool = False
    bots_cancelled: int = 0
    warnings: list[str] = field(default_factory=list)
    cross_shard_skipped: int = 0
    shards: list[dict[str, Any]] = field(default_factory=list)
    split_groups: list[dict[str, Any]] = field(default_factory=list)
    thresholds: list[ThresholdResult] = field(default_factory=list)
    aborted_by: str | None = None
    aborted_at: float | None = None

    def _complete_seconds(self) -> list[dict[str, Any]]:
        """The timeline without its last bucket when that second is partial (the run
        ended within it): what a windowed threshold reads at the end."""
        timeline: list[dict[str, Any]] = self.metrics.get("timeline", [])
        complete = [b for b in timeline if b["t"] + b.get("span", 1) <= self.duration + 1e-9]
        return complete or timeline

    def _figures(self) -> RunFigures:
        return RunFigures(
            counters=self.metrics.get("counters", {}),
            gauges=self.metrics.get("gauges", {}),
            dropped_arrivals=self.dropped_arrivals,
            dropped_messages=self.dropped_messages,
        )

    def check(self, *thresholds: str | Threshold) -> list[ThresholdResult]:
        """Evaluate threshold expressions such as ``"p99(login) < 50ms"``.

        Returns a `ThresholdResult` per expression. A windowed threshold
        (``p95[10s](x)``) reads the last complete seconds of the timeline; ``counter``,
        ``gauge`` and the dropped counts read the run's own figures.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     async with bot.measure("login"):
            ...         await trio.sleep(0)
            >>> result = trio.run(trio_bots.swarm, worker, 5)
            >>> [r.passed for r in result.check("failure_rate < 1%", "count(login) >= 5")]
            [True, True]
        """
        return check_thresholds(
            self.stats, thresholds, timeline=self._complete_seconds(), figures=self._figures()
        )

    def assert_thresholds(self, *thresholds: str | Threshold) -> list[ThresholdResult]:
        """Like `check`, but raise `ThresholdError` listing each failed threshold.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     async with bot.measure("login"):
            ...         await trio.sleep(0)
            >>> result = trio.run(trio_bots.swarm, worker, 5)
            >>> _ = result.assert_thresholds("p99(login) < 1s", "failure_rate == 0")
        """
        return assert_thresholds(
            self.stats, thresholds, timeline=self._complete_seconds(), figures=self._figures()
        )

    def to_dict(self, thresholds: list[ThresholdResult] | None = None) -> dict[str, Any]:
        """The run as plain data, schema ``trio-bots/1``: what the reporters read.

        Its ``thresholds`` are `thresholds`, or else the run's own (`SwarmResult.thresholds`).

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     await bot.step()
            >>> result = trio.run(trio_bots.swarm, worker, 2)
            >>> result.to_dict()["schema"]
            'trio-bots/1'
        """
        return {
            "schema": SCHEMA,
            "time_unit": "s",
            "run": {
                "started_wall": self.started_wall,
                "duration": self.duration,
                "size": self.size,
                "bots_started": self.bots_started,
                "bots_finished": self.bots_finished,
                "interrupted": self.interrupted,
                "aborted": self.aborted,
                "signal": self.signal,
                "aborted_by": self.aborted_by,
                "aborted_at": self.aborted_at,
                "timed_out": self.timed_out,
                "bots_cancelled": self.bots_cancelled,
                "warnings": list(self.warnings),
                "dropped_messages": self.dropped_messages,
                "dropped_arrivals": self.dropped_arrivals,
                "cross_shard_skipped": self.cross_shard_skipped,
                "split_groups": [
                    {"group": plain(g["group"]), "shards": list(g["shards"])}
                    for g in self.split_groups
                ],
                "options": {k: plain(v) for k, v in self.options.items()},
                "bot_failures": [
                    {
                        "bot_id": f.bot_id,
                        "type": type(f.exception).__name__,
                        "message": str(f.exception),
                    }
                    for f in self.bot_failures
                ],
            },
            "metrics": self.metrics,
            "shards": [dict(shard) for shard in self.shards],
            "thresholds": [
                {
                    "expression": t.expression,
                    "passed": t.passed,
                    "measured": t.measured,
                    "required": t.required,
                    "unit": t.unit,
                }
                for t in (self.thresholds if thresholds is None else thresholds)
            ],
        }


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def plain(value: Any) -> Any:
    """An option's value as JSON-ready plain data: repr for anything else, without
    memory addresses, so that a replayed run prints the same report.

    Example:
        >>> plain((1, "a")), plain(plain)
        ([1, 'a'], '<function plain>')
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return _ADDRESS.sub("", repr(value))
