"""Reading metrics snapshots: `Stats`, `StatsMap`, failures and the timeline.

Everything here reads plain-data snapshots (see `_recorder`); times come out
as float seconds, NaN when there are no samples.

Example:
    >>> from trio_bots.metrics import Recorder
    >>> rec = Recorder(start_time=0.0)
    >>> rec.record("login", 2000)
    >>> stats = stats_from_snapshot(rec.snapshot(1.0, bots_running=1, active_seconds=1.0))
    >>> stats["login"].percentile(50)
    0.002
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .._errors import ConfigError
from ._hdr import (
    NAN,
    Dist,
    add_encoded,
    metrics_part,
    nan_max,
    nan_min,
    sorted_failures,
    to_seconds,
    to_us,
)


class Stats:
    """Read-only figures of one name (or of `StatsMap.total`).

    Counts and bytes are ints; times are float seconds, NaN when there are
    no successful samples (failed requests never enter the histogram).
    ``cancelled`` counts the ``measure()`` blocks cut off by a cancellation
    (the stop's, or one from outside): they are neither successes nor
    failures, so ``count + failure_count + cancelled`` is every block
    entered, and ``rps`` and ``failure_rate`` leave them out.
    Percentiles and the mean have the histogram's 3-digit resolution
    (hdrh semantics: the highest value equivalent to the sample), clamped
    into the exact min and max. ``rps`` is ``(count + failure_count) /
    active_seconds``; with no active time it is 0.0 if nothing was
    recorded and NaN otherwise.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(0.0)
        >>> rec.record("get", 1500)
        >>> s = stats_from_snapshot(rec.snapshot(2.0, bots_running=0, active_seconds=2.0))["get"]
        >>> rec.record_cancelled("get")
        >>> s = stats_from_snapshot(rec.snapshot(2.0, bots_running=0, active_seconds=2.0))["get"]
        >>> s.count, s.cancelled, s.rps, s.mean, s.failure_rate
        (1, 1, 0.5, 0.0015, 0.0)
        >>> s.raw is s
        True
    """

    def __init__(
        self,
        name: str,
        *,
        kind: str = "request",
        count: int = 0,
        failure_count: int = 0,
        cancelled: int = 0,
        active_seconds: float = 0.0,
        hists: Iterable[str] = (),
        low: float = NAN,
        high: float = NAN,
        raw_hists: Iterable[str] | None = None,
        bytes_sent: int = 0,
        bytes_received: int = 0,
    ) -> None:
        self.name = name
        self.kind = kind
        self.count = count
        self.failure_count = failure_count
        self.cancelled = cancelled
        self.active_seconds = active_seconds
        self.bytes_sent = bytes_sent
        self.bytes_received = bytes_received
        self._hists = tuple(hists)
        self._low, self._high = low, high  # exact bounds in seconds, NaN when unknown
        self._raw_hists = None if raw_hists is None else tuple(raw_hists)

    def __repr__(self) -> str:
        return (
            f"<Stats {self.name!r} count={self.count} failures={self.failure_count} "
            f"cancelled={self.cancelled} "
            f"p50={self.percentile(50):.6g}s p99={self.percentile(99):.6g}s>"
        )

    @cached_property
    def _dist(self) -> Dist:
        return Dist(add_encoded(*self._hists)[1], to_us(self._low), to_us(self._high))

    @property
    def rps(self) -> float:
        """Requests (successful and failed) per second of active time."""
        requests = self.count + self.failure_count
        if self.active_seconds > 0:
            return requests / self.active_seconds
        return 0.0 if requests == 0 else NAN

    @property
    def failure_rate(self) -> float:
        """Failed requests over all requests, 0.0 .. 1.0; NaN with none."""
        requests = self.count + self.failure_count
        return self.failure_count / requests if requests else NAN

    @property
    def mean(self) -> float:
        """Mean latency in seconds."""
        return to_seconds(self._dist.mean_us())

    @property
    def min(self) -> float:
        """Smallest latency in seconds."""
        return to_seconds(self._dist.min_us())

    @property
    def max(self) -> float:
        """Largest latency in seconds."""
        return to_seconds(self._dist.max_us())

    def percentile(self, q: float) -> float:
        """The latency in seconds that ``q`` percent of samples do not exceed.

        Raises:
            ConfigError: if ``q`` is not a number from 0 to 100.
        """
        if not (isinstance(q, int | float) and 0 <= q <= 100):
            raise ConfigError(f"percentile must be a number from 0 to 100, got {q!r}")
        return to_seconds(self._dist.percentile_us(q))

    @cached_property
    def raw(self) -> Stats:
        """The uncorrected figures (open model); ``self`` when there are none.

        Raw figures are at histogram resolution (no exact min/max clamp).
        """
        if self._raw_hists is None:
            return self
        return Stats(
            self.name,
            kind=self.kind,
            count=self.count,
            failure_count=self.failure_count,
            cancelled=self.cancelled,
            active_seconds=self.active_seconds,
            hists=self._raw_hists,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
        )


class StatsMap(Mapping[str, Stats]):
    """`Stats` per name, plus `total` over the request (not fan-out) names.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(0.0)
        >>> rec.record("a", 1000); rec.record("b", 3000); rec.record_fanout("direct", 5)
        >>> stats = stats_from_snapshot(rec.snapshot(1.0, bots_running=0, active_seconds=1.0))
        >>> sorted(stats), stats.total.count, stats.total.max
        (['a', 'b', 'direct'], 2, 0.003)
    """

    def __init__(self, stats: Mapping[str, Stats], active_seconds: float = 0.0) -> None:
        self._stats = dict(stats)
        self._active_seconds = active_seconds

    def __getitem__(self, name: str) -> Stats:
        try:
            return self._stats[name]
        except KeyError:
            known = ", ".join(map(repr, sorted(self._stats))) or "none"
            raise KeyError(f"no stats recorded under {name!r}; known names: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._stats)

    def __len__(self) -> int:
        return len(self._stats)

    def __repr__(self) -> str:
        return f"StatsMap({sorted(self._stats)!r})"

    @cached_property
    def total(self) -> Stats:
        """Every request name aggregated; fan-out names are left out."""
        return self.combine("total", [n for n, s in self._stats.items() if s.kind == "request"])

    def combine(self, name: str, names: Iterable[str], *, kind: str = "request") -> Stats:
        """The named entries aggregated exactly into one `Stats` called *name*.

        Counts and bytes add up; the histograms are summed, so percentiles
        are those of all the samples together, as `total` reads them.

        Raises:
            KeyError: a name that was never recorded.

        Example:
            >>> from trio_bots.metrics import Recorder
            >>> rec = Recorder(0.0)
            >>> rec.record_fanout("group:a", 1000); rec.record_fanout("group:b", 3000)
            >>> stats = stats_from_snapshot(rec.snapshot(1.0, bots_running=0, active_seconds=1.0))
            >>> both = stats.combine("fan-out", ["group:a", "group:b"], kind="fanout")
            >>> both.count, both.min, both.max, both.kind
            (2, 0.001, 0.003, 'fanout')
        """
        parts = [self[n] for n in names]
        low = high = NAN
        for s in parts:
            low, high = nan_min(low, s._low), nan_max(high, s._high)
        any_raw = any(s._raw_hists is not None for s in parts)
        return Stats(
            name,
            kind=kind,
            count=sum(s.count for s in parts),
            failure_count=sum(s.failure_count for s in parts),
            cancelled=sum(s.cancelled for s in parts),
            active_seconds=self._active_seconds,
            hists=[h for s in parts for h in s._hists],
            low=low,
            high=high,
            raw_hists=[h for s in parts for h in s.raw._hists] if any_raw else None,
            bytes_sent=sum(s.bytes_sent for s in parts),
            bytes_received=sum(s.bytes_received for s in parts),
        )


def stats_from_snapshot(snapshot: Mapping[str, Any]) -> StatsMap:
    """Read the `Stats` of every name from a metrics (or run) snapshot.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(0.0)
        >>> stats_from_snapshot(rec.snapshot(0.0, bots_running=0, active_seconds=0.0)).total.rps
        0.0
    """
    snap = metrics_part(snapshot)
    active = float(snap["active_seconds"])
    return StatsMap(
        {
            name: Stats(
                name,
                kind=d["kind"],
                count=d["count"],
                failure_count=d["failure_count"],
                cancelled=d.get("cancelled", 0),
                active_seconds=active,
                hists=(d["hist"],),
                low=d.get("min", NAN),
                high=d.get("max", NAN),
                raw_hists=None if d["raw_hist"] is None else (d["raw_hist"],),
                bytes_sent=d["bytes_sent"],
                bytes_received=d["bytes_received"],
            )
            for name, d in snap["names"].items()
        },
        active,
    )


@dataclass(frozen=True)
class FailureGroup:
    """Failed requests of one name with the same exception type and message.

    ``first_bot`` is the bot that failed this way first (None outside a
    bot); ``first_t`` the timeline second in which it was first seen.

    Example:
        >>> FailureGroup("login", "ValueError", "boom", 3, first_bot=0).count
        3
    """

    name: str
    kind: str
    message: str
    count: int
    first_bot: int | None
    first_t: int | None = None


def failures_from_snapshot(snapshot: Mapping[str, Any]) -> list[FailureGroup]:
    """The request failure groups, most frequent first.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(0.0)
        >>> rec.record_failure("a", "OSError", "reset", 1)
        >>> rec.record_failure("b", "KeyError", "'x'", None)
        >>> rec.record_failure("b", "KeyError", "'x'", 2)
        >>> snap = rec.snapshot(0.5, bots_running=0, active_seconds=0.5)
        >>> [(f.name, f.count, f.first_bot) for f in failures_from_snapshot(snap)]
        [('b', 2, None), ('a', 1, 1)]
    """
    return [
        FailureGroup(
            f["name"], f["kind"], f["message"], f["count"], f["first_bot"], f.get("first_t")
        )
        for f in sorted_failures(list(metrics_part(snapshot)["failures"]))
    ]


@dataclass(frozen=True)
class TimelineName:
    """One name's figures within one timeline second (times in seconds)."""

    count: int
    failures: int
    p50: float
    p99: float


@dataclass(frozen=True)
class TimelineBucket:
    """One second of the run: bots, request counts and latency percentiles.

    ``count``, ``failures`` and the percentiles cover request names only;
    ``names`` holds every name active in that second, fan-out included.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(0.0)
        >>> rec.record("a", 2000)
        >>> _ = rec.tick(0, bots_running=5)
        >>> snap = rec.snapshot(0.4, bots_running=5, active_seconds=0.4)
        >>> [bucket] = timeline_from_snapshot(snap)
        >>> bucket.t, bucket.bots, bucket.count, bucket.p99, bucket.names["a"].count
        (0, 5, 1, 0.002, 1)
    """

    t: int
    bots: int
    count: int
    failures: int
    p50: float
    p95: float
    p99: float
    names: Mapping[str, TimelineName] = field(default_factory=dict)


def timeline_from_snapshot(snapshot: Mapping[str, Any]) -> list[TimelineBucket]:
    """The per-second buckets of a metrics (or run) snapshot, sorted by ``t``."""
    return [
        TimelineBucket(
            b["t"],
            b["bots"],
            b["count"],
            b["failures"],
            b["p50"],
            b["p95"],
            b["p99"],
            {
                n: TimelineName(e["count"], e["failures"], e["p50"], e["p99"])
                for n, e in b["names"].items()
            },
        )
        for b in sorted(metrics_part(snapshot)["timeline"], key=operator.itemgetter("t"))
    ]
