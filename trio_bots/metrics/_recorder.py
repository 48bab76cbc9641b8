"""Per-name latency histograms, counters and a per-second timeline.

The engine feeds one `Recorder` per swarm (integer microseconds in, on the
hot path); everything else reads *snapshots*: plain dicts holding only
numbers and encoded HDR histograms, so they pickle, travel between
processes and `merge` exactly. Outside this module every time is a float
in seconds, NaN when there are no samples. The readers (`Stats`,
`stats_from_snapshot`, ...) live in `_stats` and the histogram helpers in
`_hdr`; both are re-exported here.

The timeline holds one bucket per second for the last 10 minutes, then
coarser buckets with summaries only (`TIERS`): its memory is bounded
whatever the run's length, while the cumulative histograms stay exact.

Example:
    >>> from trio_bots.metrics import failures_from_snapshot, stats_from_snapshot
    >>> rec = Recorder(start_time=0.0)
    >>> for us in (1000, 2000, 3000):
    ...     rec.record("login", us)
    >>> rec.record_failure("login", "ValueError", "boom", bot_id=7)
    >>> snap = rec.snapshot(1.5, bots_running=3, active_seconds=1.5)
    >>> login = stats_from_snapshot(snap)["login"]
    >>> login.count, login.failure_count, login.rps
    (3, 1, 2.6666666666666665)
    >>> login.percentile(50), login.max
    (0.002, 0.003)
    >>> failures_from_snapshot(snap)[0].first_bot
    7
"""

from __future__ import annotations

import itertools
import math
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ._format import format_percentile_label
from ._hdr import (
    EMPTY_HIST,
    NAN,
    SNAPSHOT_VERSION,
    Dist,
    clamp_us,
    clear_hist,
    decode_hist,
    encode_hist,
    metrics_part,
    nan_max,
    nan_min,
    new_hist,
    record_counts,
    release_hist,
    sorted_failures,
    sum_dist,
    to_seconds,
    to_us,
)

#: The in-memory timeline's tiers, as (span, age): a second older than ``age``
#: seconds (from the last one ticked) is kept in a bucket of ``span`` seconds. The
#: 1 s buckets of the last 10 minutes keep their histograms; the 10 s buckets (back
#: to 6 hours) and 60 s buckets (before) keep a fixed-size summary, so a run's
#: timeline stays small whatever its length, latency spread or bot count. A bucket
#: of span S starts at a multiple of S from the run's start, so shards' timelines
#: still merge. The full-resolution histograms can go to disk (``hdr_log=``).
TIERS: tuple[tuple[int, int], ...] = ((1, 0), (10, 600), (60, 6 * 3600))
#: The percentiles every timeline name entry keeps (also in summaries).
ENTRY_PERCENTILES = (50, 90, 99, 99.9)
#: The percentiles of a bucket's request totals (p95 is the charts' line).
BUCKET_PERCENTILES = (50, 90, 95, 99, 99.9)
#: The most distinct failure groups (name, kind, message) a run keeps; the rest of a
#: name's failures are counted in its one "other" group.
MAX_FAILURE_GROUPS: Final = 1000
OTHER_KIND: Final = "Other"
OTHER_MESSAGE: Final = (
    f"failures beyond the first {MAX_FAILURE_GROUPS} distinct (type, message) groups"
)


class _Series:
    """Everything one name has recorded."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "cancelled",
        "cum",
        "cum_encoded",
        "failure_count",
        "interval",
        "interval_failures",
        "kind",
        "max_us",
        "min_us",
        "raw_cum",
        "raw_interval",
        "recorded",
    )

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.interval: Any = new_hist()
        self.cum: Any = new_hist()
        self.cum_encoded: str | None = EMPTY_HIST
        self.raw_interval: Any = None
        self.raw_cum: Any = None
        self.failure_count = 0
        self.interval_failures = 0
        self.cancelled = 0  # measure() blocks cut off by a cancellation, not latencies
        self.bytes_sent = 0
        self.bytes_received = 0
        self.min_us = sys.maxsize  # exact bounds of what is folded into cum
        self.max_us = 0
        self.recorded: list[int] = []  # latencies in µs (requests, fan-out), flushed at tick()

    def flush(self) -> None:
        """Record the buffered latencies into the interval histogram(s)."""
        interval = self.interval
        if self.recorded:
            # Counted in C first, so the Python work is per distinct µs value, not per
            # sample; record_counts then computes each index inline, without a call.
            counted = Counter(self.recorded)
            self.recorded.clear()
            for us, n in record_counts(interval, counted):
                interval.record_value(clamp_us(us), n)
            raw_interval = self.raw_interval
            if raw_interval is not None:
                for us, n in record_counts(raw_interval, counted):
                    raw_interval.record_value(clamp_us(us), n)

    def has_unfolded(self) -> bool:
        return bool(self.recorded or self.interval.get_total_count())

    def summary(self, scratch: Any) -> dict[str, Any]:
        """This name's cumulative figures, including what is not folded yet; `scratch`
        is a histogram this may overwrite. Nothing of the series changes."""
        count = self.cum.get_total_count()
        low, high = self.min_us, self.max_us
        raw_hist = None
        if self.has_unfolded():
            hist = self._with_unfolded(scratch, self.cum, self.interval)
            count = scratch.get_total_count()
            if self.interval.get_total_count():
                low = min(low, self.interval.min_value)
                high = max(high, self.interval.max_value)
            unfolded = self.recorded
            if unfolded:
                low = min(low, max(1, min(unfolded)))
                high = max(high, max(unfolded))
            if self.raw_cum is not None:
                raw_hist = self._with_unfolded(scratch, self.raw_cum, self.raw_interval)
        else:
            if self.cum_encoded is None:
                self.cum_encoded = encode_hist(self.cum)  # a cache of what is already there
            hist = self.cum_encoded
            if self.raw_cum is not None:
                raw_hist = encode_hist(self.raw_cum)
        return {
            "kind": self.kind,
            "count": count,
            "failure_count": self.failure_count,
            "cancelled": self.cancelled,
            "hist": hist,
            "raw_hist": raw_hist,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "min": to_seconds(clamp_us(low)) if count else NAN,
            "max": to_seconds(clamp_us(high)) if count else NAN,
        }

    def _with_unfolded(self, scratch: Any, cum: Any, interval: Any) -> str:
        """Encode cum + interval + the buffered samples, built in `scratch`."""
        clear_hist(scratch)
        scratch.add(cum)
        scratch.add(interval)
        for us, n in record_counts(scratch, Counter(self.recorded)):
            scratch.record_value(clamp_us(us), n)
        return encode_hist(scratch)

    def fold(self) -> None:
        """Move the (non-empty) interval into the cumulative histograms."""
        # hdrh's record_value keeps the exact min/max; add() and decode() round them
        self.min_us = min(self.min_us, self.interval.min_value)
        self.max_us = max(self.max_us, self.interval.max_value)
        self.cum.add(self.interval)
        self.cum_encoded = None
        clear_hist(self.interval)
        if self.raw_interval is not None:
            self.raw_cum.add(self.raw_interval)
            clear_hist(self.raw_interval)


class Recorder:
    """Collects one swarm's measurements; `snapshot()` reads them out.

    Latencies are integer microseconds, clamped to 1 µs .. 1 hour. Only
    successful requests enter the latency histograms: percentiles, mean,
    min and max are of successes, while failures are counted and grouped.

    Args:
        start_time: the swarm clock (``anyio.current_time()``) at the run
            start; timeline buckets are whole seconds since it.

    Example:
        >>> rec = Recorder(start_time=10.0)
        >>> rec.record("ping", 250)
        >>> rec.tick(1, bots_running=1)["count"]
        1
        >>> rec.snapshot(11.5, bots_running=1, active_seconds=1.5)["timeline"][0]["t"]
        1
    """

    def __init__(self, start_time: float) -> None:
        self.start_time = start_time
        #: The open model's uncorrected percentiles of the last tick, by name (live views).
        self.last_raw_percentiles: dict[str, dict[str, float]] = {}
        self._series: dict[str, _Series] = {}
        # name -> its list of latencies since the last tick: appending is the whole hot
        # path; tick() records them into the histogram while that is warm in the cache
        self._recorded: dict[str, list[int]] = {}
        self._failures: dict[tuple[str, str, str], list[Any]] = {}  # [count, first_bot, first_t]
        self._distinct_failures = 0  # groups in _failures that are not an "other" group
        self._new_failures: list[list[Any]] = []  # groups whose first_t the next tick sets
        self._counters: dict[str, int] = {}
        self._gauges: dict[str, float] = {}
        # The timeline's tiers, each in increasing t (see TIERS): 1 s buckets with their
        # histograms, then 10 s and 60 s summaries; _minutes holds the 60 s summaries
        # of minutes still shown as 10 s buckets.
        self._fine: dict[int, dict[str, Any]] = {}
        self._tens: dict[int, dict[str, Any]] = {}
        self._sixties: dict[int, dict[str, Any]] = {}
        self._minutes: dict[int, dict[str, Any]] = {}
        self._aged_10 = 0  # seconds before this are in 10 s (or 60 s) buckets
        self._aged_60 = 0  # seconds before this are in 60 s buckets
        self._last_t = 0
        self._scratch = new_hist()
        self._read_scratch = new_hist()  # for snapshot(), which must not touch the rest
        #: Set it to have `tick` encode each name's raw (uncorrected) interval histogram
        #: into `last_raw` (the HDR log writes them).
        self.keep_raw_intervals = False
        #: The raw interval histograms of the last tick, by name (see `keep_raw_intervals`).
        self.last_raw: dict[str, str] = {}
        #: What the last tick added: its bucket, unless that merged into a second that
        #: already had one (then the part it added, as a bucket of its own).
        self.last_added: dict[str, Any] = {}

    def _get(self, name: str, kind: str = "request") -> _Series:
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = _Series(kind)
            self._recorded[name] = series.recorded
        return series

    def record(self, name: str, latency_us: int) -> None:
        """Record one successful request of ``latency_us`` µs under ``name``."""
        try:
            self._recorded[name].append(latency_us)
        except KeyError:
            self._get(name).recorded.append(latency_us)

    def samples(self, name: str, kind: str = "request") -> list[int]:
        """The list that `record` appends ``name``'s latencies (µs) to until the next tick:
        the same list for the whole run, for a hot path that appends to it itself.

        Example:
            >>> rec = Recorder(start_time=0.0)
            >>> rec.samples("ping").append(120)
            >>> rec.tick(0, bots_running=1)["count"]
            1
        """
        return self._get(name, kind).recorded

    def record_corrected(self, name: str, latency_us: int, raw_us: int) -> None:
        """Record a coordinated-omission-corrected latency and its raw one.

        The name's raw histogram starts as a copy of what it holds so far;
        later `record` calls go to both.
        """
        series = self._get(name)
        if series.raw_interval is None:
            series.raw_cum = new_hist()
            series.raw_cum.add(series.cum)
            series.raw_interval = new_hist()
            series.raw_interval.add(series.interval)
            # what record() buffered is flushed into both at the next tick
        series.interval.record_value(clamp_us(latency_us))
        series.raw_interval.record_value(clamp_us(raw_us))

    def record_failure(self, name: str, kind: str, message: str, bot_id: int | None) -> None:
        """Count one failed request, grouped by (name, kind, message).

        At most `MAX_FAILURE_GROUPS` groups are kept over the run; the failures of
        any further (kind, message) fold into one `OTHER_KIND` group per name.
        """
        series = self._get(name)
        series.failure_count += 1
        series.interval_failures += 1
        key = (name, kind, message)
        group = self._failures.get(key)
        if group is None:
            if self._distinct_failures >= MAX_FAILURE_GROUPS:
                key = (name, OTHER_KIND, OTHER_MESSAGE)
                group = self._failures.get(key)
            else:
                self._distinct_failures += 1
            if group is None:
                group = self._failures[key] = [0, bot_id, None]
                self._new_failures.append(group)
        group[0] += 1

    def record_cancelled(self, name: str) -> None:
        """Count one request under ``name`` cut off by a cancellation (not a latency)."""
        self._get(name).cancelled += 1

    def record_fanout(self, name: str, latency_us: int) -> None:
        """Record one message delivery latency; batched until the next tick."""
        try:
            self._recorded[name].append(latency_us)
        except KeyError:
            self._get(name, "fanout").recorded.append(latency_us)

    def add_bytes(self, name: str, sent: int, received: int) -> None:
        """Add bytes sent and received by requests under ``name``."""
        series = self._get(name)
        series.bytes_sent += sent
        series.bytes_received += received

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the custom counter ``name``."""
        self._counters[name] = self._counters.get(name, 0) + n

    def gauge(self, name: str, value: float) -> None:
        """Set the custom gauge ``name`` (the last value wins)."""
        self._gauges[name] = value

    def record_interval(
        self,
        name: str,
        hist: str,
        *,
        kind: str = "request",
        failures: int = 0,
        raw: str | None = None,
        bounds: tuple[int, int] | None = None,
    ) -> None:
        """Add an encoded interval histogram (and its failures) under `name`, as if each of
        its samples had been recorded since the last tick: what a log is read back with.

        Its failures are counted without their (type, message) groups. `raw` is its
        uncorrected twin (open model), when there is one. `bounds` are its exact
        smallest and largest samples in µs, which an encoded histogram rounds.

        Example:
            >>> rec = Recorder(0.0)
            >>> rec.record("get", 1500)
            >>> bucket = rec.tick(0, bots_running=1)
            >>> again = Recorder(0.0)
            >>> again.record_interval("get", bucket["names"]["get"]["hist"], failures=2)
            >>> read = again.tick(0, bots_running=1)
            >>> read["names"]["get"]["count"], read["failures"], read["hist"] == bucket["hist"]
            (1, 2, True)
        """
        series = self._get(name, kind)
        if raw is not None and series.raw_interval is None:
            series.raw_cum = new_hist()
            series.raw_cum.add(series.cum)
            series.raw_interval = new_hist()
            series.raw_interval.add(series.interval)
        interval = series.interval
        empty = not interval.get_total_count()
        for target, encoded in ((interval, hist), (series.raw_interval, raw or hist)):
            if target is None or encoded == EMPTY_HIST:
                continue
            part = decode_hist(encoded)
            target.add(part)
            release_hist(part)
        if bounds is not None and interval.get_total_count():
            # hdrh's record_value keeps the exact min and max, and fold() reads them
            low, high = bounds
            interval.min_value = low if empty else min(interval.min_value, low)
            interval.max_value = high if empty else max(interval.max_value, high)
        series.failure_count += failures
        series.interval_failures += failures

    def counters(self) -> dict[str, int]:
        """The custom counters so far (a copy)."""
        return dict(self._counters)

    def gauges(self) -> dict[str, float]:
        """The custom gauges' last values (a copy)."""
        return dict(self._gauges)

    def tick(self, second: int, bots_running: int) -> dict[str, Any]:
        """Fold what was recorded since the last tick into the totals and into the
        timeline bucket of `second` (counted from ``start_time``); returns that bucket.

        The caller (the runtime's ticker) decides the second, so a late loop still
        files each second's samples under its own bucket. A second that already
        has a bucket is merged into (its ``bots`` becomes the latest value). A
        tick without activity still makes a bucket, for the bots-over-time chart.
        Older seconds are then merged into coarser buckets (see `TIERS`).
        """
        t = self._last_t = max(self._last_t, second)
        for group in self._new_failures:
            group[2] = t
        self._new_failures.clear()
        names: dict[str, dict[str, Any]] = {}
        raw: dict[str, str] = {}
        raw_percentiles: dict[str, dict[str, float]] = {}
        requests = self._scratch
        low = high = NAN
        request_failures = 0
        for name, series in sorted(self._series.items()):
            interval = series.interval
            series.flush()
            n = interval.get_total_count()
            failures = series.interval_failures
            if not n and not failures:
                continue
            series.interval_failures = 0
            if n:
                dist = Dist(interval, interval.min_value, interval.max_value)
                names[name] = _name_entry(series.kind, n, failures, encode_hist(interval), dist)
                raw_hist = series.raw_interval
                if raw_hist is not None and raw_hist.get_total_count():
                    # the open model's uncorrected figures of this second, for live views
                    raw_dist = Dist(raw_hist, raw_hist.min_value, raw_hist.max_value)
                    raw_percentiles[name] = raw_dist.percentiles(*ENTRY_PERCENTILES)
            else:
                names[name] = _name_entry(series.kind, 0, failures, EMPTY_HIST, Dist(None))
            if series.kind == "request":
                request_failures += failures
                if n:
                    requests.add(interval)
                    low, high = nan_min(low, interval.min_value), nan_max(high, interval.max_value)
            if n:
                if self.keep_raw_intervals and series.raw_interval is not None:
                    raw[name] = encode_hist(series.raw_interval)
                series.fold()
        self.last_raw = raw
        self.last_raw_percentiles = raw_percentiles
        bucket = _bucket(t, bots_running, names, Dist(requests, low, high), request_failures)
        if bucket["count"]:
            bucket["hist"] = encode_hist(requests)
            clear_hist(requests)
        self.last_added = bucket
        old = self._fine.get(t)
        # a new dict: snapshots already handed out share the old one
        bucket = bucket if old is None else _combine([old, bucket], t, 1, bots_running)
        self._fine[t] = bucket
        self._age(t + 1)
        return bucket

    def _age(self, end: int) -> None:
        """Merge the seconds before `end` that are old enough into coarser buckets."""
        fine_limit = end - TIERS[1][1]
        if self._fine and self._aged_10 + 10 <= fine_limit:
            # nothing to merge before the oldest second kept: skip there at once
            oldest = next(iter(self._fine)) // 60 * 60
            if oldest > self._aged_10 and self._aged_10 % 60 == 0:
                self._aged_10 = oldest
        while self._aged_10 + 10 <= fine_limit:
            start = self._aged_10
            self._aged_10 += 10
            parts = [b for s in range(start, start + 10) if (b := self._fine.pop(s, None))]
            if parts:
                self._tens[start] = _combine(parts, start, 10, parts[-1]["bots"])
            if self._aged_10 % 60 == 0:
                self._close_minute(self._aged_10 - 60)
        ten_limit = end - TIERS[2][1]
        while self._aged_60 + 60 <= ten_limit and self._aged_60 + 60 <= self._aged_10:
            start = self._aged_60
            self._aged_60 += 60
            for s in range(start, start + 60, 10):
                self._tens.pop(s, None)
            minute = self._minutes.pop(start, None)
            if minute is not None:
                self._sixties[start] = minute

    def _close_minute(self, start: int) -> None:
        """A minute's 10 s buckets are complete: keep its 60 s summary for later, and
        summarise them (their histograms are dropped)."""
        parts = [self._tens[s] for s in range(start, start + 60, 10) if s in self._tens]
        if parts:
            self._minutes[start] = _summary(_combine(parts, start, 60, parts[-1]["bots"]))
            for part in parts:
                self._tens[part["t"]] = _summary(part)

    def snapshot(self, now: float, *, bots_running: int, active_seconds: float) -> dict[str, Any]:
        """Everything recorded so far, as plain data. It writes nothing.

        The cumulative figures include what was recorded since the last tick; the
        timeline holds the seconds already ticked. Timeline bucket dicts are
        shared between snapshots: treat a snapshot as read-only.
        """
        names = {}
        for name, series in sorted(self._series.items()):
            names[name] = series.summary(self._read_scratch)
        second = max(self._last_t, int(now - self.start_time))
        failures = [
            {
                "name": n,
                "kind": k,
                "message": m,
                "count": c,
                "first_bot": b,
                "first_t": second if t is None else t,  # not ticked yet: this second
            }
            for (n, k, m), (c, b, t) in self._failures.items()
        ]
        return {
            "version": SNAPSHOT_VERSION,
            "start_time": self.start_time,
            "now": now,
            "active_seconds": active_seconds,
            "bots_running": bots_running,
            "names": names,
            "failures": sorted_failures(failures),
            "counters": dict(sorted(self._counters.items())),
            "gauges": dict(sorted(self._gauges.items())),
            "timeline": [*self._sixties.values(), *self._tens.values(), *self._fine.values()],
        }


def _name_entry(kind: str, count: int, failures: int, hist: str, dist: Dist) -> dict[str, Any]:
    return {
        "kind": kind,
        "count": count,
        "failures": failures,
        **dist.percentiles(*ENTRY_PERCENTILES),
        "min": to_seconds(dist.min_us()),
        "max": to_seconds(dist.max_us()),
        "hist": hist,
    }


def _bucket(
    t: int, bots: int, names: dict[str, dict[str, Any]], dist: Dist, failures: int
) -> dict[str, Any]:
    return {
        "t": t,
        "span": 1,
        "bots": bots,
        "count": dist.total,
        "failures": failures,
        **dist.percentiles(*BUCKET_PERCENTILES),
        "min": to_seconds(dist.min_us()),
        "max": to_seconds(dist.max_us()),
        "hist": EMPTY_HIST,
        "names": names,
    }


def _combine_entries(entries: Sequence[Mapping[str, Any]], qs: tuple[float, ...]) -> dict[str, Any]:
    """The figures of several entries (bucket totals or one name's) as one entry.

    Exact when every entry has its histogram; otherwise (a summary among them)
    counts add, min and max are exact, and each percentile is the largest of
    the entries' (an upper bound), and the result is a summary (no ``hist``).
    """
    low = high = NAN
    for e in entries:
        low, high = nan_min(low, e.get("min", NAN)), nan_max(high, e.get("max", NAN))
    out: dict[str, Any] = {
        "count": sum(e["count"] for e in entries),
        "failures": sum(e["failures"] for e in entries),
    }
    hists = [e.get("hist") for e in entries]
    if all(h is not None for h in hists):
        enc, dist = sum_dist(hists, to_us(low), to_us(high))  # type: ignore[arg-type]
        out.update(dist.percentiles(*qs))
        out.update(min=to_seconds(dist.min_us()), max=to_seconds(dist.max_us()), hist=enc)
        return out
    for q in qs:
        label = format_percentile_label(q)
        value = NAN
        for e in entries:
            value = nan_max(value, e.get(label, NAN))
        out[label] = value
    out.update(min=low, max=high, hist=None)
    return out


def _combine(parts: Sequence[Mapping[str, Any]], t: int, span: int, bots: int) -> dict[str, Any]:
    """Buckets that fall within [t, t + span) as one bucket; the inputs are not modified."""
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for part in parts:
        for name, entry in part["names"].items():
            by_name.setdefault(name, []).append(entry)
    names = {}
    for name in sorted(by_name):
        entries = by_name[name]
        # "kind" came to timeline names later: a snapshot without it has requests only
        kind = next((e["kind"] for e in entries if e.get("kind")), "request")
        names[name] = {"kind": kind, **_combine_entries(entries, ENTRY_PERCENTILES)}
    totals = _combine_entries(parts, BUCKET_PERCENTILES)
    return {"t": t, "span": span, "bots": bots, **totals, "names": names}


def _summary(bucket: Mapping[str, Any]) -> dict[str, Any]:
    """A bucket without its histograms: fixed-size figures only."""
    names = {name: {**entry, "hist": None} for name, entry in bucket["names"].items()}
    return {**bucket, "hist": None, "names": names}


def _merge_timelines(*timelines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Several recorders' timelines as one: buckets of one second add up, and a bucket
    within a coarser bucket of another timeline (their boundaries are multiples of
    their spans) is merged into that one. ``bots`` is summed over the timelines, each
    giving the last value within the bucket."""
    spans = sorted({b.get("span", 1) for tl in timelines for b in tl}, reverse=True)
    present = {(b["t"], b.get("span", 1)) for tl in timelines for b in tl}
    groups: dict[tuple[int, int], list[tuple[int, Mapping[str, Any]]]] = {}
    for source, timeline in enumerate(timelines):
        for b in timeline:
            t, span = b["t"], b.get("span", 1)
            key = (t, span)
            for big in spans:
                if big > span and (t // big * big, big) in present:
                    key = (t // big * big, big)
                    break
            groups.setdefault(key, []).append((source, b))
    merged = []
    for (t, span), members in sorted(groups.items()):
        if len(members) == 1:
            merged.append(dict(members[0][1]))
            continue
        last: dict[int, int] = {}
        for source, b in sorted(members, key=lambda m: (m[0], m[1]["t"])):
            last[source] = b["bots"]
        merged.append(_combine([b for _, b in members], t, span, sum(last.values())))
    return merged


def bound_failures(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failure groups, most frequent first, at most `MAX_FAILURE_GROUPS` of them plus
    one `OTHER_KIND` group per name, which sums the counts of the groups left out.

    Example:
        >>> many = [{"name": "get", "kind": "OSError", "message": f"port {i}", "count": 1,
        ...          "first_bot": i, "first_t": 0} for i in range(MAX_FAILURE_GROUPS + 5)]
        >>> kept = bound_failures(many)
        >>> len(kept), kept[0]["kind"], kept[0]["count"]  # most frequent first
        (1001, 'Other', 5)
    """
    ordered = sorted_failures(failures)
    distinct = [f for f in ordered if f["kind"] != OTHER_KIND or f["message"] != OTHER_MESSAGE]
    if len(distinct) <= MAX_FAILURE_GROUPS:
        return ordered
    kept = distinct[:MAX_FAILURE_GROUPS]
    kept_ids = {id(f) for f in kept}
    others: dict[str, dict[str, Any]] = {}
    for f in ordered:
        if id(f) in kept_ids:
            continue
        other = others.get(f["name"])
        if other is None:
            others[f["name"]] = {**f, "kind": OTHER_KIND, "message": OTHER_MESSAGE}
        else:
            first = min(other, f, key=_first_key)
            other.update(
                count=other["count"] + f["count"],
                first_bot=first["first_bot"],
                first_t=first.get("first_t"),
            )
    return sorted_failures([*kept, *others.values()])


def _first_key(f: Mapping[str, Any]) -> tuple[float, bool, int]:
    # earliest second first; within it the lowest bot id, so merge is commutative
    first_t, bot = f.get("first_t"), f["first_bot"]
    return (math.inf if first_t is None else first_t, bot is None, -1 if bot is None else bot)


def _merge_name(x: Mapping[str, Any], y: Mapping[str, Any]) -> dict[str, Any]:
    raw_hist = None
    if x["raw_hist"] is not None or y["raw_hist"] is not None:
        raw_hist = sum_dist([x["raw_hist"] or x["hist"], y["raw_hist"] or y["hist"]])[0]
    return {
        "kind": "request" if "request" in (x["kind"], y["kind"]) else x["kind"],
        "count": x["count"] + y["count"],
        "failure_count": x["failure_count"] + y["failure_count"],
        "cancelled": x.get("cancelled", 0) + y.get("cancelled", 0),
        "hist": sum_dist([x["hist"], y["hist"]])[0],
        "raw_hist": raw_hist,
        "bytes_sent": x["bytes_sent"] + y["bytes_sent"],
        "bytes_received": x["bytes_received"] + y["bytes_received"],
        "min": nan_min(x.get("min", NAN), y.get("min", NAN)),
        "max": nan_max(x.get("max", NAN), y.get("max", NAN)),
    }



def merge_raw(
    raws: Sequence[Mapping[str, str]],
) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """One second's raw (uncorrected) histograms of several recorders, merged by name:
    each name's merged histogram, encoded, and its `ENTRY_PERCENTILES` in seconds
    (what `Recorder.tick` leaves in ``last_raw`` and ``last_raw_percentiles``).

    The counts add up exactly; the percentiles are read at the histograms'
    resolution (three significant figures), with no exact min and max to clamp to.

    Example:
        >>> a, b = Recorder(0.0), Recorder(0.0)
        >>> a.keep_raw_intervals = b.keep_raw_intervals = True
        >>> a.record_corrected("get", 9000, 1000); b.record_corrected("get", 9000, 3000)
        >>> _ = a.tick(0, bots_running=1), b.tick(0, bots_running=1)
        >>> raw, percentiles = merge_raw([a.last_raw, b.last_raw])
        >>> sorted(raw), percentiles["get"]["p50"], percentiles["get"]["p99"]
        (['get'], 0.001, 0.003001)
    """
    names: dict[str, list[str]] = {}
    for raw in raws:
        for name, encoded in raw.items():
            names.setdefault(name, []).append(encoded)
    merged: dict[str, str] = {}
    percentiles: dict[str, dict[str, float]] = {}
    for name, parts in sorted(names.items()):
        hist = new_hist()
        for encoded in parts:
            part = decode_hist(encoded)
            hist.add(part)
            release_hist(part)
        if hist.get_total_count():
            merged[name] = encode_hist(hist)
            percentiles[name] = Dist(hist).percentiles(*ENTRY_PERCENTILES)
        release_hist(hist)
    return merged, percentiles

def merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Merge two metrics snapshots, as if one recorder had seen both.

    Names are unioned and their histograms, counts and bytes added;
    failures are regrouped (``first_bot`` from the earlier first
    occurrence); timeline buckets with the same ``t`` are added (bots
    summed, percentiles recomputed); counters are summed and gauges keep
    the larger value. ``start_time`` is the min, ``now`` and
    ``active_seconds`` the max. Commutative and associative; the inputs
    are not modified.

    Example:
        >>> from trio_bots.metrics import Recorder, stats_from_snapshot
        >>> a, b = Recorder(0.0), Recorder(0.0)
        >>> a.record("ping", 1000)
        >>> b.record("ping", 3000)
        >>> _ = a.tick(0, bots_running=1), b.tick(0, bots_running=1)
        >>> m = merge(a.snapshot(1.0, bots_running=1, active_seconds=1.0),
        ...           b.snapshot(1.0, bots_running=1, active_seconds=1.0))
        >>> stats_from_snapshot(m)["ping"].count, m["timeline"][0]["bots"]
        (2, 2)
    """
    a, b = metrics_part(a), metrics_part(b)
    names: dict[str, dict[str, Any]] = {}
    for name in sorted(a["names"].keys() | b["names"].keys()):
        x, y = a["names"].get(name), b["names"].get(name)
        names[name] = dict(x or y) if x is None or y is None else _merge_name(x, y)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for f in itertools.chain(a["failures"], b["failures"]):
        key = (f["name"], f["kind"], f["message"])
        old = groups.get(key)
        if old is None:
            groups[key] = dict(f)
        else:
            first = min(old, f, key=_first_key)
            groups[key] = {
                **old,
                "count": old["count"] + f["count"],
                "first_bot": first["first_bot"],
                "first_t": first.get("first_t"),
            }
    counters = dict(a["counters"])
    for k, v in b["counters"].items():
        counters[k] = counters.get(k, 0) + v
    gauges = dict(a["gauges"])
    for k, v in b["gauges"].items():
        gauges[k] = max(gauges.get(k, v), v)
    return {
        "version": SNAPSHOT_VERSION,
        "start_time": min(a["start_time"], b["start_time"]),
        "now": max(a["now"], b["now"]),
        "active_seconds": max(a["active_seconds"], b["active_seconds"]),
        "bots_running": a["bots_running"] + b["bots_running"],
        "names": names,
        "failures": bound_failures(list(groups.values())),
        "counters": dict(sorted(counters.items())),
        "gauges": dict(sorted(gauges.items())),
        "timeline": _merge_timelines(a["timeline"], b["timeline"]),
    }
