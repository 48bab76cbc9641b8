"""HDR histogram helpers shared by the recorder, the readers (`_stats`) and the reports.

Latencies are integer microseconds in `hdrhistogram` histograms (3 significant
digits, 1 µs to 1 hour); snapshots carry them encoded as ASCII strings. This
module is the one place that declares that layout, the empty histogram and
what NaN means in a snapshot's ``min``/``max`` ("no samples").

Example:
    >>> h = new_hist()
    >>> h.record_value(1500)
    True
    >>> decode_hist(encode_hist(h)).get_total_count()
    1
"""

from __future__ import annotations

import ctypes
import itertools
import math
import operator
import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any, Final

from hdrh.histogram import HdrHistogram

from .._errors import ConfigError
from ._format import format_percentile_label

SNAPSHOT_VERSION: Final = 1
LOWEST_US: Final = 1
HIGHEST_US: Final = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS: Final = 3
NAN: Final = math.nan  # one object, so equal snapshots compare equal as dicts


def new_hist() -> Any:
    """An empty histogram of the snapshots' layout."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def clear_hist(hist: Any) -> None:
    """Empty *hist* in place, fast."""
    # HdrHistogram.reset() loops in Python over 23k counters (~0.7 ms); a memset is ~2 µs.
    counts = hist.counts
    if isinstance(counts, ctypes.Array):
        ctypes.memset(counts, 0, ctypes.sizeof(counts))
        hist.total_count = 0
        hist.min_value = sys.maxsize
        hist.max_value = 0
    else:  # pragma: no cover - another hdrh layout
        hist.reset()


def fast_record(hist: Any) -> Callable[..., bool]:
    """``hist.record_value`` in one Python call instead of hdrh's six.

    Same result for our layout (1 µs unit, 3 significant digits: 2048
    sub-buckets); any other layout gets hdrh's own method.
    """
    if (hist.unit_magnitude, hist.sub_bucket_half_count_magnitude) != (0, 10):
        return hist.record_value  # type: ignore[no-any-return]
    counts = hist.counts

    def record(us: int, n: int = 1) -> bool:
        if not 0 <= us <= HIGHEST_US:
            return False
        shift = us.bit_length() - 11
        if shift < 0:
            shift = 0
        counts[((shift + 1) << 10) + (us >> shift) - 1024] += n
        hist.total_count += n
        if us < hist.min_value:
            hist.min_value = us
        if us > hist.max_value:
            hist.max_value = us
        return True

    return record


def record_counts(hist: Any, counted: Mapping[int, int]) -> list[tuple[int, int]]:
    """Record each ``{µs: count}`` of `counted` into *hist*, in one Python loop with the
    index computed inline (no call per value); returns the ``(µs, count)`` pairs out of
    the range 1 µs .. `HIGHEST_US`, which it leaves to the caller to clamp.

    Example:
        >>> h = new_hist()
        >>> record_counts(h, {250: 3, 5000: 1, 0: 2})
        [(0, 2)]
        >>> h.get_total_count(), h.min_value, h.max_value
        (4, 250, 5000)
    """
    if (hist.unit_magnitude, hist.sub_bucket_half_count_magnitude) != (0, 10) or not counted:
        out = [(us, n) for us, n in counted.items() if not 1 <= us <= HIGHEST_US]
        for us, n in counted.items():
            if 1 <= us <= HIGHEST_US:
                hist.record_value(us, n)
        return out
    counts = hist.counts
    out = []
    total = 0
    for us, n in counted.items():
        if 0 < us < 2048:  # below 2048 µs the index is the value itself
            counts[us] += n
        elif 2048 <= us <= HIGHEST_US:
            shift = us.bit_length() - 11
            counts[((shift + 1) << 10) + (us >> shift) - 1024] += n
        else:
            out.append((us, n))
            continue
        total += n
    if total:
        low, high = min(counted), max(counted)
        if out:
            in_range = [us for us in counted if 1 <= us <= HIGHEST_US]
            low, high = min(in_range), max(in_range)
        hist.total_count += total
        if low < hist.min_value:
            hist.min_value = low
        if high > hist.max_value:
            hist.max_value = high
    return out


def encode_hist(hist: Any) -> str:
    """*hist* encoded as the snapshots carry it (ASCII)."""
    return str(hist.encode().decode("ascii"))


def decode_hist(encoded: str) -> Any:
    """The histogram of an `encode_hist` string."""
    return HdrHistogram.decode(encoded)


#: The encoding of a histogram with no samples.
EMPTY_HIST: Final = encode_hist(new_hist())


def clamp_us(us: float) -> int:
    """*us* as a whole number of µs within the histograms' range."""
    return max(LOWEST_US, min(HIGHEST_US, int(us)))


@cache
def _value_tables() -> tuple[array[int], array[int], array[int]]:
    """Lowest, highest and median equivalent µs value of every counts index.

    Arrays of machine ints, not lists: 0.6 MB instead of 2.5 MB for the life of the
    process, which shows in the memory a small swarm costs.
    """
    proto = _proto()
    low = array("q", (proto.get_value_from_index(i) for i in range(proto.counts_len)))
    high = array("q", (proto.get_highest_equivalent_value(v) for v in low))
    mid = array("q", (lo + (hi - lo + 1) // 2 for lo, hi in zip(low, high, strict=True)))
    return low, high, mid


def same_bucket(a: float, b: float) -> bool:
    """Whether two latencies in seconds fall in one histogram bucket (are indistinguishable).

    Example:
        >>> same_bucket(0.099, 0.099007), same_bucket(0.001, 0.001001)
        (True, False)
    """
    a_us, b_us = (clamp_us(round(x * 1e6)) for x in (a, b))
    return bool(_proto().values_are_equivalent(a_us, b_us))


@cache
def _proto() -> Any:
    return new_hist()


class Dist:
    """The counts of one histogram, summarised for fast reads (µs).

    hdrh's own percentile and mean loop over every counter in Python; here
    C-level slicing, `itertools.accumulate` and `bisect` do the work, with
    hdrh's semantics (a percentile is the highest value equivalent to the
    sample that reaches it). ``low``/``high`` are the exact smallest and
    largest samples when known: results are clamped into them, so a run of
    identical samples reads back exactly instead of at bucket resolution.
    """

    __slots__ = ("counts", "cumulative", "first", "high", "low", "total")

    def __init__(self, hist: Any, low: float = NAN, high: float = NAN) -> None:
        self.total: int = 0 if hist is None else hist.get_total_count()
        self.low = low if low == low else -math.inf  # NaN: unknown
        self.high = high if high == high else math.inf
        self.first = 0  # the counts index of counts[0]: only [min, max] is read
        if not self.total:
            self.counts: list[int] = []
            self.cumulative: list[int] = []
            return
        length = min(hist.counts_len, hist.get_counts_array_index(hist.get_max_value()) + 1)
        lowest = hist.get_min_value()
        if 0 < lowest <= hist.get_max_value():
            self.first = min(hist.get_counts_array_index(lowest), length - 1)
        self.counts = hist.counts[self.first : length]
        self.cumulative = list(itertools.accumulate(self.counts))
        if self.cumulative[-1] != self.total:  # defensive: trust the counters, not min/max
            self.first = 0
            self.counts = hist.counts[: hist.counts_len]
            self.cumulative = list(itertools.accumulate(self.counts))

    def _clamp(self, us: float) -> float:
        return float(max(self.low, min(self.high, us)))

    def percentile_us(self, q: float) -> float:
        if not self.total:
            return NAN
        target = max(int(min(q, 100.0) * self.total / 100 + 0.5), 1)
        index = bisect_left(self.cumulative, target) + self.first
        low, high, _ = _value_tables()
        return self._clamp(high[index] if q else low[index])

    def mean_us(self) -> float:
        if not self.total:
            return NAN
        mid = _value_tables()[2][self.first : self.first + len(self.counts)]
        return self._clamp(sum(map(operator.mul, self.counts, mid)) / self.total)

    def min_us(self) -> float:
        return self.percentile_us(0)

    def max_us(self) -> float:
        return self.percentile_us(100)

    def percentiles(self, *qs: float) -> dict[str, float]:
        """{"p50": seconds, ...} for the timeline."""
        return {format_percentile_label(q): to_seconds(self.percentile_us(q)) for q in qs}


class SecondsHistogram:
    """Durations in seconds, kept as µs in an HDR histogram of the snapshots' layout.

    For the engine's own health figures (the open model's dispatch lateness):
    one `fast_record` call per sample, fixed memory however long the run.

    Example:
        >>> h = SecondsHistogram()
        >>> for ms in range(1, 101):
        ...     h.record(ms / 1000)
        >>> h.count, round(h.percentile(99), 3), round(h.percentile(100), 3)  # 3 digits
        (100, 0.099, 0.1)
        >>> import math; math.isnan(SecondsHistogram().percentile(99))
        True
    """

    __slots__ = ("_hist", "_record")

    def __init__(self) -> None:
        self._hist = new_hist()
        self._record = fast_record(self._hist)

    def record(self, seconds: float) -> None:
        """Add one sample (clamped into 1 µs .. 1 hour)."""
        self._record(clamp_us(seconds * 1e6))

    @property
    def count(self) -> int:
        """How many samples were recorded."""
        return int(self._hist.total_count)

    def percentile(self, q: float) -> float:
        """The `q`-th percentile in seconds (0 < q <= 100); NaN with no samples."""
        return to_seconds(Dist(self._hist).percentile_us(q))


def to_seconds(us: float) -> float:
    """µs to seconds (NaN stays NaN)."""
    return us / 1e6


def to_us(seconds: float) -> float:
    """Seconds to whole µs, as a float; NaN stays NaN."""
    return NAN if seconds != seconds else float(round(seconds * 1e6))


def nan_min(a: float, b: float) -> float:
    """min() of two bounds where NaN means "no samples": it yields to the other.

    Example:
        >>> nan_min(NAN, 0.002), nan_min(0.001, 0.002), nan_max(0.001, NAN)
        (0.002, 0.001, 0.001)
    """
    return b if a != a else a if b != b else min(a, b)


def nan_max(a: float, b: float) -> float:
    """max() of two bounds where NaN means "no samples", as `nan_min`."""
    return b if a != a else a if b != b else max(a, b)


def release_hist(hist: Any) -> None:
    """Break hdrh's histogram <-> encoder reference cycle, so that *hist* is freed as
    soon as it is dropped instead of at the next run of the cycle collector.

    Call it on a histogram that is no longer needed: it cannot be encoded after.

    Example:
        >>> h = new_hist()
        >>> release_hist(h)
        >>> h.encoder.histogram is None
        True
    """
    encoder = getattr(hist, "encoder", None)
    if encoder is not None:
        encoder.histogram = None


def add_encoded(*encoded: str) -> tuple[str, Any]:
    """Add encoded histograms: (encoded sum, decoded sum or None when empty).

    The decoded parts are released (`release_hist`); the caller releases the sum.
    """
    parts = [enc for enc in encoded if enc != EMPTY_HIST]
    if not parts:
        return EMPTY_HIST, None
    total = decode_hist(parts[0])
    for enc in parts[1:]:
        part = decode_hist(enc)
        total.add(part)
        release_hist(part)
    return (parts[0] if len(parts) == 1 else encode_hist(total)), total


def sum_dist(encoded: Iterable[str], low: float = NAN, high: float = NAN) -> tuple[str, Dist]:
    """The encoded sum of encoded histograms and its `Dist`, with no histogram left
    behind for the cycle collector.

    Example:
        >>> a, b = new_hist(), new_hist()
        >>> _ = a.record_value(1000), b.record_value(3000)
        >>> enc, dist = sum_dist([encode_hist(a), encode_hist(b)], 1000, 3000)
        >>> dist.total, dist.max_us(), decode_hist(enc).get_total_count()
        (2, 3000.0, 2)
    """
    enc, hist = add_encoded(*encoded)
    dist = Dist(hist, low, high)
    if hist is not None:
        release_hist(hist)
    return enc, dist


def metrics_part(snapshot: Mapping[str, Any]) -> Mapping[str, Any]:
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


def sorted_failures(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failure groups, most frequent first (ties by name, kind, message)."""
    return sorted(failures, key=lambda f: (-f["count"], f["name"], f["kind"], f["message"]))
