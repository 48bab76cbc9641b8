"""The HTML report: one self-contained file with plotly charts (offline).

plotly is an extra (``trio-bots[html]``), imported only when a report is
written. The plotly.js bundle is embedded, so the page loads no script,
style or font from anywhere.
"""

from __future__ import annotations

import datetime
import html
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ..metrics import (
    Stats,
    failures_from_snapshot,
    format_duration,
    format_percentile_label,
    format_rate,
    format_value,
)
from ._common import (
    CONSOLE_PERCENTILES,
    SHARD_COLUMNS,
    RunLike,
    all_stats,
    as_run,
    bucket_width,
    fanout_note,
    open_model_names,
    run_info,
    safe_ratio,
    shard_rows,
    stat_rows,
    summary_line,
    tag_keys,
    tag_rows,
    thresholds,
    write_atomic,
)

#: The ids of the four chart containers, in page order.
CHART_IDS = ("chart-rps", "chart-latency", "chart-distribution", "chart-bots")

# Percentile-plot ticks: x = 1 / (1 - q).
_PERCENTILE_TICKS = [
    (1.0, "0%"),
    (2.0, "50%"),
    (10.0, "90%"),
    (100.0, "99%"),
    (1e3, "99.9%"),
    (1e4, "99.99%"),
    (1e5, "99.999%"),
    (1e6, "99.9999%"),
]
_POINTS_PER_DECADE = 20

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1300px; padding: 0 1em; color: #1f2933; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.summary { font-size: 1.05em; } .aborted { color: #b42318; font-weight: bold; }
table { border-collapse: collapse; margin: 0.5em 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #e4e7eb; text-align: right; }
th { background: #f5f7fa; } td.text, th.text { text-align: left; }
tr.total td { font-weight: bold; border-top: 2px solid #9aa5b1; }
tr.raw td { color: #616e7c; font-style: italic; }
.pass { color: #027a48; font-weight: bold; } .fail { color: #b42318; font-weight: bold; }
.note { color: #616e7c; font-size: 0.9em; }
.chart { height: 420px; margin-bottom: 1em; }
"""

# Marks the page "ok" once every chart has drawn, or records the first
# error, so a headless browser (and the tests) can tell.
_ERROR_GUARD = """
window.addEventListener("error", function (event) {
  document.documentElement.setAttribute("data-report-status", "error: " + event.message);
});
"""
_CHECK_CHARTS = """
window.addEventListener("load", function () {
  var root = document.documentElement;
  if (root.getAttribute("data-report-status") !== "pending") { return; }
  var missing = %s.filter(function (id) {
    var div = document.getElementById(id);
    return !(div && div.classList.contains("js-plotly-plot") && div.querySelector(".main-svg"));
  });
  root.setAttribute("data-report-status", missing.length ? "missing: " + missing.join(" ") : "ok");
});
"""


def write_html(run: RunLike, path: str | os.PathLike[str], *, fanout_detail: bool = False) -> Path:
    """Write a self-contained HTML report of a run that works offline.

    The page has the run summary, the stats table (as on the console,
    fan-out latency in one row unless *fanout_detail*), the failures,
    the thresholds, and four plotly charts: requests and
    failures per second, latency percentiles (p50/p95/p99) over time, the
    latency distribution as an HDR percentile plot, and bots over time.
    It needs plotly, the ``html`` extra: ``pip install 'trio-bots[html]'``.

    Args:
        run: the run snapshot (``SwarmResult.to_dict()``), or the result.
        path: the file to write.
        fanout_detail: a stats row for each fan-out name (``group:<g>``,
            ``direct``, ``fanout``) instead of one for them all.

    Returns:
        The path written.

    Raises:
        ConfigError: plotly is not installed, or *run* is not a run snapshot.

    Example:
        >>> import tempfile, pathlib
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(start_time=0.0)
        >>> rec.record("login", 1200)
        >>> _ = rec.tick(0, bots_running=1)
        >>> run = {"schema": "trio-bots/1", "time_unit": "s", "thresholds": [],
        ...        "run": {"duration": 1.0, "size": 1},
        ...        "metrics": rec.snapshot(1.0, bots_running=0, active_seconds=1.0)}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     page = write_html(run, pathlib.Path(tmp) / "report.html").read_text()
        >>> "chart-distribution" in page and "<script src=" not in page
        True
    """
    data = as_run(run)
    try:
        import plotly.graph_objects as go
    except ImportError as exc:
        raise ConfigError("the HTML report needs plotly: pip install 'trio-bots[html]'") from exc
    figures = [
        _rps_figure(go, data),
        _latency_figure(go, data),
        _distribution_figure(go, data),
        _bots_figure(go, data),
    ]
    charts = []
    for index, (chart_id, figure) in enumerate(zip(CHART_IDS, figures, strict=True)):
        figure.update_layout(template="plotly_white", margin={"t": 50, "b": 50})
        charts.append(
            figure.to_html(
                full_html=False,
                include_plotlyjs=index == 0,  # the whole bundle, inline, once
                div_id=chart_id,
                default_height="420px",
                config={"displaylogo": False, "responsive": True},
            )
        )
    target = Path(path)
    write_atomic(target, _page(data, charts, fanout_detail))
    return target


def _page(run: Mapping[str, Any], charts: Sequence[str], fanout_detail: bool) -> str:
    info = run_info(run)
    summary_class = "summary aborted" if info.get("aborted") else "summary"
    check = _CHECK_CHARTS % ("[" + ", ".join(f'"{c}"' for c in CHART_IDS) + "]")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en" data-report-status="pending">',
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>trio-bots report</title>",
        f"<style>{_STYLE}</style>",
        f"<script>{_ERROR_GUARD}</script>",
        "</head><body>",
        "<h1>trio-bots report</h1>",
        f'<p class="{summary_class}">{html.escape(summary_line(run))}</p>',
        _run_table(info),
        "<h2>Requests</h2>",
        _stats_table(run, fanout_detail),
        _tags_table(run),
        _shards_table(run),
        _failures_table(run),
        _bot_failures_table(info),
        _thresholds_table(run),
        "<h2>Charts</h2>",
        *(f'<div class="chart-box">{chart}</div>' for chart in charts),
        f"<script>{check}</script>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


def _cell(value: object, css: str = "") -> str:
    attr = f' class="{css}"' if css else ""
    return f"<td{attr}>{html.escape(str(value))}</td>"


def _table(headers: Sequence[str], rows: Sequence[str], text: Collection[int] = (0,)) -> str:
    """A table; the columns numbered in *text* are left-aligned."""
    head = "".join(
        ('<th class="text">' if i in text else "<th>") + html.escape(h) + "</th>"
        for i, h in enumerate(headers)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _run_table(info: Mapping[str, Any]) -> str:
    started = info.get("started_wall")
    rows: list[tuple[str, object]] = []
    if isinstance(started, int | float) and math.isfinite(started):
        when = datetime.datetime.fromtimestamp(started, datetime.UTC)
        rows.append(("started", when.strftime("%Y-%m-%d %H:%M:%S UTC")))
    rows += [
        ("duration", format_duration(float(info.get("duration", math.nan)))),
        ("size", info.get("size", "-")),
        (
            "bots started / finished",
            f"{info.get('bots_started', 0)} / {info.get('bots_finished', 0)}",
        ),
        ("interrupted", "yes" if info.get("interrupted") else "no"),
        ("aborted", "yes" if info.get("aborted") else "no"),
        *(
            [("stopped by threshold", f"{info['aborted_by']} at {info.get('aborted_at', 0):.1f} s")]
            if info.get("aborted_by") is not None
            else []
        ),
        ("dropped messages", info.get("dropped_messages", 0)),
        ("dropped arrivals", info.get("dropped_arrivals", 0)),
    ]
    options = info.get("options") or {}
    if options:
        rows.append(("options", ", ".join(f"{k}={v}" for k, v in sorted(options.items()))))
    body = [f"<tr>{_cell(key, 'text')}{_cell(value, 'text')}</tr>" for key, value in rows]
    return _table(["Run", ""], body, (0, 1))


def _stats_table(run: Mapping[str, Any], fanout_detail: bool) -> str:
    headers = ["Name", "Requests", "Failures", "Cancelled", "RPS"]
    headers += [format_percentile_label(q) for q in CONSOLE_PERCENTILES]
    headers += ["Max"]
    body = []
    rows = stat_rows(run, fanout_detail=fanout_detail)
    for row in rows:
        s = row.stats
        css = "raw" if row.raw else "total" if row.kind == "total" else ""
        cells = [
            _cell(row.label, "text"),
            _cell(row.requests),
            _cell(s.failure_count, "fail" if s.failure_count and not row.raw else ""),
            _cell(s.cancelled),
            _cell(format_rate(s.rps)),
            *(_cell(format_duration(s.percentile(q))) for q in CONSOLE_PERCENTILES),
            _cell(format_duration(s.max)),
        ]
        body.append(f'<tr class="{css}">{"".join(cells)}</tr>')
    note = (
        '<p class="note">Latencies are of the successful requests. "(corrected)": from each '
        'request\'s intended start (coordinated omission corrected); "(raw)": from its actual '
        "start.</p>"
        if open_model_names(run["metrics"])
        else '<p class="note">Latencies are of the successful requests.</p>'
    )
    fanout = fanout_note(rows)
    if fanout:
        note += f'<p class="note">{html.escape(fanout)}</p>'
    return _table(headers, body) + note


def _tags_table(run: Mapping[str, Any]) -> str:
    """The tag breakdown: a row per tag set of each tagged name, a column per tag key."""
    stats = all_stats(run)
    keys = tag_keys(stats)
    if not keys:
        return ""
    headers = ["Name", *keys, "Requests", "Failures", "RPS"]
    headers += [format_percentile_label(q) for q in CONSOLE_PERCENTILES]
    headers += ["Max"]
    body = []
    for name in sorted(stats):
        for row in tag_rows(stats, name):
            s, tags = row.stats, row.tags or {}
            cells = [
                _cell(name, "text"),
                *(_cell(tags.get(k, ""), "text") for k in keys),
                _cell(row.requests),
                _cell(s.failure_count, "fail" if s.failure_count else ""),
                _cell(format_rate(s.rps)),
                *(_cell(format_duration(s.percentile(q))) for q in CONSOLE_PERCENTILES),
                _cell(format_duration(s.max)),
            ]
            body.append(f'<tr class="tag">{"".join(cells)}</tr>')
    return "<h2>Tags</h2>" + _table(headers, body)


def _shards_table(run: Mapping[str, Any]) -> str:
    """A row per shard of a sharded run, and the total."""
    rows = shard_rows(run)
    if not rows:
        return ""
    body = []
    for row in rows:
        cells = [_cell(v, "text" if i in (0, 8) else "") for i, v in enumerate(row)]
        if row[8]:
            cells[8] = _cell(row[8], "text fail")
        css = ' class="total"' if row[0] == "Total" else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return "<h2>Shards</h2>" + _table(SHARD_COLUMNS, body, text=(0, 8))


def _failures_table(run: Mapping[str, Any]) -> str:
    groups = failures_from_snapshot(run["metrics"])
    if not groups:
        return ""
    body = [
        "<tr>"
        + _cell(g.name, "text")
        + _cell(f"{g.kind}: {g.message}", "text")
        + _cell(g.count)
        + _cell("-" if g.first_bot is None else g.first_bot)
        + "</tr>"
        for g in groups
    ]
    return "<h2>Failures</h2>" + _table(["Name", "Error", "Count", "First bot"], body, (0, 1))


def _bot_failures_table(info: Mapping[str, Any]) -> str:
    failures = list(info.get("bot_failures") or ())
    if not failures:
        return ""
    body = [
        "<tr>"
        + _cell(f.get("bot_id"))
        + _cell(f"{f.get('type')}: {f.get('message')}", "text")
        + "</tr>"
        for f in failures
    ]
    return "<h2>Bot failures</h2>" + _table(["Bot", "Error"], body, (1,))


def _thresholds_table(run: Mapping[str, Any]) -> str:
    results = thresholds(run)
    if not results:
        return ""
    body = []
    for result in results:
        passed = bool(result.get("passed"))
        expression = str(result.get("expression", ""))
        body.append(
            "<tr>"
            + _cell("PASS" if passed else "FAIL", "text " + ("pass" if passed else "fail"))
            + _cell(expression, "text")
            + _cell(format_value(result.get("measured"), result["unit"]))
            + "</tr>"
        )
    return "<h2>Thresholds</h2>" + _table(["Result", "Threshold", "Measured"], body, (0, 1))


def _timeline(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    timeline: list[Mapping[str, Any]] = list(run["metrics"].get("timeline", ()))
    return timeline


def _ms(seconds: Any) -> float | None:
    # plotly draws None as a gap: a second with no samples has no latency.
    if seconds is None or math.isnan(seconds):
        return None
    return float(seconds) * 1000.0


def _rps_figure(go: Any, run: Mapping[str, Any]) -> Any:
    metrics = run["metrics"]
    timeline = _timeline(run)
    t = [b["t"] for b in timeline]
    widths = [bucket_width(metrics, b) for b in timeline]
    rps = [safe_ratio(b["count"] + b["failures"], w) for b, w in zip(timeline, widths, strict=True)]
    fps = [safe_ratio(b["failures"], w) for b, w in zip(timeline, widths, strict=True)]
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=t, y=rps, name="requests/s", mode="lines"))
    figure.add_trace(
        go.Scatter(x=t, y=fps, name="failures/s", mode="lines", line={"color": "#d62728"})
    )
    figure.update_layout(
        title="Requests and failures per second",
        xaxis_title="seconds since start",
        yaxis_title="per second",
        yaxis_rangemode="tozero",
    )
    return figure


def _latency_figure(go: Any, run: Mapping[str, Any]) -> Any:
    timeline = _timeline(run)
    t = [b["t"] for b in timeline]
    figure = go.Figure()
    for key in ("p50", "p95", "p99"):
        y = [_ms(b.get(key)) for b in timeline]
        figure.add_trace(go.Scatter(x=t, y=y, name=key, mode="lines+markers"))
    figure.update_layout(
        title="Latency percentiles over time (all requests, per second)",
        xaxis_title="seconds since start",
        yaxis_title="latency (ms)",
        yaxis_rangemode="tozero",
    )
    return figure


def _percentile_curve(stats: Stats) -> tuple[list[float], list[float]]:
    """x = 1 / (1 - q) and y = latency in ms, from 0% to the last sample."""
    if not stats.count:
        return [], []
    decades = math.log10(max(stats.count, 10))
    steps = int(decades * _POINTS_PER_DECADE)
    xs = [10 ** (i / _POINTS_PER_DECADE) for i in range(steps + 1)]
    ys = [stats.percentile(100.0 * (1.0 - 1.0 / x)) * 1000.0 for x in xs]
    return xs, ys


def _distribution_figure(go: Any, run: Mapping[str, Any]) -> Any:
    rows = [row for row in stat_rows(run) if row.kind != "fanout" and row.stats.count]
    if sum(1 for row in rows if row.kind == "request" and not row.raw) == 1:
        # One request name: the total's curve would be the same.
        rows = [row for row in rows if row.kind != "total"]
    figure = go.Figure()
    x_max = 10.0
    for row in rows:
        label, raw = row.label, row.raw
        xs, ys = _percentile_curve(row.stats)
        x_max = max([x_max, *xs])
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                name=label,
                mode="lines",
                line={"dash": "dash"} if raw else {},
                customdata=[f"{100.0 * (1.0 - 1.0 / x):.4g}%" for x in xs],
                hovertemplate="%{customdata}: %{y:.3f} ms<extra>" + html.escape(label) + "</extra>",
            )
        )
    ticks = [(x, text) for x, text in _PERCENTILE_TICKS if x <= x_max * 1.01]
    figure.update_layout(
        title="Latency distribution (HDR percentile plot, successful requests)",
        xaxis={
            "type": "log",
            "title": "percentile",
            "tickvals": [x for x, _ in ticks],
            "ticktext": [text for _, text in ticks],
        },
        yaxis_title="latency (ms)",
        yaxis_rangemode="tozero",
    )
    return figure


def _bots_figure(go: Any, run: Mapping[str, Any]) -> Any:
    timeline = _timeline(run)
    figure = go.Figure(
        go.Scatter(
            x=[b["t"] for b in timeline],
            y=[b["bots"] for b in timeline],
            name="bots",
            mode="lines",
            line={"shape": "hv", "color": "#2ca02c"},
        )
    )
    figure.update_layout(
        title="Bots over time",
        xaxis_title="seconds since start",
        yaxis_title="bots running",
        yaxis_rangemode="tozero",
    )
    return figure
