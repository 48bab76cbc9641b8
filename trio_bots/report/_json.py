"""The JSON report: schema "trio-bots/1", times in seconds.

The document is the run snapshot itself (so it can be rendered again or
merged) plus derived, ready-to-read sections. docs/reports.md documents
every field.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ..metrics import Stats, failures_from_snapshot, format_percentile_label
from ._common import (
    SCHEMA,
    RunLike,
    all_stats,
    as_run,
    bucket_width,
    open_model_names,
    run_info,
    safe_ratio,
    tag_keys,
    tag_rows,
    thresholds,
    write_atomic,
)

#: The percentiles of each name in the JSON report, and their keys.
JSON_PERCENTILES = (50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99)


def to_json_dict(run: RunLike) -> dict[str, Any]:
    """Build the JSON report of a run as plain, strictly JSON-valid data.

    NaN ("no samples") becomes ``null``; every time is in seconds.

    Args:
        run: the run snapshot (``SwarmResult.to_dict()``), or the result.

    Returns:
        A dict with ``schema`` ("trio-bots/1"), ``time_unit`` ("s"),
        ``run``, ``stats``, ``total``, ``tag_keys`` and ``tag_stats`` (a
        row per tag set of each tagged name, with its ``name`` and ``tags``),
        ``failures``, ``timeline``,
        ``thresholds`` (each with the ``unit`` of its figures: ``"s"``,
        ``"ratio"``, ``"1/s"`` or ``"count"``), ``counters``, ``gauges`` and
        ``metrics`` (the raw snapshot, histograms included). See docs/reports.md.

    Raises:
        ConfigError: *run* is not a run snapshot.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(start_time=0.0)
        >>> rec.record("login", 2000)
        >>> check = {"expression": "p99 < 50ms", "passed": True, "measured": 0.002,
        ...          "required": 0.05, "unit": "s"}
        >>> run = {"schema": "trio-bots/1", "time_unit": "s", "thresholds": [check],
        ...        "run": {"started_wall": 0.0, "duration": 1.0},
        ...        "metrics": rec.snapshot(1.0, bots_running=0, active_seconds=1.0)}
        >>> doc = to_json_dict(run)
        >>> doc["schema"], doc["stats"]["login"]["count"], doc["stats"]["login"]["max"]
        ('trio-bots/1', 1, 0.002)
        >>> doc["thresholds"][0]["unit"]
        's'
    """
    data = as_run(run)
    metrics = data["metrics"]
    stats = all_stats(data)
    corrected = open_model_names(metrics)
    names: Mapping[str, Any] = metrics.get("names", {})
    info = dict(run_info(data))
    started = info.get("started_wall")
    if isinstance(started, int | float) and math.isfinite(started):
        info["started_iso"] = datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat()
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "time_unit": "s",
        "run": info,
        "stats": {
            name: _stats_entry(
                stats[name],
                kind=names.get(name, {}).get("kind", "request"),
                hist=names.get(name, {}).get("hist"),
                raw_hist=names.get(name, {}).get("raw_hist"),
                corrected=name in corrected,
            )
            for name in sorted(stats)
        },
        "total": _stats_entry(
            stats.total, kind="total", hist=None, raw_hist=None, corrected=bool(corrected)
        ),
        "tag_keys": tag_keys(stats),
        "tag_stats": [
            {
                "name": row.name,
                "tags": dict(row.tags or {}),
                **_stats_entry(
                    row.stats,
                    kind="tag",
                    hist=names.get(_key(row.name, row.label), {}).get("hist"),
                    raw_hist=names.get(_key(row.name, row.label), {}).get("raw_hist"),
                    corrected=_key(row.name, row.label) in corrected,
                ),
            }
            for name in sorted(stats)
            for row in tag_rows(stats, name)
        ],
        "failures": [
            {
                "name": group.name,
                "kind": group.kind,
                "message": group.message,
                "count": group.count,
                "first_bot": group.first_bot,
                "first_t": getattr(group, "first_t", None),
            }
            for group in failures_from_snapshot(metrics)
        ],
        "timeline": _timeline(metrics, info.get("started_wall")),
        "thresholds": thresholds(data),
        "counters": dict(metrics.get("counters", {})),
        "gauges": dict(metrics.get("gauges", {})),
        "shards": [dict(shard) for shard in data.get("shards", ())],
        "metrics": metrics,
    }
    cleaned: dict[str, Any] = _clean(doc)
    return cleaned


def write_json(run: RunLike, path: str | os.PathLike[str]) -> Path:
    """Write the JSON report of a run (see `to_json_dict`) to *path*.

    Args:
        run: the run snapshot (``SwarmResult.to_dict()``), or the result.
        path: the file to write (its folder must exist).

    Returns:
        The path written.

    Raises:
        ConfigError: *run* is not a run snapshot.

    Example:
        >>> import json, tempfile, pathlib
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(start_time=0.0)
        >>> run = {"schema": "trio-bots/1", "time_unit": "s", "thresholds": [], "run": {},
        ...        "metrics": rec.snapshot(1.0, bots_running=0, active_seconds=1.0)}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = write_json(run, pathlib.Path(tmp) / "run.json")
        ...     json.loads(out.read_text())["time_unit"]
        's'
    """
    doc = to_json_dict(run)
    text = json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    return write_atomic(Path(path), text)


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a JSON report back as a run snapshot that every reporter reads.

    The figures that JSON wrote as ``null`` (NaN: no samples) in the
    ``metrics`` section become NaN again, so `stats_from_snapshot` and the
    reporters see the run as it was.

    Args:
        path: a file written by `write_json`.

    Returns:
        The report, whose ``schema``, ``run``, ``metrics`` and ``thresholds``
        form the run snapshot.

    Raises:
        ConfigError: the file is not a "trio-bots/1" JSON report.

    Example:
        >>> import tempfile, pathlib
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(start_time=0.0)
        >>> rec.record_failure("login", "OSError", "reset", 1)
        >>> run = {"schema": "trio-bots/1", "time_unit": "s", "thresholds": [], "run": {},
        ...        "metrics": rec.snapshot(1.0, bots_running=0, active_seconds=1.0)}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     back = read_json(write_json(run, pathlib.Path(tmp) / "run.json"))
        >>> back["metrics"]["names"]["login"]["max"]
        nan
    """
    with Path(path).open(encoding="utf-8") as file:
        doc = json.load(file)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise ConfigError(
            f"{os.fspath(path)!r} is not a trio-bots JSON report (schema {found!r}, "
            f"expected {SCHEMA!r}); write it with write_json()"
        )
    doc["metrics"] = _restore_nan(doc.get("metrics"))
    return doc


def _restore_nan(value: Any, key: str = "") -> Any:
    if value is None and _NAN_KEY.match(key):
        return math.nan
    if isinstance(value, dict):
        return {k: _restore_nan(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_nan(item) for item in value]
    return value


# The snapshot's float fields that are NaN when there are no samples.
_NAN_KEY = re.compile(r"^(min|max|mean|p\d+(\.\d+)?)$")


def _figures(stats: Stats) -> dict[str, Any]:
    figures: dict[str, Any] = {"min": stats.min, "mean": stats.mean, "max": stats.max}
    for q in JSON_PERCENTILES:
        figures[format_percentile_label(q)] = stats.percentile(q)
    return figures


def _key(name: str, text: str) -> str:
    """The recorder key of tag set `text` of `name` (`name` for the untagged part)."""
    return name if text == "(untagged)" else f"{name}{{{text}}}"


def _stats_entry(
    stats: Stats, *, kind: str, hist: str | None, raw_hist: str | None, corrected: bool
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": kind,
        "count": stats.count,
        "failure_count": stats.failure_count,
        "cancelled": stats.cancelled,
        "rps": stats.rps,
        "bytes_sent": stats.bytes_sent,
        "bytes_received": stats.bytes_received,
        **_figures(stats),
        "corrected": corrected,
        "raw": _figures(stats.raw),
    }
    if kind != "total":
        entry["hist"] = hist
        entry["raw_hist"] = raw_hist
    return entry


def _timeline(metrics: Mapping[str, Any], started_wall: Any) -> list[dict[str, Any]]:
    wall = float(started_wall) if isinstance(started_wall, int | float) else None
    rows = []
    for bucket in metrics.get("timeline", ()):
        t = int(bucket["t"])
        width = bucket_width(metrics, bucket)
        rows.append(
            {
                "t": t,
                "span": bucket.get("span", 1),
                "time": None if wall is None else wall + t,
                "bots": bucket["bots"],
                "count": bucket["count"],
                "failures": bucket["failures"],
                "rps": safe_ratio(bucket["count"] + bucket["failures"], width),
                "failures_per_s": safe_ratio(bucket["failures"], width),
                "p50": bucket["p50"],
                "p95": bucket["p95"],
                "p99": bucket["p99"],
                "min": bucket.get("min", math.nan),
                "max": bucket.get("max", math.nan),
                "names": {
                    name: {key: value for key, value in entry.items() if key != "hist"}
                    for name, entry in bucket.get("names", {}).items()
                },
            }
        )
    return rows


def _clean(value: Any) -> Any:
    """Copy *value* as JSON data: NaN and infinities become None, others repr()."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    if value is None or isinstance(value, str | int):
        return value
    # An option the engine could not make JSON-able: keep its repr.
    return repr(value)
