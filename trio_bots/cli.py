"""The ``trio-bots`` command: run a scenario, show it live, report, exit with a code.

``trio-bots run SCENARIO [options]`` loads ``path/to/file.py[:func]`` or
``package.module[:func]`` (func defaults to ``worker``), merges the module's
``options = {...}`` with the flags (flags win), runs the swarm with SIGINT
and SIGTERM handled, then prints the console report, writes the reports
asked for and exits with the code of DESIGN.md:

====  =====================================================================
0     ok
1     a threshold failed
2     usage or config error (bad flag, scenario not importable, fd limit)
3     aborted (the failure policy), or ``--host`` unreachable at the start
130   interrupted by SIGINT (143 for SIGTERM)
====  =====================================================================

``trio-bots init [PATH]`` writes a commented starter scenario.

Example:
    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["--version"]).output.startswith("trio-bots ")
    True
"""

from __future__ import annotations

import enum
import inspect
import logging
import socket
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import anyio
import typer
from rich.console import Console

from . import __version__
from ._cli_parse import (
    load_scenario,
    parse_duration,
    parse_host,
    parse_max_failures,
    parse_rate,
    parse_schedule,
    parse_think_time,
)
from ._errors import ConfigError, SwarmAborted
from ._live import ViewMode, watch_swarm
from ._options import preflight_fds, validate_options

#: Exit codes (DESIGN.md); a signal exits 128 + its number (130, 143).
EXIT_OK = 0
EXIT_THRESHOLD = 1
EXIT_USAGE = 2
EXIT_ABORTED = 3

#: How long the ``--host`` reachability check may take.
HOST_CHECK_TIMEOUT = 3.0

_LOAD = "Load shape"
_RUN = "Run length and pacing"
_FAIL = "Failures and measuring"
_OUT = "Reports and output"

app = typer.Typer(
    name="trio-bots",
    help="Run swarms of bots against servers: stress tests, benchmarks, debugging.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Fanout(enum.StrEnum):
    """Values of ``--fanout``."""

    group = "group"
    total = "total"
    off = "off"


class BackendName(enum.StrEnum):
    """Values of ``--backend``."""

    trio = "trio"
    asyncio = "asyncio"


class _Exit(Exception):
    """Stop the command with one line on stderr and an exit code."""

    def __init__(self, code: int, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.cause = cause


def _show_version(value: bool) -> None:
    if value:
        print(f"trio-bots {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Run swarms of bots against servers: stress tests, benchmarks, debugging.

    Exit codes: 0 ok, 1 a threshold failed, 2 usage or config error,
    3 aborted (bot failures, or --host unreachable), 130 SIGINT, 143 SIGTERM.
    """


@dataclass
class Plan:
    """Everything ``run`` decided before starting: the swarm's call and the reports.

    Example:
        >>> Plan("demo.py:worker", print, 10, {"duration": 5.0}).size
        10
    """

    spec: str
    worker: Any
    size: int
    options: dict[str, Any]
    thresholds: list[str] = field(default_factory=list)
    json_path: Path | None = None
    csv_prefix: Path | None = None
    html_path: Path | None = None
    backend: str = "trio"
    view: ViewMode = "live"
    quiet: bool = False
    debug: bool = False
    planned: float | None = None


@dataclass
class Outcome:
    """What a run produced: its result, the abort (if any), the threshold results.

    Example:
        >>> Outcome(result=None).code()
        0
    """

    result: Any
    aborted: SwarmAborted | None = None
    threshold_results: list[Any] = field(default_factory=list)

    def code(self) -> int:
        """The exit code: signal (130/143) > aborted (3) > threshold failed (1) > 0."""
        result = self.result
        if result is not None and result.interrupted and result.signal is not None:
            return 128 + int(result.signal)
        if self.aborted is not None or (result is not None and result.aborted):
            return EXIT_ABORTED
        if any(not t.passed for t in self.threshold_results):
            return EXIT_THRESHOLD
        return EXIT_OK


# -- run


@app.command(no_args_is_help=True)
def run(
    scenario: Annotated[
        str,
        typer.Argument(
            help="path/to/file.py[:func] or package.module[:func]; func defaults to worker.",
            show_default=False,
        ),
    ],
    bots: Annotated[
        int | None,
        typer.Option(
            "--bots", "-n", min=0, help="Bots started up front (size).", rich_help_panel=_LOAD
        ),
    ] = None,
    spawn_rate: Annotated[
        float | None,
        typer.Option(
            help="Start bots at R per second instead of all at once.", rich_help_panel=_LOAD
        ),
    ] = None,
    stages: Annotated[
        str | None,
        typer.Option(
            metavar="STAGES",
            help='Closed-model bot targets, e.g. "30s:100,1m:100,10s:0".',
            rich_help_panel=_LOAD,
        ),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(
            metavar="R|STAGES",
            help='Open model: arrivals per second R, or stages "30s:100,1m:500".',
            rich_help_panel=_LOAD,
        ),
    ] = None,
    max_bots: Annotated[
        int | None,
        typer.Option(help="Open model: most bots alive at once.", rich_help_panel=_LOAD),
    ] = None,
    max_queue: Annotated[
        int | None,
        typer.Option(help="Open model: arrivals that may wait for a bot.", rich_help_panel=_LOAD),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            metavar="D",
            help="Run length: 500ms, 30s, 2m, 1h or plain seconds; then a graceful stop.",
            rich_help_panel=_RUN,
        ),
    ] = None,
    stop_grace: Annotated[
        str | None,
        typer.Option(
            metavar="D",
            help="Time bots get to stop before being cancelled.",
            show_default="5s",
            rich_help_panel=_RUN,
        ),
    ] = None,
    iterations: Annotated[
        int | None,
        typer.Option(help="Times each bot runs the worker.", rich_help_panel=_RUN),
    ] = None,
    think_time: Annotated[
        str | None,
        typer.Option(
            metavar="D|LOW-HIGH",
            help="Pause between iterations: 1s, or 500ms-2s (uniform).",
            rich_help_panel=_RUN,
        ),
    ] = None,
    pace: Annotated[
        str | None,
        typer.Option(
            metavar="D", help="Start an iteration every D (constant pacing).", rich_help_panel=_RUN
        ),
    ] = None,
    max_failures: Annotated[
        str | None,
        typer.Option(
            metavar="N|none",
            help="Bot failures allowed before the run aborts (exit 3); 'none' for no limit.",
            show_default="0, fail fast, as in the library",
            rich_help_panel=_FAIL,
        ),
    ] = None,
    request_timeout: Annotated[
        str | None,
        typer.Option(
            metavar="D",
            help="A measured request slower than D counts as failed.",
            rich_help_panel=_FAIL,
        ),
    ] = None,
    fanout: Annotated[
        Fanout | None,
        typer.Option(help="Fan-out latency names.", show_default="group", rich_help_panel=_FAIL),
    ] = None,
    sockets_per_bot: Annotated[
        int | None,
        typer.Option(
            help="For the open-file preflight; 0 disables it.",
            show_default="1",
            rich_help_panel=_FAIL,
        ),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            metavar="EXPR",
            help='Pass/fail check, e.g. "p99(login) < 50ms" (repeatable); a failure exits 1.',
            rich_help_panel=_FAIL,
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            metavar="HOST[:PORT]",
            help="The target, as bot.swarm.host; with a port, checked with one TCP connect first "
            "(exit 3 if unreachable).",
        ),
    ] = None,
    host_check: Annotated[
        bool, typer.Option(help="Check that --host HOST:PORT accepts a TCP connection first.")
    ] = True,
    seed: Annotated[int | None, typer.Option(help="Seed for bot.random.")] = None,
    backend: Annotated[BackendName, typer.Option(help="Event loop.")] = BackendName.trio,
    json_file: Annotated[
        Path | None,
        typer.Option("--json", metavar="FILE", help="Write the JSON report.", rich_help_panel=_OUT),
    ] = None,
    csv_prefix: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            metavar="PREFIX",
            help="Write PREFIX_stats.csv and friends.",
            rich_help_panel=_OUT,
        ),
    ] = None,
    html_file: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE",
            help="Write the HTML report (needs plotly).",
            rich_help_panel=_OUT,
        ),
    ] = None,
    no_live: Annotated[
        bool,
        typer.Option(
            "--no-live", help="Plain status lines instead of the live view.", rich_help_panel=_OUT
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No live view and no console report.", rich_help_panel=_OUT
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="Debug logging, and tracebacks for every error.", rich_help_panel=_OUT
        ),
    ] = False,
) -> None:
    """Run a scenario's worker in a swarm, show it live, and report.

    The scenario module may define options = {...} keyed by swarm()'s keyword
    names (size, duration, rate, ...); flags override them.
    """
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    flags = _Flags(
        bots=bots,
        spawn_rate=spawn_rate,
        stages=stages,
        rate=rate,
        max_bots=max_bots,
        max_queue=max_queue,
        duration=duration,
        stop_grace=stop_grace,
        iterations=iterations,
        think_time=think_time,
        pace=pace,
        max_failures=max_failures,
        request_timeout=request_timeout,
        fanout=None if fanout is None else fanout.value,
        sockets_per_bot=sockets_per_bot,
        host=host,
        seed=seed,
    )
    console = Console(highlight=False)
    try:
        plan = _plan(scenario, flags, threshold or [], console)
        plan.json_path, plan.csv_prefix, plan.html_path = _check_outputs(
            json_file, csv_prefix, html_file
        )
        plan.backend = backend.value
        plan.quiet = quiet
        plan.debug = debug
        plan.view = "off" if quiet else "plain" if no_live or not console.is_terminal else "live"
        if host is not None and host_check:
            _check_host(host)
        outcome = _execute(plan, console)
        code = _report(plan, outcome, console)
    except _Exit as stop:
        if debug and stop.cause is not None:
            traceback.print_exception(stop.cause, file=sys.stderr)
        print(f"trio-bots: {stop}", file=sys.stderr)
        code = stop.code
    raise typer.Exit(code)


@dataclass(frozen=True)
class _Flags:
    bots: int | None
    spawn_rate: float | None
    stages: str | None
    rate: str | None
    max_bots: int | None
    max_queue: int | None
    duration: str | None
    stop_grace: str | None
    iterations: int | None
    think_time: str | None
    pace: str | None
    max_failures: str | None
    request_timeout: str | None
    fanout: str | None
    sockets_per_bot: int | None
    host: str | None
    seed: int | None


#: How each textual flag becomes an option value (the others are taken as they are).
_PARSERS: dict[str, Callable[[str], Any]] = {
    "stages": lambda text: parse_schedule(text, what="bots"),
    "rate": parse_rate,
    "duration": lambda text: parse_duration(text, name="--duration"),
    "stop_grace": lambda text: parse_duration(text, name="--stop-grace"),
    "think_time": parse_think_time,
    "pace": lambda text: parse_duration(text, name="--pace"),
    "max_failures": parse_max_failures,
    "request_timeout": lambda text: parse_duration(text, name="--request-timeout"),
}


def _flag_options(flags: _Flags) -> dict[str, Any]:
    """The swarm options the flags give, leaving out the flags not given."""
    options: dict[str, Any] = {}
    for name, value in vars(flags).items():
        if value is None or name == "bots":
            continue
        parse = _PARSERS.get(name)
        options[name] = parse(value) if parse is not None else value
    if flags.host is not None:
        parse_host(flags.host)  # a bad port is a usage error, before anything runs
    return options


def _planned_length(options: Mapping[str, Any]) -> float | None:
    """The run's length for the progress bar: duration, else the sum of the stages."""
    if options.get("duration") is not None:
        return float(options["duration"])
    for name in ("stages", "rate"):
        stages = options.get(name)
        if isinstance(stages, list):
            return float(sum(seconds for seconds, _ in stages))
    return None


def _plan(spec: str, flags: _Flags, thresholds: list[str], console: Console) -> Plan:
    """Parse every flag and threshold, import the scenario, validate the options."""
    try:
        if thresholds:
            from ._thresholds import parse_threshold

            for expression in thresholds:
                parse_threshold(expression)
        flag_options = _flag_options(flags)
        scenario = load_scenario(spec)
        options = dict(scenario.options)
        size = options.pop("size", None)
        options.update(flag_options)
        if flags.bots is not None:
            size = flags.bots
        if size is None:
            if options.get("rate") is not None and options.get("max_bots") is None:
                raise ConfigError(
                    "--rate needs bots to serve the arrivals: give --max-bots N (the most "
                    "alive at once) and/or --bots N (started up front, a warm pool)"
                )
            # With stages or an arrival rate the load shape starts the bots.
            size = 0 if options.get("stages") or options.get("rate") else 1
        options["handle_sigint"] = True
        _check_worker(scenario.spec, scenario.worker, options)
        validated = validate_options(size, options)
        preflight_fds(size, validated)
    except ConfigError as exc:
        raise _Exit(EXIT_USAGE, f"error: {exc}", exc) from None
    return Plan(
        spec=scenario.spec,
        worker=scenario.worker,
        size=size,
        options=options,
        thresholds=list(thresholds),
        planned=_planned_length(validated),
    )


def _check_worker(spec: str, worker: Any, options: Mapping[str, Any]) -> None:
    """Catch ``def worker`` (not async) before a whole swarm fails on it."""
    if options.get("factory") is not None:
        return  # the seed's factory decides how the worker is called
    workers = worker.keys() if isinstance(worker, Mapping) else [worker]
    for fn in workers:
        if inspect.isfunction(fn) and not inspect.iscoroutinefunction(fn):
            raise ConfigError(
                f"scenario {spec}: {fn.__name__} must be an async function: "
                f"write `async def {fn.__name__}(bot): ...`"
            )


def _check_outputs(
    json_path: Path | None, csv_prefix: Path | None, html_path: Path | None
) -> tuple[Path | None, Path | None, Path | None]:
    """Fail before the run, not after it, when a report cannot be written."""
    for flag, path in (("--json", json_path), ("--csv", csv_prefix), ("--html", html_path)):
        if path is not None and not path.parent.is_dir():
            raise _Exit(
                EXIT_USAGE,
                f"error: {flag} {path}: the folder {path.parent} does not exist; create it first",
            )
    if html_path is not None:
        try:
            import plotly  # noqa: F401
        except ImportError as exc:
            raise _Exit(
                EXIT_USAGE,
                "error: --html needs plotly: pip install 'trio-bots[html]'",
                exc,
            ) from None
    return json_path, csv_prefix, html_path


def _check_host(text: str) -> None:
    """One TCP connect to --host HOST:PORT, bounded by HOST_CHECK_TIMEOUT; exit 3 on failure."""
    host, port = parse_host(text)
    if port is None:
        return
    try:
        with socket.create_connection((host, port), timeout=HOST_CHECK_TIMEOUT):
            pass
    except TimeoutError as exc:
        raise _Exit(
            EXIT_ABORTED,
            f"cannot reach {host}:{port}: no answer within {HOST_CHECK_TIMEOUT:g} s "
            "(is the server running? --no-host-check skips this check)",
            exc,
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise _Exit(
            EXIT_ABORTED,
            f"cannot reach {host}:{port}: {reason.lower()} (is the server running? "
            "--no-host-check skips this check)",
            exc,
        ) from None


def _execute(plan: Plan, console: Console) -> Outcome:
    """Run the swarm in its own event loop and return what it produced."""
    try:
        return anyio.run(_drive, plan, console, backend=plan.backend)
    except ConfigError as exc:  # an option the engine refused after all
        raise _Exit(EXIT_USAGE, f"error: {exc}", exc) from None


async def _drive(plan: Plan, console: Console) -> Outcome:
    from ._swarm import open_swarm

    running: Any = None
    aborted: SwarmAborted | None = None
    failed: Exception | None = None
    async with anyio.create_task_group() as task_group:
        try:
            async with open_swarm(plan.worker, plan.size, **plan.options) as running:
                task_group.start_soon(watch_swarm, running, console, plan.view, plan.planned)
        except SwarmAborted as exc:
            aborted = exc
        except Exception as exc:  # re-raised below, outside the task group
            failed = exc
        finally:
            task_group.cancel_scope.cancel()  # the live view
    if failed is not None:
        raise failed
    result = aborted.result if aborted is not None else running.result
    return Outcome(result=result, aborted=aborted)


def _report(plan: Plan, outcome: Outcome, console: Console) -> int:
    """Evaluate thresholds, print the console report, write the files; the exit code."""
    from .report import render_console, write_csv, write_html, write_json

    result = outcome.result
    outcome.threshold_results = [_check_one(result, expr) for expr in plan.thresholds]
    run_data = result.to_dict(outcome.threshold_results)
    if not plan.quiet:
        render_console(run_data, console)
    code = outcome.code()
    writers: list[tuple[Path | None, Callable[[Any, Path], Any]]] = [
        (plan.json_path, write_json),
        (plan.csv_prefix, write_csv),
        (plan.html_path, write_html),
    ]
    for path, write in writers:
        if path is None:
            continue
        try:
            write(run_data, path)
        except (OSError, ConfigError) as exc:
            print(f"trio-bots: error: cannot write {path}: {exc}", file=sys.stderr)
            code = code or EXIT_USAGE
    if outcome.aborted is not None:
        print(f"trio-bots: aborted: {outcome.aborted}", file=sys.stderr)
        where = _where(outcome.aborted.__cause__)
        if where:
            print(f"  {where}  (--debug shows the traceback)", file=sys.stderr)
        if plan.debug and outcome.aborted.__cause__ is not None:
            traceback.print_exception(outcome.aborted.__cause__, file=sys.stderr)
    elif result.interrupted and result.signal is not None and not plan.quiet:
        print("trio-bots: interrupted; the reports cover the run until then", file=sys.stderr)
    return code


def _check_one(result: Any, expression: str) -> Any:
    """Evaluate one threshold; one that cannot be evaluated (a name never recorded) fails."""
    from ._thresholds import ThresholdResult, parse_threshold

    try:
        [checked] = result.check(expression)
    except ConfigError as exc:
        # The run happened: report it and fail the threshold rather than lose the reports.
        print(f"trio-bots: threshold failed: {exc}", file=sys.stderr)
        return ThresholdResult(
            expression, False, None, parse_threshold(expression).value, reason=str(exc)
        )
    return checked


def _where(exc: BaseException | None) -> str:
    """``at file.py:12 in worker: <source line>`` for the deepest frame of `exc`."""
    if exc is None or exc.__traceback__ is None:
        return ""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    line = f": {frame.line.strip()}" if frame.line else ""
    return f"at {Path(frame.filename).name}:{frame.lineno} in {frame.name}{line}"


# -- init

STARTER = '''\
"""A trio-bots scenario.

Run it against a server (here an echo server on port 7777):

    trio-bots run {name} --host 127.0.0.1:7777 --bots 10 --duration 30s

Each bot runs worker(bot) once, in its own task with its own socket. The
run ends when every bot has returned, or when the duration is up: then
bot.stopping is set and the bots get stop_grace seconds to finish.
"""

import anyio

import trio_bots

# Defaults for this scenario, keyed by trio_bots.swarm()'s keyword names.
# Command-line flags override them (--bots, --duration, --host, ...).
options = {{
    "size": 10,  # bots (--bots)
    "duration": 30,  # seconds, then a graceful stop (--duration)
    "host": "127.0.0.1:7777",  # the target, as bot.swarm.host (--host)
    "max_failures": 0,  # bot failures allowed before the run aborts (--max-failures)
}}


async def worker(bot: trio_bots.Bot) -> None:
    host, _, port = bot.swarm.host.rpartition(":")
    # The connection belongs to the bot: it is closed when the bot ends.
    stream = await bot.connect_tcp(host, int(port))
    while not bot.stopping.is_set():
        # Latency, successes and failures are recorded under "echo";
        # an exception in the block counts as a failed request and is re-raised.
        async with bot.measure("echo"):
            await stream.send_all(b"ping\\n")
            if not await stream.receive_some():
                raise ConnectionError("the server closed the connection")
        # Think time: each bot has its own random generator (--seed fixes it).
        await anyio.sleep(bot.random.uniform(0.5, 1.5))
'''


@app.command(no_args_is_help=False)
def init(
    path: Annotated[
        Path, typer.Argument(help="Where to write the scenario (a folder gets scenario.py).")
    ] = Path("scenario.py"),
) -> None:
    """Write a commented starter scenario (never overwrites a file)."""
    if path.is_dir():
        path = path / "scenario.py"
    if path.exists():
        print(f"trio-bots: error: {path} already exists; choose another path", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE)
    if not path.parent.is_dir():
        print(f"trio-bots: error: the folder {path.parent} does not exist", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE)
    with path.open("x", encoding="utf-8") as file:  # "x": refuse a file that appeared since
        file.write(STARTER.format(name=path.name))
    print(f"wrote {path}; run it with: trio-bots run {path} --host HOST:PORT")


# -- entry point


def _only_interrupts(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_interrupts(inner) for inner in exc.exceptions)
    return isinstance(exc, KeyboardInterrupt)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script: ``trio-bots``. Exits with the codes of DESIGN.md.

    Args:
        argv: the arguments, without the program name; ``sys.argv[1:]`` when None.

    Example:
        >>> try:
        ...     main(["--version"])  # doctest: +ELLIPSIS
        ... except SystemExit as exit:
        ...     print("exit code", exit.code)
        trio-bots ...
        exit code 0
    """
    try:
        app(args=None if argv is None else list(argv), prog_name="trio-bots")
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if _only_interrupts(exc):
            # Ctrl-C outside the swarm (while importing, or writing reports).
            print("trio-bots: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        raise
    raise SystemExit(EXIT_OK)


if __name__ == "__main__":
    main()
