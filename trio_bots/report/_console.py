"""The end-of-run console report: rich tables, plain when not a TTY."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..metrics import (
    failures_from_snapshot,
    format_duration,
    format_percentile_label,
    format_rate,
    format_value,
)
from ._common import (
    CONSOLE_PERCENTILES,
    RunLike,
    StatRow,
    all_stats,
    as_run,
    fanout_note,
    open_model_names,
    run_info,
    stat_rows,
    summary_line,
    tag_keys,
    thresholds,
)

# Long lists are cut: the JSON report keeps them all.
_MAX_FAILURE_ROWS = 50
_MAX_BOT_FAILURE_ROWS = 20


def render_console(
    run: RunLike,
    console: Console | None = None,
    *,
    fanout_detail: bool = False,
    by_tag: str | None = None,
) -> None:
    """Print the end-of-run report: stats, failures, thresholds, summary.

    One row per request name (requests, failures, RPS, p50, p90, p99,
    p99.9, max), then the "Aggregated" total and the fan-out latency:
    one row for all the fan-out names together (their histograms summed),
    or one per name with *fanout_detail*. Names measured in the open
    model get two rows, "(corrected)" and "(raw)". Colours and box
    drawing appear only when *console* is a terminal, so redirected
    output is plain text.

    Args:
        run: the run snapshot (``SwarmResult.to_dict()``), or the result.
        console: where to print; a new `rich.console.Console` on stdout
            when None.
        fanout_detail: a row for each fan-out name (``group:<g>``,
            ``direct``, ``fanout``) instead of one for them all.
        by_tag: beneath each tagged name, a row per value of this tag key
            (``"*"``: a row per tag set); None: the name rows only, and a
            note naming the tag keys when there are some.

    Raises:
        ConfigError: *run* is not a run snapshot.

    Example:
        >>> import io
        >>> from rich.console import Console
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(start_time=0.0)
        >>> rec.record("login", 1500)
        >>> run = {"schema": "trio-bots/1", "time_unit": "s", "thresholds": [],
        ...        "run": {"duration": 1.0, "size": 1, "bots_started": 1},
        ...        "metrics": rec.snapshot(1.0, bots_running=0, active_seconds=1.0)}
        >>> out = io.StringIO()
        >>> render_console(run, Console(file=out, width=100))
        >>> "login" in out.getvalue() and "1.50 ms" in out.getvalue()
        True
    """
    data = as_run(run)
    if console is None:
        console = Console()
    plain = not console.is_terminal
    rows = stat_rows(data, fanout_detail=fanout_detail, by_tag=by_tag)
    console.print(_stats_table(rows, plain))
    note = fanout_note(rows)
    if note:
        console.print(note, style="dim", highlight=False)
    keys = tag_keys(all_stats(data))
    if keys and by_tag is None:
        console.print(
            f"tags: {', '.join(keys)}; by_tag=KEY (trio-bots run --by-tag KEY) breaks the "
            "names down by a tag.",
            style="dim",
            highlight=False,
        )
    corrected = open_model_names(data["metrics"])
    if corrected:
        console.print(
            "corrected: latency from each request's intended start (coordinated omission "
            "corrected); raw: from its actual start, uncorrected.",
            style="dim",
            highlight=False,
        )
    failures = _failures_table(data, plain)
    if failures is not None:
        console.print(failures)
    bot_failures = _bot_failures_table(data, plain)
    if bot_failures is not None:
        console.print(bot_failures)
    checks = _thresholds_table(data, plain)
    if checks is not None:
        console.print(checks)
    per_shard = _shards_table(data, plain)
    if per_shard is not None:
        console.print(per_shard)
    info = run_info(data)
    for warning in info.get("warnings", ()):
        console.print(Text(f"warning: {warning}", style="yellow"))
    failed = info.get("aborted") or info.get("aborted_by") is not None
    style = "bold red" if failed else "yellow" if info.get("interrupted") else "bold"
    console.print(Text(summary_line(data), style=style))


def _shards_table(data: Mapping[str, Any], plain: bool) -> Table | None:
    """One row per shard of a run over several processes, and the total."""
    shards: Sequence[Mapping[str, Any]] = data.get("shards") or ()
    if not shards:
        return None
    table = _table("Shards", plain)
    table.add_column("Shard")
    for heading in ("PID", "Bot ids", "Bots", "Requests", "Failures", "CPU s"):
        table.add_column(heading, justify="right")
    table.add_column("Lost")

    def ids(row: Mapping[str, Any]) -> str:
        first, last = row.get("first_bot"), row.get("last_bot")
        return "-" if first is None else f"{first}-{last}"

    for row in shards:
        lost = row.get("lost")
        table.add_row(
            str(row.get("index")),
            str(row.get("pid")),
            ids(row),
            f"{row.get('count', 0):,}",
            f"{row.get('requests', 0):,}",
            f"{row.get('failure_count', 0):,}",
            f"{row.get('cpu_seconds', 0.0):.2f}",
            Text(lost or "", style="red" if lost else ""),
        )
    table.add_row(
        "Total",
        "",
        "",
        f"{sum(r.get('count', 0) for r in shards):,}",
        f"{sum(r.get('requests', 0) for r in shards):,}",
        f"{sum(r.get('failure_count', 0) for r in shards):,}",
        f"{sum(r.get('cpu_seconds', 0.0) for r in shards):.2f}",
        "",
        style="bold",
    )
    return table


def _table(title: str, plain: bool) -> Table:
    return Table(
        title=title,
        title_justify="left",
        box=None if plain else box.SIMPLE_HEAD,
        header_style="" if plain else "bold",
        pad_edge=False,
    )


def _stats_table(rows: Sequence[StatRow], plain: bool) -> Table:
    table = _table("Requests (latency of successful requests)", plain)
    table.add_column("Name", overflow="fold")
    # The cancelled column only when the stop cut requests off: a plain run keeps its width.
    cancelled = any(row.stats.cancelled for row in rows)
    for header in ("Requests", "Failures", *(("Cancelled",) if cancelled else ()), "RPS"):
        table.add_column(header, justify="right")
    for q in CONSOLE_PERCENTILES:
        table.add_column(format_percentile_label(q), justify="right")
    table.add_column("Max", justify="right")
    for index, row in enumerate(rows):
        s = row.stats
        failures = Text(str(s.failure_count))
        if s.failure_count and not row.raw and not plain:
            failures.stylize("red")
        next_kind = rows[index + 1].kind if index + 1 < len(rows) else row.kind
        table.add_row(
            Text(f"  {row.label}" if row.kind == "tag" else row.label),
            str(row.requests),
            failures,
            *((str(s.cancelled),) if cancelled else ()),
            format_rate(s.rps),
            *(format_duration(s.percentile(q)) for q in CONSOLE_PERCENTILES),
            format_duration(s.max),
            style=None
            if plain
            else "dim"
            if row.raw or row.kind == "tag"
            else "bold"
            if row.kind == "total"
            else None,
            # A rule around the total, between the request and fan-out names.
            end_section=next_kind != row.kind and "total" in (row.kind, next_kind),
        )
    return table


def _failures_table(run: Mapping[str, Any], plain: bool) -> Table | None:
    groups = failures_from_snapshot(run["metrics"])
    if not groups:
        return None
    table = _table("Failures", plain)
    table.add_column("Name", overflow="fold")
    table.add_column("Error", overflow="fold")
    table.add_column("Count", justify="right")
    table.add_column("First bot", justify="right")
    for group in groups[:_MAX_FAILURE_ROWS]:
        first = "-" if group.first_bot is None else str(group.first_bot)
        error = Text(f"{group.kind}: {group.message}")
        table.add_row(Text(group.name), error, str(group.count), first)
    if len(groups) > _MAX_FAILURE_ROWS:
        table.caption = f"... and {len(groups) - _MAX_FAILURE_ROWS} more (see the JSON report)"
    return table


def _bot_failures_table(run: Mapping[str, Any], plain: bool) -> Table | None:
    failures = list(run_info(run).get("bot_failures") or ())
    if not failures:
        return None
    table = _table("Bot failures", plain)
    table.add_column("Bot", justify="right")
    table.add_column("Error", overflow="fold")
    for failure in failures[:_MAX_BOT_FAILURE_ROWS]:
        error = Text(f"{failure.get('type')}: {failure.get('message')}")
        table.add_row(str(failure.get("bot_id")), error)
    if len(failures) > _MAX_BOT_FAILURE_ROWS:
        table.caption = f"... and {len(failures) - _MAX_BOT_FAILURE_ROWS} more"
    return table


def _thresholds_table(run: Mapping[str, Any], plain: bool) -> Table | None:
    results = thresholds(run)
    if not results:
        return None
    table = _table("Thresholds", plain)
    table.add_column("Result")
    table.add_column("Threshold", overflow="fold")
    table.add_column("Measured", justify="right")
    for result in results:
        passed = bool(result.get("passed"))
        word = "PASS" if passed else "FAIL"
        verdict = Text(word, style="" if plain else "bold green" if passed else "bold red")
        expression = str(result.get("expression", ""))
        measured = format_value(result.get("measured"), result["unit"])
        table.add_row(verdict, Text(expression), measured)
    return table
