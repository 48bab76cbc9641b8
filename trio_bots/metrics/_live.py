"""Thresholds evaluated live, once per second of a run, from the per-second buckets.

`LiveThresholds` follows a run through its timeline buckets (what each
`trio_bots.Tick` carries), so it needs no snapshot of the recorder and works
alike in one process and in the driver of a run over several. Each threshold
keeps what it reads and nothing more: one running histogram of its name (or
of the request total), and for a windowed threshold the last W seconds'
entries, whose histograms leave the running one as the window moves on.

The live rules (docs/metrics.md):

- a threshold with nothing to measure yet (no samples, a gauge never set)
  is *pending*, not failed;
- a count that can only grow (``count``, ``counter``, ``dropped_*``) compared
  with ``>``, ``>=`` or ``==`` is judged at the end only: live it is passed or
  pending, never failed; so is a windowed ``count`` until its window is full;
- everything else is passed or failed at each second; a windowed threshold
  can recover, a cumulative one seldom does.

Example:
    >>> from trio_bots.metrics import Recorder
    >>> rec = Recorder(0.0)
    >>> live = LiveThresholds(["p99(login) < 50ms", "count(login) >= 3"])
    >>> rec.record("login", 20_000)
    >>> [s.status for s in live.update(rec.tick(0, bots_running=1), active_seconds=1.0)]
    ['passed', 'pending']
    >>> rec.record("login", 90_000)
    >>> [s.status for s in live.update(rec.tick(1, bots_running=1), active_seconds=2.0)]
    ['failed', 'pending']
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from ._hdr import (
    EMPTY_HIST,
    NAN,
    decode_hist,
    encode_hist,
    nan_max,
    nan_min,
    new_hist,
    release_hist,
)
from ._stats import Stats
from ._thresholds import (
    RunFigures,
    Threshold,
    ThresholdResult,
    counter_hint,
    entry_matches,
    judge,
    measure,
    parse_threshold,
)

__all__ = ["LiveThresholds", "ThresholdState"]

Status = Literal["pending", "passed", "failed"]
PENDING: Final = "pending"
PASSED: Final = "passed"
FAILED: Final = "failed"


@dataclass(frozen=True)
class ThresholdState:
    """One threshold's live state, after the last second of the run.

    Attributes:
        expression: the threshold as it was written.
        status: ``"pending"`` (nothing to judge yet), ``"passed"`` or ``"failed"``.
        result: what it measured, as a `ThresholdResult` (``passed`` is False while
            pending).

    Example:
        >>> ThresholdState("p99 < 1s", "pending", ThresholdResult("p99 < 1s", False, None, 1.0))
        ... # doctest: +ELLIPSIS
        ThresholdState(expression='p99 < 1s', status='pending', ...)
    """

    expression: str
    status: Status
    result: ThresholdResult


class _Second:
    """What one second added to a threshold's window."""

    __slots__ = ("count", "failures", "high", "hists", "low")

    def __init__(self, entries: Sequence[Mapping[str, Any]]) -> None:
        self.count = sum(e["count"] for e in entries)
        self.failures = sum(e["failures"] for e in entries)
        self.hists = [e["hist"] for e in entries if e.get("hist") not in (None, EMPTY_HIST)]
        low = high = NAN
        for e in entries:
            low, high = nan_min(low, e.get("min", NAN)), nan_max(high, e.get("max", NAN))
        self.low, self.high = low, high


class _Tracker:
    """A request threshold's figures: the whole run so far, or its last W seconds."""

    def __init__(self, t: Threshold) -> None:
        self.t = t
        self.hist: Any = None  # the running histogram, made at the first sample
        self.count = 0
        self.failures = 0
        self.low = self.high = NAN
        self.seconds: deque[_Second] = deque()
        self.seen = 0  # seconds fed so far

    def _entries(self, bucket: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        name = self.t.name
        if name is None:
            return [bucket]  # the bucket's own figures are the request total
        return [e for key, e in bucket["names"].items() if entry_matches(key, name)]

    def feed(self, bucket: Mapping[str, Any]) -> None:
        second = _Second(self._entries(bucket))
        self.seen += 1
        self._add(second, 1)
        if self.t.window is None:
            self.low, self.high = nan_min(self.low, second.low), nan_max(self.high, second.high)
            return
        self.seconds.append(second)
        if len(self.seconds) > self.t.window:
            self._add(self.seconds.popleft(), -1)
        self.low = self.high = NAN
        for s in self.seconds:
            self.low, self.high = nan_min(self.low, s.low), nan_max(self.high, s.high)

    def _add(self, second: _Second, sign: int) -> None:
        self.count += sign * second.count
        self.failures += sign * second.failures
        for encoded in second.hists:
            if self.hist is None:
                self.hist = new_hist()
            part = decode_hist(encoded)
            if sign > 0:
                self.hist.add(part)
            else:
                _subtract(self.hist, part)
            release_hist(part)  # no cycle left for the collector

    @property
    def requests(self) -> int:
        """The requests within what this tracker reads (the run so far, or the window)."""
        return self.count + self.failures

    @property
    def full(self) -> bool:
        """Whether a windowed threshold has seen its whole window."""
        return self.t.window is None or self.seen >= self.t.window

    def stats(self, active_seconds: float) -> Stats:
        hists = () if self.hist is None or not self.hist.get_total_count() else [
            encode_hist(self.hist)
        ]
        if self.t.window is not None:
            active_seconds = float(len(self.seconds))
        return Stats(
            self.t.name or "total",
            count=self.count,
            failure_count=self.failures,
            active_seconds=active_seconds,
            hists=hists,
            low=self.low,
            high=self.high,
        )

    def close(self) -> None:
        if self.hist is not None:
            release_hist(self.hist)
            self.hist = None


def _subtract(hist: Any, part: Any) -> None:
    """Take `part`'s counts out of `hist` (which holds them); min and max stay as they
    were, a bound on what is left (the readers clamp to the exact window bounds)."""
    total = part.get_total_count()
    if not total:
        return
    first = part.get_counts_array_index(part.get_min_value())
    last = min(part.counts_len, part.get_counts_array_index(part.get_max_value()) + 1)
    counts = hist.counts
    counts[first:last] = list(map(operator.sub, counts[first:last], part.counts[first:last]))
    hist.total_count -= total


class LiveThresholds:
    """Thresholds judged each second of a run; see the module docstring.

    Args:
        thresholds: the expressions (or parsed `Threshold` objects).

    Raises:
        ConfigError: a malformed expression.

    Attributes:
        expressions: the thresholds as written (stripped).
        thresholds: the parsed `Threshold` of each.
        states: the `ThresholdState` of each after the last `update` (pending before).
    """

    def __init__(self, thresholds: Iterable[str | Threshold]) -> None:
        items = list(thresholds)
        self.thresholds = [t if isinstance(t, Threshold) else parse_threshold(t) for t in items]
        self.expressions = [str(t) if isinstance(t, Threshold) else t.strip() for t in items]
        self._trackers = [None if t.reads_run else _Tracker(t) for t in self.thresholds]
        self.states: list[ThresholdState] = [
            ThresholdState(e, PENDING, judge(t, None))
            for e, t in zip(self.expressions, self.thresholds, strict=True)
        ]

    def update(
        self,
        bucket: Mapping[str, Any],
        *,
        active_seconds: float,
        figures: RunFigures | None = None,
    ) -> list[ThresholdState]:
        """Feed one second's timeline bucket and judge every threshold; the new states.

        Args:
            bucket: the second's bucket, as `Recorder.tick` returns it.
            active_seconds: the run's active time so far (the denominator of ``rps``).
            figures: the run's counters, gauges and dropped counts so far.
        """
        figures = figures or RunFigures()
        states = []
        for index, (t, tracker) in enumerate(zip(self.thresholds, self._trackers, strict=True)):
            expression = self.expressions[index]
            if tracker is None:
                result = judge(t, *figures.measure(t))
                full = True
            else:
                tracker.feed(bucket)
                if not tracker.requests and t.name in figures.counters and t.metric == "count":
                    # count(x) of a custom counter: a mistake, which fails at once
                    result = judge(t, None, counter_hint(t))
                    states.append(ThresholdState(expression, FAILED, result))
                    continue
                result = judge(t, *measure(t, tracker.stats(active_seconds)))
                full = tracker.full
            states.append(ThresholdState(expression, _status(t, result, full), result))
        self.states = states
        return states

    def failed(self) -> ThresholdState | None:
        """The first threshold that failed at the last update, or None."""
        return next((s for s in self.states if s.status == FAILED), None)

    def close(self) -> None:
        """Free the running histograms."""
        for tracker in self._trackers:
            if tracker is not None:
                tracker.close()


def _status(t: Threshold, result: ThresholdResult, full: bool) -> Status:
    if result.passed:
        return PASSED
    if result.measured is None:
        return PENDING
    if t.counts_up and (t.window is None or not full):
        return PENDING  # it may still get there: the end judges it
    return FAILED
