"""Figures of bare encoded histograms, through the metrics' own `Stats`.

The per-second history needs the figures of a timeline bucket's histogram
and of the running sum of them; wrapping each in a one-name snapshot keeps
the percentile rules in one place (`trio_bots.metrics`).
"""

from __future__ import annotations

import math
from typing import Any

from hdrh.histogram import HdrHistogram

from ..metrics import Stats, stats_from_snapshot

# The metrics spec's histograms: integer µs from 1 µs to one hour, 3 digits.
_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000
_DIGITS = 3


def hist_stats(encoded: str, count: int, low: Any = math.nan, high: Any = math.nan) -> Stats:
    """The latency figures (seconds) of one encoded histogram of *count* samples.

    *low* and *high* are the exact smallest and largest samples when
    known (the snapshots carry them as "min" and "max").

    Example:
        >>> running = RunningHist()
        >>> hist_stats(running.encoded(), running.count).max
        nan
    """
    snapshot = {
        "version": 1,
        "active_seconds": 0.0,
        "names": {
            "h": {
                "kind": "request",
                "count": count,
                "failure_count": 0,
                "hist": encoded,
                "raw_hist": None,
                "bytes_sent": 0,
                "bytes_received": 0,
                "min": _number(low),
                "max": _number(high),
            }
        },
    }
    return stats_from_snapshot(snapshot)["h"]


def _number(value: Any) -> float:
    # A report loaded from JSON has null where the snapshot had NaN.
    return float(value) if isinstance(value, int | float) else math.nan


class RunningHist:
    """A running sum of encoded histograms, with their exact min and max.

    Example:
        >>> a, b = RunningHist(), RunningHist()
        >>> b.add(a.encoded())
        >>> b.count
        0
    """

    def __init__(self) -> None:
        self._hist = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)
        self._encoded: str | None = None
        self.low = math.nan
        self.high = math.nan

    @property
    def count(self) -> int:
        """The number of samples so far."""
        return int(self._hist.get_total_count())

    def add(self, encoded: str | None, low: Any = math.nan, high: Any = math.nan) -> None:
        """Add the samples of one encoded histogram, whose exact bounds are *low*, *high*."""
        if not encoded:
            return
        other = HdrHistogram.decode(encoded)
        if not other.get_total_count():
            return
        low, high = _number(low), _number(high)
        if self.count:
            # An unknown (NaN) bound of any part leaves the sum's unknown.
            low = math.nan if math.isnan(self.low) else min(low, self.low)
            high = math.nan if math.isnan(self.high) else max(high, self.high)
        self.low, self.high = low, high
        self._hist.add(other)
        self._encoded = None

    def encoded(self) -> str:
        """The sum, encoded as the snapshots encode histograms."""
        if self._encoded is None:
            self._encoded = str(self._hist.encode().decode("ascii"))
        return self._encoded
