"""The CSV report: Locust's files, columns and units (milliseconds).

``PREFIX_stats.csv``, ``PREFIX_failures.csv`` and ``PREFIX_history.csv``
use Locust's column names, so tools written for ``locust --csv`` read them.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..metrics import Stats, failures_from_snapshot, format_percentile_label
from ._common import (
    SHARD_COLUMNS,
    TOTAL_NAME,
    RunLike,
    all_stats,
    as_run,
    bucket_width,
    run_info,
    safe_ratio,
    shard_rows,
    stat_rows,
    tag_keys,
    tag_rows,
    write_atomic,
)
from ._hist import RunningHist, hist_stats

#: Locust's PERCENTILES_TO_REPORT, as percentages.
CSV_PERCENTILES = (50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0)
_PERCENTILE_COLUMNS = [f"{q:g}%" for q in CSV_PERCENTILES]

STATS_COLUMNS = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    *_PERCENTILE_COLUMNS,
    "Cancelled Count",  # ours: after Locust's columns, so its readers keep working
]
FAILURES_COLUMNS = ["Method", "Name", "Error", "Occurrences"]
HISTORY_COLUMNS = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *_PERCENTILE_COLUMNS,
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]
_NA = "N/A"


def write_csv(
    run: RunLike, prefix: str | os.PathLike[str], *, full_history: bool = False
) -> list[Path]:
    """Write ``PREFIX_stats.csv``, ``PREFIX_failures.csv`` and ``PREFIX_history.csv``,
    ``PREFIX_tags.csv`` when the run has tagged names, and ``PREFIX_shards.csv``
    when it ran over several shards.

    The columns are Locust's and every time is in **milliseconds**, as in
    Locust. "Request Count" counts every request, failed or not, as
    Locust does; the latency columns are of the successful requests. The
    last stats row is "Aggregated", over every request name (fan-out names
    are listed before it with Type "fanout", but left out of it). The history has
    an "Aggregated" row per second of the run, preceded by a row per active
    name with *full_history* (Locust's ``--csv-full-history``).

    ``PREFIX_tags.csv`` has a row per tag set of each tagged name: "Type",
    "Name", then a column per tag key (empty where the set has no such tag),
    then the figures of ``PREFIX_stats.csv``. ``PREFIX_shards.csv`` has a row per
    shard (bots, requests, failures, cancelled measures, CPU seconds, why it was
    lost) and a "Total" row.

    Args:
        run: the run snapshot (``SwarmResult.to_dict()``), or the result.
        prefix: the path prefix of the three files, e.g. ``"out/run1"``.
        full_history: also write each name's row for every second.

    Returns:
        The paths written, in that order (three, then the tags and shards files
        when written).

    Raises:
        ConfigError: *run* is not a run snapshot.

    Example:
        >>> import csv, tempfile, pathlib
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(start_time=0.0)
        >>> rec.record("login", 1500)
        >>> _ = rec.tick(0, bots_running=1)
        >>> run = {"schema": "trio-bots/1", "time_unit": "s", "thresholds": [],
        ...        "run": {"started_wall": 1.7e9, "duration": 1.0},
        ...        "metrics": rec.snapshot(1.0, bots_running=0, active_seconds=1.0)}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     stats, failures, history = write_csv(run, pathlib.Path(tmp) / "run")
        ...     rows = list(csv.DictReader(stats.read_text().splitlines()))
        >>> [(r["Name"], r["Request Count"], r["99%"]) for r in rows]
        [('login', '1', '1.5'), ('Aggregated', '1', '1.5')]
    """
    data = as_run(run)
    base = os.fspath(prefix)
    paths = [Path(f"{base}_{suffix}.csv") for suffix in ("stats", "failures", "history")]
    _write(paths[0], STATS_COLUMNS, _stats_rows(data))
    _write(paths[1], FAILURES_COLUMNS, _failure_rows(data))
    _write(paths[2], HISTORY_COLUMNS, _history_rows(data, full_history))
    stats = all_stats(data)
    keys = tag_keys(stats)
    if keys:
        paths.append(Path(f"{base}_tags.csv"))
        columns = [*STATS_COLUMNS[:2], *keys, *STATS_COLUMNS[2:]]
        _write(paths[-1], columns, _tag_rows(data, stats, keys))
    shards = shard_rows(data)
    if shards:
        paths.append(Path(f"{base}_shards.csv"))
        _write(paths[-1], SHARD_COLUMNS, shards)
    return paths


def _tag_rows(run: Mapping[str, Any], stats: Any, keys: Sequence[str]) -> list[list[object]]:
    active = float(run["metrics"].get("active_seconds", 0.0))
    rows = []
    for name in sorted(stats):
        for row in tag_rows(stats, name):
            tags = row.tags or {}
            [line] = _figure_rows([row], active)
            rows.append([*line[:2], *(tags.get(k, "") for k in keys), *line[2:]])
    return rows


def _write(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(columns)
    writer.writerows(rows)
    write_atomic(path, text.getvalue())


def _ms(seconds: float) -> float:
    # HDR values are whole µs, so three decimals keep them exact.
    return round(seconds * 1000.0, 3)


def _ms_or_zero(seconds: float) -> float:
    # Locust writes 0, not N/A, in its median/average/min/max columns.
    return 0 if math.isnan(seconds) else _ms(seconds)


def _type(kind: str) -> str:
    return "" if kind == "total" else kind


def _stats_rows(run: Mapping[str, Any]) -> list[list[object]]:
    active = float(run["metrics"].get("active_seconds", 0.0))
    rows_in_order = stat_rows(run, with_raw=False)
    # Locust's readers expect "Aggregated" last; fan-out names come before it.
    rows_in_order.sort(key=lambda row: row.kind == "total")
    return _figure_rows(rows_in_order, active)


def _figure_rows(rows_in_order: Iterable[Any], active: float) -> list[list[object]]:
    rows: list[list[object]] = []
    for row in rows_in_order:
        s = row.stats
        percentiles: list[object] = [_NA] * len(CSV_PERCENTILES)
        if s.count:
            percentiles = [_ms(s.percentile(q)) for q in CSV_PERCENTILES]
        rows.append(
            [
                _type(row.kind),
                row.name,
                row.requests,
                s.failure_count,
                *_summary(s),
                safe_ratio(s.bytes_received, row.requests),
                s.rps,
                safe_ratio(s.failure_count, active),
                *percentiles,
                s.cancelled,
            ]
        )
    return rows


def _summary(s: Stats) -> list[float]:
    """Median, average, min and max in ms."""
    return [_ms_or_zero(x) for x in (s.percentile(50.0), s.mean, s.min, s.max)]


def _summary_percentile(entry: Mapping[str, Any], q: float) -> object:
    """A percentile of a summarised bucket: kept for a few (p50, p90, p99, p99.9), max for
    p100, N/A for the others."""
    value = entry.get("max" if q == 100 else format_percentile_label(q))
    return _ms(value) if isinstance(value, int | float) else _NA


def _running_summary(total: RunningHist) -> list[object]:
    """The running median, average, min and max; the median and average are N/A once a
    summarised bucket (no histogram) is in the sum."""
    s = hist_stats(total.encoded(), total.count, total.low, total.high)
    if total.exact:
        return list(_summary(s))
    return [_NA, _NA, _ms_or_zero(total.low), _ms_or_zero(total.high)]


def _failure_rows(run: Mapping[str, Any]) -> list[list[object]]:
    names: Mapping[str, Any] = run["metrics"].get("names", {})
    return [
        [
            names.get(group.name, {}).get("kind", "request"),
            group.name,
            f"{group.kind}: {group.message}",
            group.count,
        ]
        for group in failures_from_snapshot(run["metrics"])
    ]


def _history_rows(run: Mapping[str, Any], full_history: bool) -> list[list[object]]:
    metrics = run["metrics"]
    kinds = {name: data.get("kind", "request") for name, data in metrics.get("names", {}).items()}
    started = run_info(run).get("started_wall")
    wall = float(started) if isinstance(started, int | float) else 0.0
    # name -> (running histogram, [requests, failures]) for the "Total ..." columns
    running: dict[str, tuple[RunningHist, list[int]]] = {}
    rows: list[list[object]] = []
    for bucket in metrics.get("timeline", ()):
        t = int(bucket["t"])
        width = bucket_width(metrics, bucket)
        entries = [
            (name, kinds.get(name, "request"), entry)
            for name, entry in sorted(bucket.get("names", {}).items())
            if full_history
        ]
        entries.append((TOTAL_NAME, "total", bucket))
        for name, kind, entry in entries:
            total, counts = running.setdefault(name, (RunningHist(), [0, 0]))
            low, high = entry.get("min"), entry.get("max")
            counts[0] += entry["count"] + entry["failures"]
            counts[1] += entry["failures"]
            if entry.get("hist") is None:  # an old bucket's summary: no histogram
                total.add_summary(entry["count"], low, high)
                percentiles = [_summary_percentile(entry, q) for q in CSV_PERCENTILES]
            else:
                total.add(entry["hist"], low, high)
                interval = hist_stats(entry["hist"], entry["count"], low, high)
                percentiles = [_ms(interval.percentile(q)) for q in CSV_PERCENTILES]
            rows.append(
                [
                    int(wall + t),
                    bucket["bots"],
                    _type(kind),
                    name,
                    round(safe_ratio(entry["count"] + entry["failures"], width), 3),
                    round(safe_ratio(entry["failures"], width), 3),
                    *(percentiles if entry["count"] else [_NA] * len(CSV_PERCENTILES)),
                    counts[0],
                    counts[1],
                    *_running_summary(total),
                    # Bytes are not kept per second: the stats file has the average.
                    _NA,
                ]
            )
    return rows
