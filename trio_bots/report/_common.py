"""What every reporter shares: reading a run snapshot, rows, units.

The reporters read the plain "run snapshot" dict (``SwarmResult.to_dict()``)
and nothing else, so a snapshot loaded back from JSON, or merged from
several processes, renders the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from .._errors import ConfigError
from ..metrics import Stats, StatsMap, stats_from_snapshot

SCHEMA = "trio-bots/1"

#: The percentiles every report shows (the console a subset of them).
CONSOLE_PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class SupportsToDict(Protocol):
    """Anything with a ``to_dict()`` giving a run snapshot (`SwarmResult`)."""

    def to_dict(self) -> Mapping[str, Any]: ...


RunLike: TypeAlias = "Mapping[str, Any] | SupportsToDict"


def as_run(run: RunLike) -> Mapping[str, Any]:
    """Return the run snapshot dict of *run*, or raise a teaching ConfigError."""
    if not isinstance(run, Mapping):
        to_dict = getattr(run, "to_dict", None)
        if callable(to_dict):
            run = to_dict()
    if not isinstance(run, Mapping) or run.get("schema") != SCHEMA or "metrics" not in run:
        found = run.get("schema") if isinstance(run, Mapping) else type(run).__name__
        raise ConfigError(
            f"expected a run snapshot with schema {SCHEMA!r}, got {found!r}; "
            "pass SwarmResult.to_dict() (or the result itself)"
        )
    return run


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
        scaled = value * scale
        text = _three_figures(scaled)
        # Past 999.5 the rounded figure reads "1000", so move up a unit.
        if float(text) < 1000:
            return f"{sign}{text} {unit}"
    return f"{sign}{_three_figures(value)} s"


def _three_figures(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_rate(value: float) -> str:
    """Format a rate (per second) compactly: ``1234.5`` -> ``"1234.5"``."""
    if math.isnan(value):
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def format_percentile_label(q: float) -> str:
    """``99.9`` -> ``"p99.9"``, ``50.0`` -> ``"p50"``."""
    return f"p{q:g}"


@dataclass(frozen=True)
class StatRow:
    """One line of a stats table.

    Attributes:
        name: the request name ("Aggregated" for the total).
        label: the name as shown; "(corrected)" and "(raw)" mark the two
            lines of a name whose latency was corrected for coordinated
            omission.
        kind: "request", "fanout" or "total".
        stats: the figures of the line.
        raw: True for the uncorrected (raw) figures of an open-model name.
    """

    name: str
    label: str
    kind: str
    stats: Stats
    raw: bool = False

    @property
    def requests(self) -> int:
        """Every request, failed or not (Locust's "Request Count")."""
        return self.stats.count + self.stats.failure_count


TOTAL_NAME = "Aggregated"


def open_model_names(metrics: Mapping[str, Any]) -> set[str]:
    """The names whose corrected latency differs from the raw one."""
    names: Mapping[str, Any] = metrics.get("names", {})
    return {name for name, data in names.items() if data.get("raw_hist") is not None}


def stat_rows(run: Mapping[str, Any], *, with_raw: bool = True) -> list[StatRow]:
    """The stats rows of a run, in display order.

    Request names (sorted) come first, each followed by its raw row when
    it has one, then the "Aggregated" total of the request names, then the
    fan-out names, which the total leaves out.
    """
    metrics = run["metrics"]
    stats = stats_from_snapshot(metrics)
    names: Mapping[str, Any] = metrics.get("names", {})
    corrected = open_model_names(metrics)
    requests: list[StatRow] = []
    fanouts: list[StatRow] = []
    for name in sorted(stats):
        kind = names.get(name, {}).get("kind", "request")
        target = fanouts if kind == "fanout" else requests
        both = with_raw and name in corrected
        label = f"{name} (corrected)" if both else name
        target.append(StatRow(name, label, kind, stats[name]))
        if both:
            target.append(StatRow(name, f"{name} (raw)", kind, stats[name].raw, raw=True))
    both = with_raw and bool(corrected)
    label = f"{TOTAL_NAME} (corrected)" if both else TOTAL_NAME
    total = [StatRow(TOTAL_NAME, label, "total", stats.total)]
    if both:
        total.append(StatRow(TOTAL_NAME, f"{TOTAL_NAME} (raw)", "total", stats.total.raw, True))
    return [*requests, *total, *fanouts]


def all_stats(run: Mapping[str, Any]) -> StatsMap:
    """The `StatsMap` of the run's metrics."""
    return stats_from_snapshot(run["metrics"])


def run_info(run: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``"run"`` section, empty when missing."""
    info: Mapping[str, Any] = run.get("run") or {}
    return info


def summary_line(run: Mapping[str, Any]) -> str:
    """The one-line summary of a run.

    Example: ``duration 10.0 s, bots 100 started / 100 finished (size 100),
    1200 requests, 3 failures, dropped 0 messages / 0 arrivals, completed``.
    """
    info = run_info(run)
    total = all_stats(run).total
    status = "completed"
    if info.get("aborted"):
        status = "ABORTED"
    elif info.get("interrupted"):
        status = "interrupted"
    parts = [
        f"duration {format_duration(float(info.get('duration', math.nan)))}",
        f"bots {info.get('bots_started', 0)} started / {info.get('bots_finished', 0)} finished"
        f" (size {info.get('size', 0)})",
        f"{total.count + total.failure_count} requests",
        f"{total.failure_count} failures",
        f"{len(info.get('bot_failures') or ())} bot failures",
        f"dropped {info.get('dropped_messages', 0)} messages"
        f" / {info.get('dropped_arrivals', 0)} arrivals",
        status,
    ]
    return ", ".join(parts)


_LATENCY_EXPRESSION = re.compile(r"^\s*(p\d+(\.\d+)?|avg|mean|min|max|med|median)\s*\(", re.I)


def is_latency_expression(expression: str) -> bool:
    """Whether a threshold expression measures a latency (in seconds)."""
    return bool(_LATENCY_EXPRESSION.match(expression))


def format_measured(expression: str, value: float | None) -> str:
    """A threshold's measured or required figure, in the expression's unit."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if is_latency_expression(expression):
        return format_duration(float(value))
    return f"{value:.4g}"


def thresholds(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The threshold results of a run (possibly empty)."""
    return list(run.get("thresholds") or ())


def bucket_width(metrics: Mapping[str, Any], t: int) -> float:
    """How many seconds timeline bucket *t* spans (the last may be partial)."""
    elapsed = float(metrics.get("now", 0.0)) - float(metrics.get("start_time", 0.0))
    width = elapsed - t
    return 1.0 if not 0 < width < 1 else width


def safe_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0.0 when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else 0.0
