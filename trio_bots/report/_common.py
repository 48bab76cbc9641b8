"""What every reporter shares: reading a run snapshot, rows, threshold results.

The reporters read the plain "run snapshot" dict (``SwarmResult.to_dict()``)
and nothing else, so a snapshot loaded back from JSON, or merged from
several processes, renders the same way. Figures are written by the
metrics' formatters (`trio_bots.metrics.format_value`), as in
`ThresholdResult`'s own text.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias

from .._errors import ConfigError
from ..metrics import Stats, StatsMap, format_duration, parse_threshold, stats_from_snapshot
from ..metrics._tags import parse_tags

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
        merged: how many fan-out names the line sums up (0 for a line of
            one name, or the total).
        tags: for a tag breakdown line (kind "tag"), its tag pairs.
    """

    name: str
    label: str
    kind: str
    stats: Stats
    raw: bool = False
    merged: int = 0
    tags: Mapping[str, str] | None = None

    @property
    def requests(self) -> int:
        """Every request, failed or not (Locust's "Request Count")."""
        return self.stats.count + self.stats.failure_count


TOTAL_NAME = "Aggregated"


def open_model_names(metrics: Mapping[str, Any]) -> set[str]:
    """The names whose corrected latency differs from the raw one."""
    names: Mapping[str, Any] = metrics.get("names", {})
    return {name for name, data in names.items() if data.get("raw_hist") is not None}


def tag_rows(stats: StatsMap, name: str, key: str | None = None) -> list[StatRow]:
    """The tag breakdown of `name`: a row per tag set, or per value of tag `key`.

    Rows are kind "tag", labelled ``region=eu`` (``(untagged)`` for what was
    recorded without tags); with `key`, each value's row aggregates every tag
    set that holds it, and tag sets without `key` are left out.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(0.0)
        >>> for key in ("get{region=eu,tier=a}", "get{region=eu,tier=b}", "get{region=us}"):
        ...     rec.record(key, 1000)
        >>> stats = stats_from_snapshot(rec.snapshot(1.0, bots_running=0, active_seconds=1.0))
        >>> [(r.label, r.stats.count) for r in tag_rows(stats, "get")]
        [('region=eu,tier=a', 1), ('region=eu,tier=b', 1), ('region=us', 1)]
        >>> [(r.label, r.stats.count) for r in tag_rows(stats, "get", "region")]
        [('region=eu', 2), ('region=us', 1)]
    """
    sets = stats.tagged(name)
    if not sets:
        return []
    kind = "tag"
    if key is None:
        return [
            StatRow(name, text or "(untagged)", kind, part, tags=parse_tags(text))
            for text, part in sorted(sets.items())
        ]
    values = sorted({v for text in sets if (v := parse_tags(text).get(key)) is not None})
    return [
        StatRow(name, f"{key}={v}", kind, stats.select(name, {key: v}), tags={key: v})
        for v in values
    ]


def tag_keys(stats: StatsMap) -> list[str]:
    """Every tag key of the run's names, sorted: the tag columns of the reports.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(0.0)
        >>> rec.record("get{region=eu,tier=a}", 1000); rec.record("put{zone=1}", 1000)
        >>> tag_keys(stats_from_snapshot(rec.snapshot(1.0, bots_running=0, active_seconds=1.0)))
        ['region', 'tier', 'zone']
    """
    return sorted({k for name in stats for text in stats.tagged(name) for k in parse_tags(text)})


def stat_rows(
    run: Mapping[str, Any],
    *,
    with_raw: bool = True,
    fanout_detail: bool = True,
    by_tag: str | None = None,
) -> list[StatRow]:
    """The stats rows of a run, in display order.

    Request names (sorted) come first, each followed by its raw row when
    it has one, then the "Aggregated" total of the request names, then the
    fan-out names, which the total leaves out. Without *fanout_detail*,
    two or more fan-out names (``group:<g>``, ``direct``, ``fanout``) make
    one row, their histograms summed exactly: see `fanout_label`. With
    *by_tag* (a tag key, or ``"*"`` for every tag set), each tagged request
    name is followed by its breakdown (`tag_rows`).
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
        if by_tag is not None and kind != "fanout":
            target.extend(tag_rows(stats, name, None if by_tag == "*" else by_tag))
    both = with_raw and bool(corrected)
    label = f"{TOTAL_NAME} (corrected)" if both else TOTAL_NAME
    total = [StatRow(TOTAL_NAME, label, "total", stats.total)]
    if both:
        total.append(StatRow(TOTAL_NAME, f"{TOTAL_NAME} (raw)", "total", stats.total.raw, True))
    fanout_names = sorted({row.name for row in fanouts})
    if not fanout_detail and len(fanout_names) > 1:
        label = fanout_label(fanout_names)
        merged = stats.combine(label, fanout_names, kind="fanout")
        fanouts = [StatRow(label, label, "fanout", merged, merged=len(fanout_names))]
    return [*requests, *total, *fanouts]


def fanout_label(names: Iterable[str]) -> str:
    """The label of the one row that sums up the fan-out *names*.

    Example:
        >>> fanout_label(["group:room-0", "group:room-1", "direct"])
        'fan-out (2 groups, direct)'
        >>> fanout_label(["group:lobby", "fanout"])
        'fan-out (1 group, fanout)'
    """
    names = list(names)
    groups = sum(1 for name in names if name.startswith("group:"))
    parts = [f"{groups} group{'' if groups == 1 else 's'}"] if groups else []
    parts += sorted(name for name in names if not name.startswith("group:"))
    return f"fan-out ({', '.join(parts)})"


def fanout_note(rows: Iterable[StatRow]) -> str:
    """The note under a stats table whose fan-out names share one row, else ``""``."""
    merged = max((row.merged for row in rows), default=0)
    if not merged:
        return ""
    return (
        f"fan-out: the latency of {merged} names in one row; fanout_detail=True "
        "(trio-bots run --fanout-detail) shows a row for each."
    )


def all_stats(run: Mapping[str, Any]) -> StatsMap:
    """The `StatsMap` of the run's metrics."""
    return stats_from_snapshot(run["metrics"])


#: The columns of the per-shard rows (``PREFIX_shards.csv``, the HTML "Shards" table).
SHARD_COLUMNS = (
    "Shard",
    "PID",
    "Bot ids",
    "Bots",
    "Requests",
    "Failures",
    "Cancelled",
    "CPU s",
    "Lost",
)


def shard_rows(run: Mapping[str, Any]) -> list[list[object]]:
    """A row per shard of a sharded run (`SHARD_COLUMNS`), then "Total"; none otherwise.

    Example:
        >>> run = {"shards": [
        ...     {"index": 0, "pid": 11, "first_bot": 0, "last_bot": 1, "count": 2,
        ...      "requests": 5, "failure_count": 1, "cancelled": 0, "cpu_seconds": 0.5,
        ...      "lost": None},
        ...     {"index": 1, "pid": 12, "first_bot": None, "last_bot": None, "count": 0,
        ...      "requests": 0, "failure_count": 0, "cancelled": 2, "cpu_seconds": 0.25,
        ...      "lost": "died: SIGKILL"}]}
        >>> for row in shard_rows(run):
        ...     print(row)
        [0, 11, '0-1', 2, 5, 1, 0, 0.5, '']
        [1, 12, '-', 0, 0, 0, 2, 0.25, 'died: SIGKILL']
        ['Total', '', '', 2, 5, 1, 2, 0.75, '']
    """
    rows: list[list[object]] = []
    sums = [0, 0, 0, 0]
    cpu = 0.0
    for row in run.get("shards") or ():
        first, last = row.get("first_bot"), row.get("last_bot")
        counts = [int(row.get(k, 0)) for k in ("count", "requests", "failure_count", "cancelled")]
        sums = [a + b for a, b in zip(sums, counts, strict=True)]
        cpu += float(row.get("cpu_seconds", 0.0))
        ids = "-" if first is None else f"{first}-{last}"
        rows.append(
            [
                row.get("index"),
                row.get("pid"),
                ids,
                *counts,
                float(row.get("cpu_seconds", 0.0)),
                row.get("lost") or "",
            ]
        )
    if rows:
        rows.append(["Total", "", "", *sums, round(cpu, 3), ""])
    return rows


def run_info(run: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``"run"`` section, empty when missing."""
    info: Mapping[str, Any] = run.get("run") or {}
    return info


def summary_line(run: Mapping[str, Any]) -> str:
    """The one-line summary of a run.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(start_time=0.0)
        >>> rec.record("login", 1000); rec.record_failure("login", "OSError", "reset", 3)
        >>> info = {"duration": 10.0, "size": 2, "bots_started": 2, "bots_finished": 2,
        ...         "dropped_messages": 1}
        >>> metrics = rec.snapshot(10.0, bots_running=0, active_seconds=10.0)
        >>> line = summary_line({"run": info, "metrics": metrics})
        >>> for part in line.split(", "):
        ...     print(part)
        duration 10.0 s
        bots 2 started / 2 finished (size 2)
        2 requests
        1 failures
        0 bot failures
        dropped 1 messages / 0 arrivals
        completed
    """
    info = run_info(run)
    total = all_stats(run).total
    status = "completed"
    if info.get("aborted"):
        status = "ABORTED"
    elif info.get("interrupted"):
        status = "interrupted"
    elif info.get("aborted_by") is not None:
        at = format_duration(float(info.get("aborted_at") or math.nan))
        status = f"STOPPED by threshold {info['aborted_by']} at {at} (abort on fail)"
    parts = [
        f"duration {format_duration(float(info.get('duration', math.nan)))}",
        f"bots {info.get('bots_started', 0)} started / {info.get('bots_finished', 0)} finished"
        f" (size {info.get('size', 0)})",
        f"{total.count + total.failure_count} requests",
        f"{total.failure_count} failures",
        *((f"{total.cancelled} cancelled",) if total.cancelled else ()),
        f"{len(info.get('bot_failures') or ())} bot failures",
        f"dropped {info.get('dropped_messages', 0)} messages"
        f" / {info.get('dropped_arrivals', 0)} arrivals",
        status,
    ]
    return ", ".join(parts)


def thresholds(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The threshold results of a run (possibly empty), each with its ``unit``.

    The unit is the one the result carries (`ThresholdResult.unit`); a
    result written without one (an older snapshot) gets its expression's
    `Threshold.base_unit`, or None when the expression does not parse.

    Example:
        >>> [r["unit"] for r in thresholds({"thresholds": [
        ...     {"expression": "p99 < 50ms", "measured": 0.08},
        ...     {"expression": "rps > 10", "measured": 12.0, "unit": "1/s"}]})]
        ['s', '1/s']
    """
    return [{**result, "unit": _unit(result)} for result in run.get("thresholds") or ()]


def _unit(result: Mapping[str, Any]) -> str | None:
    unit = result.get("unit")
    if isinstance(unit, str) and unit:
        return unit
    try:
        return parse_threshold(str(result.get("expression", ""))).base_unit
    except ConfigError:
        return None


def bucket_width(metrics: Mapping[str, Any], bucket: Mapping[str, Any]) -> float:
    """How many seconds a timeline bucket spans: its ``span`` (1 s in snapshots that
    predate spans), less for the last one when the run ended within it.

    Example:
        >>> bucket_width({"start_time": 0.0, "now": 125.5}, {"t": 120, "span": 10})
        5.5
        >>> bucket_width({"start_time": 0.0, "now": 125.5}, {"t": 3})
        1.0
    """
    span = float(bucket.get("span", 1))
    elapsed = float(metrics.get("now", 0.0)) - float(metrics.get("start_time", 0.0))
    width = elapsed - float(bucket["t"])
    return span if not 0 < width < span else width


def safe_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0.0 when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else 0.0


def write_atomic(path: Path, text: str) -> Path:
    """Write *text* to *path* all at once: a temporary file beside it, then a rename.

    A crash (even a SIGKILL) while writing leaves the previous file, or none,
    never a truncated one; an exception (a second Ctrl-C) removes the
    temporary file. The new file gets the mode that ``open(path, "w")`` gives.

    Example:
        >>> import pathlib, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = write_atomic(pathlib.Path(tmp) / "a.txt", "one\\n")
        ...     out.read_text(), sorted(p.name for p in pathlib.Path(tmp).iterdir())
        ('one\\n', ['a.txt'])
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it
    os.umask(mask)
    return mask
