"""``trio-bots report FILE.hlog``: the reports of a run, rebuilt from its HDR log.

The log (``--hdr-log``) holds every second of the run: `read_hdr_log` reads it
back into a metrics snapshot, which becomes a `SwarmResult` as a run would give
(without what the log does not keep: the failures' exception groups, the bot
failures, the options). The thresholds are judged on it as at the end of a run,
windowed ones included, and the reports are printed and written by the same
code as ``trio-bots run``'s, with its exit codes: 0, 1 (a threshold failed) or 2.

Example:
    >>> rebuild("no/such/file.hlog", [])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    trio_bots.cli._run.CliExit: error: cannot read the HDR log 'no/such/file.hlog': ...
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .._core.monitor import judge_at_end
from .._core.options import option
from .._core.result import SwarmResult
from .._errors import ConfigError
from ..metrics import (
    failures_from_snapshot,
    parse_threshold,
    read_hdr_log,
    stats_from_snapshot,
    timeline_from_snapshot,
)
from ._run import EXIT_USAGE, CliExit, Outcome, Plan, check_outputs, check_tag_key, report

_OUT = "Reports"

# The report flags that `trio-bots run` and `trio-bots report` share, declared once.
JsonFlag = Annotated[
    Path | None,
    typer.Option("--json", metavar="FILE", help="Write the JSON report.", rich_help_panel=_OUT),
]
CsvFlag = Annotated[
    Path | None,
    typer.Option(
        "--csv", metavar="PREFIX", help="Write PREFIX_stats.csv and friends.", rich_help_panel=_OUT
    ),
]
HtmlFlag = Annotated[
    Path | None,
    typer.Option(
        "--html", metavar="FILE", help="Write the HTML report (needs plotly).", rich_help_panel=_OUT
    ),
]
FanoutDetailFlag = Annotated[
    bool,
    typer.Option(
        "--fanout-detail",
        help="Show one fan-out latency row per group instead of one summary row.",
        rich_help_panel=_OUT,
    ),
]
ByTagFlag = Annotated[
    str | None,
    typer.Option(
        "--by-tag",
        metavar="KEY",
        help="Break each tagged name down by tag KEY in the console report ('*': every tag set).",
        rich_help_panel=_OUT,
    ),
]


def rebuild(path: str | Path, thresholds: list[str]) -> SwarmResult:
    """The `SwarmResult` of the log at `path`, with `thresholds` judged on it.

    Raises:
        CliExit: (exit 2) the file is not a trio-bots HDR log, or a threshold is malformed.
    """
    try:
        expressions = option("thresholds").validate(thresholds or None) or ()
        snapshot, run = read_hdr_log(path)
    except ConfigError as exc:
        raise CliExit(EXIT_USAGE, f"error: {exc}", exc) from None
    result = SwarmResult(
        stats=stats_from_snapshot(snapshot),
        failures=failures_from_snapshot(snapshot),
        timeline=timeline_from_snapshot(snapshot),
        bot_failures=[],
        bots_started=run["bots_started"],
        bots_finished=run["bots_finished"],
        dropped_messages=run["dropped_messages"],
        dropped_arrivals=run["dropped_arrivals"],
        duration=run["duration"],
        interrupted=False,
        aborted=False,
        size=run["size"],
        started_wall=run["started_wall"],
        options={"hdr_log": str(path)},
        metrics=snapshot,
    )
    result.thresholds = [judge_at_end(result, parse_threshold(e)) for e in expressions]
    return result


def report_log(
    log: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.hlog", help="An HDR log written by trio-bots run --hdr-log FILE."
        ),
    ],
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold",
            metavar="EXPR",
            help='Pass/fail check on the logged run, e.g. "p99(login) < 50ms" (repeatable); '
            "a failure exits 1.",
        ),
    ] = None,
    json_file: JsonFlag = None,
    csv_prefix: CsvFlag = None,
    html_file: HtmlFlag = None,
    fanout_detail: FanoutDetailFlag = False,
    by_tag: ByTagFlag = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No console report.", rich_help_panel=_OUT)
    ] = False,
) -> None:
    """Rebuild a run's reports from its HDR log (--hdr-log), and judge thresholds on it.

    Exits 0, 1 if a threshold failed, or 2 for a bad flag or a file that is not a
    trio-bots HDR log.
    """
    console = Console(highlight=False)
    try:
        result = rebuild(log, threshold or [])
        plan = Plan(str(log), None, result.size, {})
        plan.json_path, plan.csv_prefix, plan.html_path = check_outputs(
            json_file, csv_prefix, html_file
        )
        plan.quiet, plan.fanout_detail, plan.by_tag = quiet, fanout_detail, check_tag_key(by_tag)
        code = report(plan, Outcome(result=result), console)
    except CliExit as stop:
        print(f"trio-bots: {stop}", file=sys.stderr)
        code = stop.code
    raise typer.Exit(code)
