"""What follows a run second by second: live thresholds (abort-on-fail) and the HDR log.

A swarm with ``thresholds=`` or ``hdr_log=`` makes one `Monitor` and hands it
each `Tick`; so does the driver of a run over several processes, with the
merged seconds. The monitor judges the thresholds on what the ticks add up
to (`trio_bots.metrics.LiveThresholds`), begins the graceful stop when one
fails with ``abort_on_fail`` (not before ``abort_delay``), writes each
second to the HDR log, and at the end puts the final threshold results and
the abort into the `SwarmResult`. Without either option no monitor is made,
and a run pays nothing for it.

Example:
    >>> import trio, trio_bots
    >>> async def worker(bot):
    ...     while not bot.stopping.is_set():
    ...         async with bot.measure("x"):
    ...             await trio.sleep(0.2 if trio.current_time() < 3 else 0.9)
    >>> result = trio.run(
    ...     lambda: trio_bots.swarm(worker, 2, duration=60, abort_on_fail=True,
    ...                             thresholds=["p99[2s](x) < 500ms"]),
    ...     clock=trio.testing.MockClock(autojump_threshold=0))
    >>> result.aborted_by, result.aborted_at, result.interrupted
    ('p99[2s](x) < 500ms', 4.0, False)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._errors import ConfigError
from ..metrics import (
    HdrLogWriter,
    LiveThresholds,
    RunFigures,
    Threshold,
    ThresholdResult,
    ThresholdState,
)
from .result import SwarmResult, SwarmStatistics
from .runtime import Tick


class Monitor:
    """Follows one run's ticks; see the module docstring.

    Args:
        options: the run's validated options (``thresholds``, ``abort_on_fail``,
            ``abort_delay``, ``hdr_log``).
        size: the run's size (the bots started up front), for the log's header.
        started_wall: the run's start, in seconds since the epoch (the log's StartTime).
        statistics: the run's counters now (``Swarm.statistics(metrics=False)``).
        begin_stop: begins the run's graceful stop (not marked ``interrupted``).

    Raises:
        ConfigError: the HDR log cannot be written.

    Attributes:
        aborted_by: the threshold (as written) whose failure stopped the run, or None.
        aborted_at: when, in seconds from the start, or None.
    """

    def __init__(
        self,
        options: Mapping[str, Any],
        *,
        size: int,
        started_wall: float,
        statistics: Callable[[], SwarmStatistics],
        begin_stop: Callable[[], None],
    ) -> None:
        thresholds = options["thresholds"] or ()
        self._live = LiveThresholds(thresholds) if thresholds else None
        self._abort_on_fail: bool = options["abort_on_fail"]
        self._abort_delay: float = options["abort_delay"]
        self._statistics = statistics
        self._begin_stop = begin_stop
        self.aborted_by: str | None = None
        self.aborted_at: float | None = None
        self._abort: tuple[int, ThresholdResult] | None = None
        path = options["hdr_log"]
        self._log = None
        if path is not None:
            self._log = HdrLogWriter(path, start_wall=started_wall, meta={"size": size})

    @staticmethod
    def wanted(options: Mapping[str, Any]) -> bool:
        """Whether a run with these options needs a monitor."""
        return bool(options["thresholds"]) or options["hdr_log"] is not None

    def states(self) -> tuple[ThresholdState, ...]:
        """Each threshold's live state (none without thresholds)."""
        return () if self._live is None else tuple(self._live.states)

    def tick(self, tick: Tick) -> None:
        """Follow one second of the run (a `Runtime.on_tick` hook)."""
        stats = self._statistics()
        added = tick.delta
        if self._log is not None:
            self._log.write(
                added,
                bots=tick.bots_running,
                elapsed=stats.elapsed,
                raw=tick.raw,
                extra={
                    "active_seconds": round(tick.active_seconds, 6),
                    "counters": dict(tick.counters),
                    "gauges": dict(tick.gauges),
                    "bots_started": stats.bots_started,
                    "bots_finished": stats.bots_finished,
                    "dropped_arrivals": stats.dropped_arrivals,
                    "dropped_messages": stats.dropped_messages,
                },
            )
        live = self._live
        if live is None:
            return
        figures = RunFigures(
            counters=tick.counters,
            gauges=tick.gauges,
            dropped_arrivals=stats.dropped_arrivals,
            dropped_messages=stats.dropped_messages,
        )
        live.update(added, active_seconds=tick.active_seconds, figures=figures)
        if not self._abort_on_fail or self._abort is not None or tick.final:
            return
        failed = live.failed()
        if failed is None or stats.elapsed < self._abort_delay:
            return
        index = live.states.index(failed)
        self._abort = (index, failed.result)
        self.aborted_by = failed.expression
        self.aborted_at = stats.elapsed
        self._begin_stop()

    def finish(self, result: SwarmResult) -> None:
        """Put the final threshold results and the abort into `result`; close the log."""
        if self._log is not None:
            self._log.close()
        live = self._live
        if live is None:
            return
        live.close()
        final = [judge_at_end(result, t) for t in live.thresholds]
        if self._abort is not None:
            index, failing = self._abort
            if final[index].passed:
                # it recovered during the stop (a window): the run still ended on it
                final[index] = ThresholdResult(
                    failing.expression,
                    False,
                    failing.measured,
                    failing.required,
                    f"failed at {self.aborted_at:.1f} s, which stopped the run",
                    failing.unit,
                )
        result.thresholds = final
        result.aborted_by = self.aborted_by
        result.aborted_at = self.aborted_at


def judge_at_end(result: SwarmResult, t: Threshold) -> ThresholdResult:
    """One threshold's final result; one that cannot be judged (a name never recorded)
    fails, with the reason, rather than lose the run's result."""
    try:
        [judged] = result.check(t)
    except ConfigError as exc:
        return ThresholdResult(str(t), False, None, t.value, str(exc), t.base_unit)
    return judged
