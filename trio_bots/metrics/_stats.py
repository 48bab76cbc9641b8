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
    metrics_part,
    nan_max,
    nan_min,
    sorted_failures,
    sum_dist,
    to_seconds,
    to_us,
)
from ._tags import contains, parse_tags, split_key


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
        return sum_dist(self._hists, to_us(self._low), to_us(self._high))[1]

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

    A tagged name (``bot.measure(name, tags=...)``) is one entry here, every
    tag set of it aggregated; `tagged` gives each tag set's `Stats`, and
    ``stats["name{key=value}"]`` every tag set that holds those pairs.

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
        #: name -> {tag text: its Stats}, for the names recorded with tags ("" untagged).
        self._tag_sets: dict[str, dict[str, Stats]] = {}
        self._names: dict[str, Stats] = self._stats
        if any(key.endswith("}") for key in self._stats):
            for key in self._stats:
                name, text = split_key(key)
                if text:
                    self._tag_sets.setdefault(name, {})
            if self._tag_sets:
                self._names = {}
                for key, entry in self._stats.items():
                    name, text = split_key(key)
                    if name in self._tag_sets:
                        self._tag_sets[name][text] = entry
                        self._names.setdefault(name, entry)  # replaced by the aggregate below
                    else:
                        self._names[key] = entry
                for name, sets in self._tag_sets.items():
                    self._names[name] = self._combine(name, list(sets.values()))

    def __getitem__(self, name: str) -> Stats:
        entry = self._names.get(name)
        if entry is not None:
            return entry
        base, text = split_key(name)
        if text and base in self._names:
            return self.select(base, parse_tags(text))
        known = ", ".join(map(repr, sorted(self._names))) or "none"
        raise KeyError(f"no stats recorded under {name!r}; known names: {known}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"StatsMap({sorted(self._names)!r})"

    def tagged(self, name: str) -> dict[str, Stats]:
        """Each tag set's `Stats` of `name`, by tag text (``"region=eu"``; ``""`` for
        what was recorded without tags, ``"other"`` for the fold past 100 sets).

        Example:
            >>> from trio_bots.metrics import Recorder
            >>> rec = Recorder(0.0)
            >>> rec.record("get{region=eu}", 1000); rec.record("get{region=us}", 3000)
            >>> stats = stats_from_snapshot(rec.snapshot(1.0, bots_running=0, active_seconds=1.0))
            >>> {text: s.count for text, s in stats.tagged("get").items()}, stats["get"].count
            ({'region=eu': 1, 'region=us': 1}, 2)
            >>> stats["get{region=us}"].max, stats.tagged("other name")
            (0.003, {})
        """
        return dict(self._tag_sets.get(name, {}))

    def select(self, name: str, tags: Mapping[str, str]) -> Stats:
        """Every tag set of `name` that holds all of `tags`, aggregated.

        Raises:
            KeyError: `name` was never recorded.
        """
        if name not in self._names:
            raise KeyError(f"no stats recorded under {name!r}")
        sets = self._tag_sets.get(name, {"": self._names[name]})
        parts = [s for text, s in sets.items() if contains(text, tags)]
        kind = self._names[name].kind
        return self._combine(name, parts, kind=kind)

    @cached_property
    def total(self) -> Stats:
        """Every request name aggregated; fan-out names are left out."""
        return self._combine("total", [s for s in self._stats.values() if s.kind == "request"])

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
        return self._combine(name, [self[n] for n in names], kind=kind)

    def _combine(self, name: str, parts: list[Stats], *, kind: str | None = None) -> Stats:
        if kind is None:
            kinds = {s.kind for s in parts}
            kind = "request" if "request" in kinds or not parts else parts[0].kind
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
    """One bucket of the run's timeline: bots, request counts and latency percentiles.

    The bucket covers ``[t, t + span)`` seconds from the start: ``span`` is 1
    for the last 10 minutes of a run, 10 back to 6 hours, and 60 before (a
    summary of the seconds within). ``bots`` is the last count within it.
    ``count``, ``failures`` and the percentiles cover request names only;
    ``names`` holds every name active in it, fan-out included.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(0.0)
        >>> rec.record("a", 2000)
        >>> _ = rec.tick(0, bots_running=5)
        >>> snap = rec.snapshot(0.4, bots_running=5, active_seconds=0.4)
        >>> [bucket] = timeline_from_snapshot(snap)
        >>> bucket.t, bucket.bots, bucket.count, bucket.p99, bucket.names["a"].count
        (0, 5, 1, 0.002, 1)
        >>> bucket.span, bucket.rps
        (1, 1.0)
    """

    t: int
    bots: int
    count: int
    failures: int
    p50: float
    p95: float
    p99: float
    names: Mapping[str, TimelineName] = field(default_factory=dict)
    span: int = 1

    @property
    def rps(self) -> float:
        """Requests, successful and failed, per second of the bucket: (count + failures) / span."""
        return (self.count + self.failures) / self.span


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
            b.get("span", 1),
        )
        for b in sorted(metrics_part(snapshot)["timeline"], key=operator.itemgetter("t"))
    ]
