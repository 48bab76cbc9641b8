"""Figures as text: one formatter for a value in its unit, shared by every report.

Every trio_bots figure is in a base unit, and a threshold result says which
(`ThresholdResult.unit`): seconds (``"s"``), a fraction from 0 to 1
(``"ratio"``), a rate per second (``"1/s"``) or a plain number
(``"count"``). `format_value` writes any of them with three significant
figures, the resolution of the histograms; NaN or None, meaning "nothing to
measure", is ``"-"``.

Example:
    >>> [format_value(x, unit) for x, unit in [(0.0817, "s"), (0.0095, "ratio"),
    ...                                        (812.25, "1/s"), (300.0, "count")]]
    ['81.7 ms', '0.95%', '812', '300']
"""

from __future__ import annotations

import math
from typing import Final

SECONDS: Final = "s"
RATIO: Final = "ratio"
PER_SECOND: Final = "1/s"
COUNT: Final = "count"
#: A plain value of the user's own (a gauge): six significant figures.
VALUE: Final = "value"
#: Every unit a figure can be in.
UNITS: Final = (SECONDS, RATIO, PER_SECOND, COUNT, VALUE)


def format_value(value: float | None, unit: str | None) -> str:
    """Format a figure given in the base *unit*, one of `UNITS`.

    Seconds get a readable time unit (`format_duration`), a ratio is shown
    in percent, a rate per second as a bare number (`format_rate`), a count
    as a whole number, a value (a gauge) with six significant figures. Any
    other unit, or None (a report written by hand), gives the bare number too.

    Args:
        value: the figure, in base units; None or NaN when there is none.
        unit: ``"s"``, ``"ratio"``, ``"1/s"``, ``"count"`` or ``"value"`` (`UNITS`).

    Example:
        >>> format_value(0.000125, "s"), format_value(0.25, "ratio"), format_value(None, "s")
        ('125 µs', '25%', '-')
        >>> format_value(1.0 / 3, "ratio"), format_value(2.5, "furlongs")
        ('33.3%', '2.5')
    """
    if value is None or math.isnan(value):
        return "-"
    if unit == SECONDS:
        return format_duration(value)
    if unit == RATIO:
        return f"{value * 100:.3g}%"
    if unit == PER_SECOND:
        return format_rate(value)
    if unit == COUNT:
        return f"{value:.0f}"
    return f"{value:.6g}"


def format_duration(seconds: float) -> str:
    """Format a time in seconds with a readable unit: µs, ms or s.

    The unit is chosen per value, with three significant figures (no
    fewer than the whole units). NaN, meaning "no samples", is ``"-"``.

    Args:
        seconds: a time in seconds, as every trio_bots figure is.

    Example:
        >>> [format_duration(x) for x in (0.000042, 0.0123, 0.5, 2.0, 125.0)]
        ['42.0 µs', '12.3 ms', '500 ms', '2.00 s', '125 s']
        >>> format_duration(float("nan"))
        '-'
    """
    if math.isnan(seconds):
        return "-"
    if math.isinf(seconds):
        return "inf s" if seconds > 0 else "-inf s"
    if seconds == 0:
        return "0 s"
    sign = "-" if seconds < 0 else ""
    value = abs(seconds)
    for scale, unit in ((1e6, "µs"), (1e3, "ms")):
        text = _three_figures(value * scale)
        # Past 999.5 the rounded figure reads "1000", so move up a unit.
        if float(text) < 1000:
            return f"{sign}{text} {unit}"
    return f"{sign}{_three_figures(value)} s"


def format_rate(value: float) -> str:
    """Format a rate per second with three significant figures (all the whole units).

    Example:
        >>> [format_rate(x) for x in (1234.5, 812.25, 15.25, 2.0, float("nan"))]
        ['1234', '812', '15.2', '2.00', '-']
    """
    if math.isnan(value):
        return "-"
    return _three_figures(value)


def _three_figures(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_percentile_label(q: float) -> str:
    """The label, and the JSON and snapshot key, of a percentile.

    Example:
        >>> [format_percentile_label(q) for q in (99.9, 50.0, 99)]
        ['p99.9', 'p50', 'p99']
    """
    return f"p{q:g}"
