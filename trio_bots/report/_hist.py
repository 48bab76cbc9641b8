"""Figures of bare encoded histograms, through the metrics' own `Stats` and helpers.

The per-second history needs the figures of a timeline bucket's histogram
and of the running sum of them. The histogram layout, its encoding and what
a NaN bound means are the metrics' (`trio_bots.metrics._hdr`), and `Stats`
reads the figures, so the percentile rules stay in one place.
"""

from __future__ import annotations

import math
from typing import Any

from ..metrics import Stats
from ..metrics._hdr import (
    EMPTY_HIST,
    decode_hist,
    encode_hist,
    nan_max,
    nan_min,
    new_hist,
    release_hist,
)


def hist_stats(encoded: str, count: int, low: Any = math.nan, high: Any = math.nan) -> Stats:
    """The latency figures (seconds) of one encoded histogram of *count* samples.

    *low* and *high* are the exact smallest and largest samples when
    known (the snapshots carry them as "min" and "max"; JSON as null
    when there are none).

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(start_time=0.0)
        >>> rec.record("login", 1500); rec.record("login", 2500)
        >>> login = rec.snapshot(1.0, bots_running=0, active_seconds=1.0)["names"]["login"]
        >>> s = hist_stats(login["hist"], login["count"], login["min"], login["max"])
        >>> s.count, s.min, s.max
        (2, 0.0015, 0.0025)
        >>> hist_stats(EMPTY_HIST, 0, None, None).max
        nan
    """
    return Stats("h", count=count, hists=(encoded,), low=_number(low), high=_number(high))


def _number(value: Any) -> float:
    # A report loaded from JSON has null where the snapshot had NaN.
    return float(value) if isinstance(value, int | float) else math.nan


class RunningHist:
    """A running sum of encoded histograms, with their exact min and max.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(start_time=0.0)
        >>> rec.record("a", 1000); rec.record("b", 3000)
        >>> names = rec.snapshot(1.0, bots_running=0, active_seconds=1.0)["names"]
        >>> running = RunningHist()
        >>> for entry in names.values():
        ...     running.add(entry["hist"], entry["min"], entry["max"])
        >>> running.add(EMPTY_HIST)  # no samples: nothing changes
        >>> running.count, running.low, running.high
        (2, 0.001, 0.003)
        >>> hist_stats(running.encoded(), running.count, running.low, running.high).max
        0.003
    """

    def __init__(self) -> None:
        self._hist = new_hist()
        self._encoded: str | None = EMPTY_HIST
        self.low = math.nan
        self.high = math.nan
        #: False once a summary (counts and bounds, no histogram) was added.
        self.exact = True
        self._summarised = 0

    @property
    def count(self) -> int:
        """The number of samples so far."""
        return int(self._hist.get_total_count()) + self._summarised

    def add_summary(self, count: int, low: Any = math.nan, high: Any = math.nan) -> None:
        """Add *count* samples known only by their bounds (an old timeline bucket's
        summary): the count and the bounds stay exact, the percentiles no longer do."""
        if not count:
            return
        self.low = nan_min(self.low, _number(low))
        self.high = nan_max(self.high, _number(high))
        self._summarised += count
        self.exact = False

    def add(self, encoded: str | None, low: Any = math.nan, high: Any = math.nan) -> None:
        """Add the samples of one encoded histogram, whose exact bounds are *low*, *high*.

        A NaN (or null) bound means "no samples", as in the snapshots, so
        it leaves the sum's bound as it was.
        """
        if not encoded or encoded == EMPTY_HIST:
            return
        other = decode_hist(encoded)
        if other.get_total_count():
            self.low = nan_min(self.low, _number(low))
            self.high = nan_max(self.high, _number(high))
            self._hist.add(other)
            self._encoded = None
        release_hist(other)

    def encoded(self) -> str:
        """The sum, encoded as the snapshots encode histograms."""
        if self._encoded is None:
            self._encoded = encode_hist(self._hist)
        return self._encoded
