"""The full-resolution timeline on disk: an HdrHistogram interval log, one second a block.

`HdrLogWriter` writes each second of a run (one timeline bucket, see
`Recorder.tick`) as the lines of HdrHistogram's interval log format, which
``hdrh.log.HistogramLogReader`` and HdrHistogram's own tools read::

    #[Histogram log format version 1.3]
    #[StartTime: 1700000000.000 (seconds since epoch), 2023-11-14T22:13:20+00:00]
    #[BaseTime: 1700000000.000 (seconds since epoch)]
    #[trio-bots-log {"schema": "trio-bots-hlog/1", "value_unit": "us", ...}]
    "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
    0.000,1.000,12.351,HISTFAAAA...
    Tag=login,0.000,1.000,12.351,HISTFAAAA...
    Tag=GET%20/item,0.000,1.000,3.200,HISTFAAAA...
    #[trio-bots {"t": 0, "bots": 20, "failures": {"login": 1}, ...}]

- Values are microseconds; the interval's max (the third column) is in
  milliseconds, as HdrHistogram's tools show it.
- A line without a tag is the second's total over the request names; each
  ``Tag=<name>`` line is one name's (fan-out names included). The tag is the
  name with ``%``, ``,``, ``;``, space, CR and LF percent-encoded (HdrHistogram's
  tools split on spaces and commas; ``;`` separates the suffix below).
- ``Tag=<name>;raw`` holds a name's uncorrected latencies in the open model
  (the plain tag holds the corrected ones).
- After each second, a ``#[trio-bots {json}]`` comment holds what the
  histograms do not: the second ``t``, the live ``bots``, each name's
  ``failures`` and exact ``bounds`` (its smallest and largest sample in µs,
  which a histogram rounds), the ``kinds`` of the names that are not requests, the run's
  ``counters`` and ``gauges`` so far, ``bots_started``, ``bots_finished``,
  ``dropped_arrivals``, ``dropped_messages`` and the ``elapsed`` seconds.
  HdrHistogram readers skip comment lines.

The file is flushed after each second: a crash loses at most the last one.
`read_hdr_log` reads such a file back into a metrics snapshot.

Example:
    >>> import io
    >>> from trio_bots.metrics import Recorder
    >>> rec = Recorder(0.0)
    >>> rec.record("GET /a,b", 1500)
    >>> out = io.StringIO()
    >>> log = HdrLogWriter(out, start_wall=0.0)
    >>> log.write(rec.tick(0, bots_running=1), bots=1, elapsed=1.0)
    >>> [line.rsplit(",", 1)[0] for line in out.getvalue().splitlines() if "HIST" in line]
    ['0.000,1.000,1.500', 'Tag=GET%20/a%2Cb,0.000,1.000,1.500']
    >>> encode_tag("a b;c%"), decode_tag(encode_tag("a b;c%"))
    ('a%20b%3Bc%25', 'a b;c%')
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Final

from .._errors import ConfigError
from ._hdr import EMPTY_HIST
from ._recorder import Recorder

__all__ = ["HdrLogWriter", "decode_tag", "encode_tag", "read_hdr_log"]

#: The version of the trio-bots lines of the log (the first comment says it).
LOG_SCHEMA: Final = "trio-bots-hlog/1"
#: The suffix of a name's tag that holds its raw (uncorrected) figures.
RAW_SUFFIX: Final = ";raw"
#: The comment that starts each second's figures, and the log's own header.
TICK_COMMENT: Final = "#[trio-bots "
HEADER_COMMENT: Final = "#[trio-bots-log "

_ENCODED: Final = {c: f"%{ord(c):02X}" for c in "%, ;\r\n"}
_PERCENT: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_LEGEND: Final = (
    '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n'
)
_START: Final = re.compile(r"#\[StartTime: *([\d.]+)")
_BASE: Final = re.compile(r"#\[BaseTime: *([\d.]+)")


def encode_tag(name: str) -> str:
    """A name as an HdrHistogram tag: ``%``, ``,``, ``;``, space, CR and LF percent-encoded."""
    return "".join(_ENCODED.get(c, c) for c in name)


def decode_tag(tag: str) -> str:
    """The name of an `encode_tag` tag."""
    return _PERCENT.sub(lambda m: chr(int(m.group(1), 16)), tag)


class HdrLogWriter:
    """Writes a run's seconds to an HdrHistogram interval log; see the module docstring.

    Args:
        file: a path (opened for writing, replaced if it exists) or an open text file.
        start_wall: the run's start, in seconds since the epoch.
        meta: more about the run, for the header line (plain data: its ``size``).

    Raises:
        ConfigError: the file cannot be opened.
    """

    def __init__(
        self,
        file: str | Path | IO[str],
        *,
        start_wall: float,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(file, str | Path):
            try:
                self._file: IO[str] = open(file, "w", encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"hdr_log {str(file)!r}: cannot write it ({exc.strerror or exc}); "
                    "check that its folder exists and is writable"
                ) from None
            self._owned = True
        else:
            self._file, self._owned = file, False
        when = datetime.datetime.fromtimestamp(start_wall, datetime.UTC).isoformat()
        header = {"schema": LOG_SCHEMA, "value_unit": "us", "max_unit": "ms", **(meta or {})}
        self._file.write(
            "#[Histogram log format version 1.3]\n"
            f"#[StartTime: {start_wall:.3f} (seconds since epoch), {when}]\n"
            f"#[BaseTime: {start_wall:.3f} (seconds since epoch)]\n"
            f"{HEADER_COMMENT}{json.dumps(header)}]\n"
            f"{_LEGEND}"
        )
        self._file.flush()

    def write(
        self,
        bucket: Mapping[str, Any],
        *,
        bots: int,
        elapsed: float,
        raw: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one second: its histograms, then its ``#[trio-bots ...]`` line; flush.

        Args:
            bucket: the second's timeline bucket (`Recorder.tick`).
            bots: the bots alive at its end.
            elapsed: the run's seconds so far: the last second may be shorter than 1 s.
            raw: each name's raw histogram of the second, encoded (open model).
            extra: more figures for the comment line (counters, gauges, ...).
        """
        t = bucket["t"]
        length = max(0.001, min(1.0, elapsed - t))
        lines = []
        if bucket.get("hist") not in (None, EMPTY_HIST):
            lines.append(_line(None, t, length, bucket["max"], bucket["hist"]))
        failures: dict[str, int] = {}
        kinds: dict[str, str] = {}
        bounds: dict[str, list[int]] = {}
        for name, entry in bucket["names"].items():
            if entry["failures"]:
                failures[name] = entry["failures"]
            if entry.get("kind", "request") != "request":
                kinds[name] = entry["kind"]
            if entry.get("hist") in (None, EMPTY_HIST):
                continue
            tag = encode_tag(name)
            lines.append(_line(tag, t, length, entry["max"], entry["hist"]))
            bounds[name] = [round(entry["min"] * 1e6), round(entry["max"] * 1e6)]
            raw_hist = (raw or {}).get(name)
            if raw_hist is not None:
                lines.append(_line(tag + RAW_SUFFIX, t, length, math.nan, raw_hist))
        figures: dict[str, Any] = {
            "t": t,
            "bots": bots,
            "elapsed": round(elapsed, 6),
            "failures": failures,
            "bounds": bounds,
        }
        if kinds:
            figures["kinds"] = kinds
        figures.update(extra or {})
        lines.append(f"{TICK_COMMENT}{json.dumps(figures, allow_nan=False)}]\n")
        self._file.write("".join(lines))
        self._file.flush()

    def close(self) -> None:
        """Close the file (when this writer opened it)."""
        if self._owned:
            self._file.close()


def _line(tag: str | None, t: int, length: float, max_seconds: float, hist: str) -> str:
    prefix = "" if tag is None else f"Tag={tag},"
    top = 0.0 if max_seconds != max_seconds else max_seconds * 1e3  # ms; NaN: not known
    return f"{prefix}{t:.3f},{length:.3f},{top:.3f},{hist}\n"


def read_hdr_log(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read an `HdrLogWriter` log back: (a metrics snapshot, the run's own figures).

    The snapshot is what the run's recorder held, histograms and timeline alike
    (its failures are counted per name, without their exception groups, which the
    log does not keep). The run's figures are ``started_wall``, ``duration``, ``size``,
    ``bots`` (the last count), ``bots_started``, ``bots_finished``, ``dropped_arrivals`` and
    ``dropped_messages``.

    Raises:
        ConfigError: the file cannot be read, or is not a trio-bots HDR log.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the HDR log {str(path)!r}: {exc}") from None
    recorder = Recorder(0.0)
    start = base = None
    header: dict[str, Any] = {}
    pending: dict[str, list[str | None]] = {}  # name -> [hist, raw] of the second being read
    last: dict[str, Any] = {}
    counters: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith(TICK_COMMENT):
            figures = _json(line[len(TICK_COMMENT) : -1], path, number)
            kinds = figures.get("kinds", {})
            failures = figures.get("failures", {})
            bounds = figures.get("bounds", {})
            for name in sorted(pending.keys() | failures.keys()):
                hist, raw = pending.get(name, [EMPTY_HIST, None])
                recorder.record_interval(
                    name,
                    hist or EMPTY_HIST,
                    kind=kinds.get(name, "request"),
                    failures=int(failures.get(name, 0)),
                    raw=raw,
                    bounds=tuple(bounds[name]) if name in bounds else None,
                )
            pending.clear()
            for name, value in figures.get("counters", {}).items():
                recorder.count(name, int(value) - counters.get(name, 0))
                counters[name] = int(value)
            for name, value in figures.get("gauges", {}).items():
                recorder.gauge(name, value)
            recorder.tick(int(figures["t"]), int(figures.get("bots", 0)))
            last = figures
        elif line.startswith(HEADER_COMMENT):
            header = _json(line[len(HEADER_COMMENT) : -1], path, number)
        elif line.startswith("Tag="):
            tag, _, rest = line[4:].partition(",")
            payload = rest.split(",", 3)
            if len(payload) != 4:
                raise _bad(path, number, "a line Tag=<tag>,<start>,<length>,<max>,<histogram>")
            is_raw = tag.endswith(RAW_SUFFIX)
            name = decode_tag(tag[: -len(RAW_SUFFIX)] if is_raw else tag)
            pending.setdefault(name, [None, None])[1 if is_raw else 0] = payload[3]
        elif (match := _START.match(line)) is not None:
            start = float(match.group(1))
        elif (match := _BASE.match(line)) is not None:
            base = float(match.group(1))
    if header.get("schema") != LOG_SCHEMA:
        raise ConfigError(
            f"{str(path)!r} is not an HDR log written by trio-bots (--hdr-log): its header "
            f"line {HEADER_COMMENT}...] with schema {LOG_SCHEMA!r} is missing"
        )
    elapsed = float(last.get("elapsed", 0.0))
    snapshot = recorder.snapshot(elapsed, bots_running=int(last.get("bots", 0)),
                                 active_seconds=float(last.get("active_seconds", elapsed)))
    run = {
        "started_wall": start if start is not None else base or 0.0,
        "duration": elapsed,
        "bots": int(last.get("bots", 0)),
        "size": int(header.get("size", 0)),
        **{
            key: int(last.get(key, 0))
            for key in ("bots_started", "bots_finished", "dropped_arrivals", "dropped_messages")
        },
    }
    return snapshot, run


def _json(text: str, path: str | Path, number: int) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(path, number, f"JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise _bad(path, number, "a JSON object")
    return value


def _bad(path: str | Path, number: int, expected: str) -> ConfigError:
    return ConfigError(f"{path!s}:{number}: expected {expected}; is this file whole?")
