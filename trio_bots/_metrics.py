"""Per-name latency histograms, counters and a per-second timeline.

The engine feeds one `Recorder` per swarm (integer microseconds in, on the
hot path); everything else reads *snapshots*: plain dicts holding only
numbers and encoded HDR histograms, so they pickle, travel between
processes and `merge` exactly. Outside this module every time is a float
in seconds, NaN when there are no samples.

Example:
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

import ctypes
import itertools
import math
import operator
import sys
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any, Final

from hdrh.histogram import HdrHistogram

from ._errors import ConfigError

__all__ = [
    "FailureGroup",
    "Recorder",
    "Stats",
    "StatsMap",
    "TimelineBucket",
    "TimelineName",
    "failures_from_snapshot",
    "merge",
    "stats_from_snapshot",
    "timeline_from_snapshot",
]

SNAPSHOT_VERSION: Final = 1
LOWEST_US: Final = 1
HIGHEST_US: Final = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS: Final = 3
_NAN: Final = math.nan  # one object, so equal snapshots compare equal as dicts


def _new_hist() -> Any:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def _clear(hist: Any) -> None:
    # HdrHistogram.reset() loops in Python over 23k counters (~0.7 ms); a memset is ~2 µs.
    counts = hist.counts
    if isinstance(counts, ctypes.Array):
        ctypes.memset(counts, 0, ctypes.sizeof(counts))
        hist.total_count = 0
        hist.min_value = sys.maxsize
        hist.max_value = 0
    else:  # pragma: no cover - another hdrh layout
        hist.reset()


def _encode(hist: Any) -> str:
    return str(hist.encode().decode("ascii"))


def _decode(encoded: str) -> Any:
    return HdrHistogram.decode(encoded)


_EMPTY_HIST: Final = _encode(_new_hist())


def _clamp(us: float) -> int:
    return max(LOWEST_US, min(HIGHEST_US, int(us)))


@cache
def _value_tables() -> tuple[list[int], list[int], list[int]]:
    """Lowest, highest and median equivalent µs value of every counts index."""
    proto = _proto()
    low = [proto.get_value_from_index(i) for i in range(proto.counts_len)]
    high = [proto.get_highest_equivalent_value(v) for v in low]
    mid = [lo + (hi - lo + 1) // 2 for lo, hi in zip(low, high, strict=True)]
    return low, high, mid


def same_bucket(a: float, b: float) -> bool:
    """Whether two latencies in seconds fall in one histogram bucket (are indistinguishable).

    Example:
        >>> same_bucket(0.099, 0.099007), same_bucket(0.001, 0.001001)
        (True, False)
    """
    a_us, b_us = (_clamp(round(x * 1e6)) for x in (a, b))
    return bool(_proto().values_are_equivalent(a_us, b_us))


@cache
def _proto() -> Any:
    return _new_hist()


class _Dist:
    """The counts of one histogram, summarised for fast reads (µs).

    hdrh's own percentile and mean loop over every counter in Python; here
    C-level slicing, `itertools.accumulate` and `bisect` do the work, with
    hdrh's semantics (a percentile is the highest value equivalent to the
    sample that reaches it). ``low``/``high`` are the exact smallest and
    largest samples when known: results are clamped into them, so a run of
    identical samples reads back exactly instead of at bucket resolution.
    """

    __slots__ = ("counts", "cumulative", "high", "low", "total")

    def __init__(self, hist: Any, low: float = _NAN, high: float = _NAN) -> None:
        self.total: int = 0 if hist is None else hist.get_total_count()
        self.low = low if low == low else -math.inf  # NaN: unknown
        self.high = high if high == high else math.inf
        if not self.total:
            self.counts: list[int] = []
            self.cumulative: list[int] = []
            return
        length = min(hist.counts_len, hist.get_counts_array_index(hist.get_max_value()) + 1)
        self.counts = hist.counts[:length]
        self.cumulative = list(itertools.accumulate(self.counts))
        if self.cumulative[-1] != self.total:  # defensive: trust the counters, not max_value
            self.counts = hist.counts[: hist.counts_len]
            self.cumulative = list(itertools.accumulate(self.counts))

    def _clamp(self, us: float) -> float:
        return float(max(self.low, min(self.high, us)))

    def percentile_us(self, q: float) -> float:
        if not self.total:
            return _NAN
        target = max(int(min(q, 100.0) * self.total / 100 + 0.5), 1)
        index = bisect_left(self.cumulative, target)
        low, high, _ = _value_tables()
        return self._clamp(high[index] if q else low[index])

    def mean_us(self) -> float:
        if not self.total:
            return _NAN
        mid = _value_tables()[2]
        return self._clamp(sum(map(operator.mul, self.counts, mid)) / self.total)

    def min_us(self) -> float:
        return self.percentile_us(0)

    def max_us(self) -> float:
        return self.percentile_us(100)

    def percentiles(self, *qs: float) -> dict[str, float]:
        """{"p50": seconds, ...} for the timeline."""
        return {f"p{q}": _seconds(self.percentile_us(q)) for q in qs}


def _seconds(us: float) -> float:
    return us / 1e6


def _us(seconds: float) -> float:
    return _NAN if seconds != seconds else float(round(seconds * 1e6))


def _min(a: float, b: float) -> float:
    """min() where NaN means "no samples"."""
    return b if a != a else a if b != b else min(a, b)


def _max(a: float, b: float) -> float:
    return b if a != a else a if b != b else max(a, b)


def _add_encoded(*encoded: str) -> tuple[str, Any]:
    """Add encoded histograms: (encoded sum, decoded sum or None when empty)."""
    parts = [enc for enc in encoded if enc != _EMPTY_HIST]
    if not parts:
        return _EMPTY_HIST, None
    total = _decode(parts[0])
    for enc in parts[1:]:
        total.add(_decode(enc))
    return (parts[0] if len(parts) == 1 else _encode(total)), total


class _Series:
    """Everything one name has recorded."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "cum",
        "cum_encoded",
        "failure_count",
        "interval",
        "interval_failures",
        "kind",
        "max_us",
        "min_us",
        "pending",
        "raw_cum",
        "raw_interval",
    )

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.interval: Any = _new_hist()
        self.cum: Any = _new_hist()
        self.cum_encoded: str | None = _EMPTY_HIST
        self.raw_interval: Any = None
        self.raw_cum: Any = None
        self.failure_count = 0
        self.interval_failures = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.min_us = sys.maxsize  # exact bounds of what is folded into cum
        self.max_us = 0
        self.pending: dict[int, int] = {}  # fan-out {µs: count}, flushed at tick()

    def record_clamped(self, us: int) -> None:
        self.interval.record_value(_clamp(us))
        if self.raw_interval is not None:
            self.raw_interval.record_value(_clamp(us))

    def fold(self) -> None:
        """Move the (non-empty) interval into the cumulative histograms."""
        # hdrh's record_value keeps the exact min/max; add() and decode() round them
        self.min_us = min(self.min_us, self.interval.min_value)
        self.max_us = max(self.max_us, self.interval.max_value)
        self.cum.add(self.interval)
        self.cum_encoded = None
        _clear(self.interval)
        if self.raw_interval is not None:
            self.raw_cum.add(self.raw_interval)
            _clear(self.raw_interval)


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
        >>> rec.tick(11.2, bots_running=1)
        >>> rec.snapshot(11.5, bots_running=1, active_seconds=1.5)["timeline"][0]["t"]
        1
    """

    def __init__(self, start_time: float) -> None:
        self._start = start_time
        self._series: dict[str, _Series] = {}
        # name -> bound record_value of its interval histogram: the whole hot path
        self._record: dict[str, Callable[[int], bool]] = {}
        self._pending: dict[str, dict[int, int]] = {}
        self._failures: dict[tuple[str, str, str], list[Any]] = {}  # [count, first_bot, first_t]
        self._new_failures: list[list[Any]] = []  # groups whose first_t the next tick sets
        self._counters: dict[str, int] = {}
        self._gauges: dict[str, float] = {}
        self._timeline: dict[int, dict[str, Any]] = {}
        self._last_t = 0
        self._scratch = _new_hist()

    def _get(self, name: str, kind: str = "request") -> _Series:
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = _Series(kind)
            self._record[name] = series.interval.record_value
            self._pending[name] = series.pending
        return series

    def record(self, name: str, latency_us: int) -> None:
        """Record one successful request of ``latency_us`` µs under ``name``."""
        try:
            record = self._record[name]
        except KeyError:
            self._get(name)
            record = self._record[name]
        # record_value takes 0 (we want 1) and refuses out-of-range values with False
        if not record(latency_us or 1):
            self._series[name].record_clamped(latency_us)

    def record_corrected(self, name: str, latency_us: int, raw_us: int) -> None:
        """Record a coordinated-omission-corrected latency and its raw one.

        The name's raw histogram starts as a copy of what it holds so far;
        later `record` calls go to both.
        """
        series = self._get(name)
        if series.raw_interval is None:
            series.raw_cum = _new_hist()
            series.raw_cum.add(series.cum)
            series.raw_interval = _new_hist()
            series.raw_interval.add(series.interval)
            main, raw = series.interval.record_value, series.raw_interval.record_value

            def both(us: int) -> bool:
                raw(us)
                return bool(main(us))

            self._record[name] = both
        series.interval.record_value(_clamp(latency_us))
        series.raw_interval.record_value(_clamp(raw_us))

    def record_failure(self, name: str, kind: str, message: str, bot_id: int | None) -> None:
        """Count one failed request, grouped by (name, kind, message)."""
        series = self._get(name)
        series.failure_count += 1
        series.interval_failures += 1
        group = self._failures.get((name, kind, message))
        if group is None:
            group = self._failures[(name, kind, message)] = [0, bot_id, None]
            self._new_failures.append(group)
        group[0] += 1

    def record_fanout(self, name: str, latency_us: int) -> None:
        """Record one message delivery latency; batched until the next tick."""
        try:
            pending = self._pending[name]
        except KeyError:
            pending = self._get(name, "fanout").pending
        pending[latency_us] = pending.get(latency_us, 0) + 1

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

    def tick(self, now: float, bots_running: int) -> None:
        """Fold the interval into the totals and the timeline bucket of ``now``.

        The bucket is second ``int(now - start_time)``, never earlier than
        the previous tick's; a second that already has a bucket is merged
        into (its ``bots`` becomes the latest value). A tick without
        activity still makes a bucket, for the bots-over-time chart.
        """
        t = self._last_t = max(self._last_t, int(now - self._start))
        for group in self._new_failures:
            group[2] = t
        self._new_failures.clear()
        names: dict[str, dict[str, Any]] = {}
        requests = self._scratch
        low = high = _NAN
        request_failures = 0
        for name, series in sorted(self._series.items()):
            interval = series.interval
            if series.pending:
                for us, n in series.pending.items():
                    interval.record_value(_clamp(us), n)
                series.pending.clear()
            n = interval.get_total_count()
            failures = series.interval_failures
            if not n and not failures:
                continue
            series.interval_failures = 0
            if n:
                dist = _Dist(interval, interval.min_value, interval.max_value)
                names[name] = _name_entry(n, failures, _encode(interval), dist)
            else:
                names[name] = _name_entry(0, failures, _EMPTY_HIST, _Dist(None))
            if series.kind == "request":
                request_failures += failures
                if n:
                    requests.add(interval)
                    low, high = _min(low, interval.min_value), _max(high, interval.max_value)
            if n:
                series.fold()
        bucket = _bucket(t, bots_running, names, _Dist(requests, low, high), request_failures)
        if bucket["count"]:
            bucket["hist"] = _encode(requests)
            _clear(requests)
        old = self._timeline.get(t)
        # a new dict: snapshots already handed out share the old one
        self._timeline[t] = bucket if old is None else _add_buckets(old, bucket, bots_running)

    def snapshot(self, now: float, *, bots_running: int, active_seconds: float) -> dict[str, Any]:
        """Flush (like `tick`) and return everything as plain data.

        Timeline bucket dicts are shared between snapshots: treat a
        snapshot as read-only.
        """
        self.tick(now, bots_running)
        names = {}
        for name, series in sorted(self._series.items()):
            if series.cum_encoded is None:
                series.cum_encoded = _encode(series.cum)
            count = series.cum.get_total_count()
            names[name] = {
                "kind": series.kind,
                "count": count,
                "failure_count": series.failure_count,
                "hist": series.cum_encoded,
                "raw_hist": None if series.raw_cum is None else _encode(series.raw_cum),
                "bytes_sent": series.bytes_sent,
                "bytes_received": series.bytes_received,
                "min": _seconds(series.min_us) if count else _NAN,
                "max": _seconds(series.max_us) if count else _NAN,
            }
        failures = [
            {"name": n, "kind": k, "message": m, "count": c, "first_bot": b, "first_t": t}
            for (n, k, m), (c, b, t) in self._failures.items()
        ]
        return {
            "version": SNAPSHOT_VERSION,
            "start_time": self._start,
            "now": now,
            "active_seconds": active_seconds,
            "bots_running": bots_running,
            "names": names,
            "failures": _sorted_failures(failures),
            "counters": dict(sorted(self._counters.items())),
            "gauges": dict(sorted(self._gauges.items())),
            "timeline": [self._timeline[t] for t in sorted(self._timeline)],
        }


def _name_entry(count: int, failures: int, hist: str, dist: _Dist) -> dict[str, Any]:
    return {
        "count": count,
        "failures": failures,
        **dist.percentiles(50, 99),
        "min": _seconds(dist.min_us()),
        "max": _seconds(dist.max_us()),
        "hist": hist,
    }


def _bucket(
    t: int, bots: int, names: dict[str, dict[str, Any]], dist: _Dist, failures: int
) -> dict[str, Any]:
    return {
        "t": t,
        "bots": bots,
        "count": dist.total,
        "failures": failures,
        **dist.percentiles(50, 95, 99),
        "min": _seconds(dist.min_us()),
        "max": _seconds(dist.max_us()),
        "hist": _EMPTY_HIST,
        "names": names,
    }


def _add_buckets(a: dict[str, Any], b: dict[str, Any], bots: int) -> dict[str, Any]:
    """Two buckets of the same second as one; the inputs are not modified."""
    names = dict(a["names"])
    for name, y in b["names"].items():
        x = names.get(name)
        if x is None:
            names[name] = y
            continue
        enc, hist = _add_encoded(x["hist"], y["hist"])
        dist = _Dist(hist, _us(_min(x["min"], y["min"])), _us(_max(x["max"], y["max"])))
        names[name] = _name_entry(x["count"] + y["count"], x["failures"] + y["failures"], enc, dist)
    enc, hist = _add_encoded(a["hist"], b["hist"])
    dist = _Dist(hist, _us(_min(a["min"], b["min"])), _us(_max(a["max"], b["max"])))
    bucket = _bucket(a["t"], bots, dict(sorted(names.items())), dist, a["failures"] + b["failures"])
    bucket["hist"] = enc
    return bucket


def _sorted_failures(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(failures, key=lambda f: (-f["count"], f["name"], f["kind"], f["message"]))


def _metrics_part(snapshot: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept a metrics snapshot or a run snapshot (``SwarmResult.to_dict()``)."""
    if "names" not in snapshot and isinstance(snapshot.get("metrics"), Mapping):
        snapshot = snapshot["metrics"]
    version = snapshot.get("version")
    if version != SNAPSHOT_VERSION:
        raise ConfigError(
            f"metrics snapshot version {version!r} is not supported (expected "
            f"{SNAPSHOT_VERSION}); read it with the trio_bots version that wrote it"
        )
    return snapshot


def _first_key(f: Mapping[str, Any]) -> tuple[float, bool, int]:
    # earliest second first; within it the lowest bot id, so merge is commutative
    first_t, bot = f.get("first_t"), f["first_bot"]
    return (math.inf if first_t is None else first_t, bot is None, -1 if bot is None else bot)


def _merge_name(x: Mapping[str, Any], y: Mapping[str, Any]) -> dict[str, Any]:
    raw_hist = None
    if x["raw_hist"] is not None or y["raw_hist"] is not None:
        raw_hist = _add_encoded(x["raw_hist"] or x["hist"], y["raw_hist"] or y["hist"])[0]
    return {
        "kind": "request" if "request" in (x["kind"], y["kind"]) else x["kind"],
        "count": x["count"] + y["count"],
        "failure_count": x["failure_count"] + y["failure_count"],
        "hist": _add_encoded(x["hist"], y["hist"])[0],
        "raw_hist": raw_hist,
        "bytes_sent": x["bytes_sent"] + y["bytes_sent"],
        "bytes_received": x["bytes_received"] + y["bytes_received"],
        "min": _min(x.get("min", _NAN), y.get("min", _NAN)),
        "max": _max(x.get("max", _NAN), y.get("max", _NAN)),
    }


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
        >>> a, b = Recorder(0.0), Recorder(0.0)
        >>> a.record("ping", 1000)
        >>> b.record("ping", 3000)
        >>> m = merge(a.snapshot(1.0, bots_running=1, active_seconds=1.0),
        ...           b.snapshot(1.0, bots_running=1, active_seconds=1.0))
        >>> stats_from_snapshot(m)["ping"].count, m["timeline"][0]["bots"]
        (2, 2)
    """
    a, b = _metrics_part(a), _metrics_part(b)
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
    timeline = {bucket["t"]: bucket for bucket in a["timeline"]}
    for bucket in b["timeline"]:
        old = timeline.get(bucket["t"])
        timeline[bucket["t"]] = (
            bucket if old is None else _add_buckets(old, bucket, old["bots"] + bucket["bots"])
        )
    return {
        "version": SNAPSHOT_VERSION,
        "start_time": min(a["start_time"], b["start_time"]),
        "now": max(a["now"], b["now"]),
        "active_seconds": max(a["active_seconds"], b["active_seconds"]),
        "bots_running": a["bots_running"] + b["bots_running"],
        "names": names,
        "failures": _sorted_failures(list(groups.values())),
        "counters": dict(sorted(counters.items())),
        "gauges": dict(sorted(gauges.items())),
        "timeline": [timeline[t] for t in sorted(timeline)],
    }


class Stats:
    """Read-only figures of one name (or of `StatsMap.total`).

    Counts and bytes are ints; times are float seconds, NaN when there are
    no successful samples (failed requests never enter the histogram).
    Percentiles and the mean have the histogram's 3-digit resolution
    (hdrh semantics: the highest value equivalent to the sample), clamped
    into the exact min and max. ``rps`` is ``(count + failure_count) /
    active_seconds``; with no active time it is 0.0 if nothing was
    recorded and NaN otherwise.

    Example:
        >>> rec = Recorder(0.0)
        >>> rec.record("get", 1500)
        >>> s = stats_from_snapshot(rec.snapshot(2.0, bots_running=0, active_seconds=2.0))["get"]
        >>> s.count, s.rps, s.mean, s.failure_rate
        (1, 0.5, 0.0015, 0.0)
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
        active_seconds: float = 0.0,
        hists: Iterable[str] = (),
        low: float = _NAN,
        high: float = _NAN,
        raw_hists: Iterable[str] | None = None,
        bytes_sent: int = 0,
        bytes_received: int = 0,
    ) -> None:
        self.name = name
        self.kind = kind
        self.count = count
        self.failure_count = failure_count
        self.active_seconds = active_seconds
        self.bytes_sent = bytes_sent
        self.bytes_received = bytes_received
        self._hists = tuple(hists)
        self._low, self._high = low, high  # exact bounds in seconds, NaN when unknown
        self._raw_hists = None if raw_hists is None else tuple(raw_hists)

    def __repr__(self) -> str:
        return (
            f"<Stats {self.name!r} count={self.count} failures={self.failure_count} "
            f"p50={self.percentile(50):.6g}s p99={self.percentile(99):.6g}s>"
        )

    @cached_property
    def _dist(self) -> _Dist:
        return _Dist(_add_encoded(*self._hists)[1], _us(self._low), _us(self._high))

    @property
    def rps(self) -> float:
        """Requests (successful and failed) per second of active time."""
        requests = self.count + self.failure_count
        if self.active_seconds > 0:
            return requests / self.active_seconds
        return 0.0 if requests == 0 else _NAN

    @property
    def failure_rate(self) -> float:
        """Failed requests over all requests, 0.0 .. 1.0; NaN with none."""
        requests = self.count + self.failure_count
        return self.failure_count / requests if requests else _NAN

    @property
    def mean(self) -> float:
        """Mean latency in seconds."""
        return _seconds(self._dist.mean_us())

    @property
    def min(self) -> float:
        """Smallest latency in seconds."""
        return _seconds(self._dist.min_us())

    @property
    def max(self) -> float:
        """Largest latency in seconds."""
        return _seconds(self._dist.max_us())

    def percentile(self, q: float) -> float:
        """The latency in seconds that ``q`` percent of samples do not exceed.

        Raises:
            ConfigError: if ``q`` is not a number from 0 to 100.
        """
        if not (isinstance(q, int | float) and 0 <= q <= 100):
            raise ConfigError(f"percentile must be a number from 0 to 100, got {q!r}")
        return _seconds(self._dist.percentile_us(q))

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
            active_seconds=self.active_seconds,
            hists=self._raw_hists,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
        )


class StatsMap(Mapping[str, Stats]):
    """`Stats` per name, plus `total` over the request (not fan-out) names.

    Example:
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
        parts = [s for s in self._stats.values() if s.kind == "request"]
        low = high = _NAN
        for s in parts:
            low, high = _min(low, s._low), _max(high, s._high)
        any_raw = any(s._raw_hists is not None for s in parts)
        return Stats(
            "total",
            count=sum(s.count for s in parts),
            failure_count=sum(s.failure_count for s in parts),
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
        >>> rec = Recorder(0.0)
        >>> stats_from_snapshot(rec.snapshot(0.0, bots_running=0, active_seconds=0.0)).total.rps
        0.0
    """
    snap = _metrics_part(snapshot)
    active = float(snap["active_seconds"])
    return StatsMap(
        {
            name: Stats(
                name,
                kind=d["kind"],
                count=d["count"],
                failure_count=d["failure_count"],
                active_seconds=active,
                hists=(d["hist"],),
                low=d.get("min", _NAN),
                high=d.get("max", _NAN),
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
        for f in _sorted_failures(list(_metrics_part(snapshot)["failures"]))
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
        >>> rec = Recorder(0.0)
        >>> rec.record("a", 2000)
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
        for b in sorted(_metrics_part(snapshot)["timeline"], key=operator.itemgetter("t"))
    ]
