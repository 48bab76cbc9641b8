"""The ``trio-bots`` command: run a scenario, show it live, report, exit with a code.

``trio-bots run SCENARIO [options]`` loads ``path/to/file.py[:func]`` or
``package.module[:func]`` (func defaults to ``worker``), merges the module's
``options = {...}`` with the flags (flags win), runs the swarm with SIGINT
and SIGTERM handled, then prints the console report, writes the reports
asked for and exits with one of these codes (also in docs/cli.md):

====  =====================================================================
0     ok
1     a threshold failed
2     usage or config error (bad flag, scenario not importable, fd limit)
3     aborted (the failure policy), or ``--host`` unreachable at the start
130   interrupted by SIGINT (143 for SIGTERM)
====  =====================================================================

``run``'s swarm-option flags (``--duration``, ``--rate``, ...) are not written
here: `with_swarm_flags` makes one per option declared in
``trio_bots._core.options.OPTIONS``, with its metavar, parser, help, panel
and default. The flags declared here are the command's own.

``trio-bots report FILE.hlog`` rebuilds the reports from a run's HDR log
(``--hdr-log``), with the same exit codes. ``trio-bots init [PATH]`` writes a
commented starter scenario.

Example:
    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["--version"]).output.startswith("trio-bots ")
    True
"""

from __future__ import annotations

import enum
import logging
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from .. import __version__
from .._core.options import PANEL_LOAD, PANEL_OUTPUT
from ._flags import BOTS_FLAG, with_swarm_flags
from ._report import ByTagFlag, CsvFlag, FanoutDetailFlag, HtmlFlag, JsonFlag, report_log
from ._run import (
    EXIT_OK,
    EXIT_USAGE,
    CliExit,
    Flags,
    check_host,
    check_outputs,
    check_simulation,
    check_tag_key,
    execute,
    loop_options,
    plan_run,
    report,
)
from ._signals import finish_first, handle_sigterm, interrupted_code
from ._web import PROMETHEUS_USUAL, WEB_USUAL, open_live_servers

_OUT = PANEL_OUTPUT
_SIM = "Simulation (an in-process server)"

__all__ = ["app", "main"]

app = typer.Typer(
    name="trio-bots",
    help="Run swarms of bots against servers: stress tests, benchmarks, debugging.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class BackendName(enum.StrEnum):
    """Values of ``--backend``."""

    trio = "trio"
    asyncio = "asyncio"


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


# -- run


@app.command(no_args_is_help=True)
@with_swarm_flags(after="bots")
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
            BOTS_FLAG, "-n", min=0, help="Bots started up front (size).", rich_help_panel=PANEL_LOAD
        ),
    ] = None,
    host_check: Annotated[
        bool, typer.Option(help="Check that --host HOST:PORT accepts a TCP connection first.")
    ] = True,
    backend: Annotated[BackendName, typer.Option(help="Event loop.")] = BackendName.trio,
    uvloop: Annotated[
        bool,
        typer.Option(
            "--uvloop",
            help="With --backend asyncio: run it on uvloop, about twice as fast as asyncio's "
            "own loop (pip install 'trio-bots[uvloop]').",
        ),
    ] = False,
    serve: Annotated[
        str | None,
        typer.Option(
            metavar="FILE.py:HANDLER|module:HANDLER",
            help="Serve async def HANDLER(stream) in-process at --host (required), over a "
            "simulated network: no real socket (see docs/testing.md).",
            rich_help_panel=_SIM,
        ),
    ] = None,
    virtual_time: Annotated[
        bool,
        typer.Option(
            "--virtual-time",
            help="With --serve: run on a virtual clock (trio's MockClock); --duration 10m ends "
            "in seconds, and the report is in virtual seconds. Implies --no-live.",
            rich_help_panel=_SIM,
        ),
    ] = False,
    json_file: JsonFlag = None,
    csv_prefix: CsvFlag = None,
    html_file: HtmlFlag = None,
    fanout_detail: FanoutDetailFlag = False,
    by_tag: ByTagFlag = None,
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
    prometheus: Annotated[
        str | None,
        typer.Option(
            "--prometheus",
            metavar="HOST:PORT",
            help=f"Serve Prometheus /metrics on HOST:PORT (usually {PROMETHEUS_USUAL}) until "
            "the reports are written. Needs the web extra.",
            rich_help_panel=_OUT,
        ),
    ] = None,
    web: Annotated[
        str | None,
        typer.Option(
            "--web",
            metavar="HOST:PORT",
            help=f"Serve a live dashboard (and its JSON API) on HOST:PORT (usually {WEB_USUAL}) "
            "for the length of the run. Loopback unless --web-token. Needs the web extra.",
            rich_help_panel=_OUT,
        ),
    ] = None,
    web_token: Annotated[
        str | None,
        typer.Option(
            "--web-token",
            metavar="TOKEN",
            help="The dashboard's access token ('auto': make one and print it).",
            rich_help_panel=_OUT,
        ),
    ] = None,
    **swarm_flags: Any,
) -> None:
    """Run a scenario's worker in a swarm, show it live, and report.

    The scenario module may define options = {...} keyed by swarm()'s keyword
    names (size, duration, rate, ...); flags override them.
    """
    # The swarm-option flags (--duration, --rate, ...) come from the options'
    # declarations (trio_bots._core.options.OPTIONS) and arrive in swarm_flags.
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    flags = Flags(bots=bots, options=swarm_flags)
    console = Console(highlight=False)
    try:
        host = swarm_flags.get("host")
        serving = check_simulation(serve, virtual_time, backend.value, host)
        network = None
        if serving is not None:
            from ..testing import Network

            network = Network()  # seed=None: the swarm's --seed seeds its jitter too
        plan = plan_run(scenario, flags, network=network)
        plan.serve, plan.virtual_time = serving, virtual_time
        plan.json_path, plan.csv_prefix, plan.html_path = check_outputs(
            json_file, csv_prefix, html_file
        )
        plan.backend = backend.value
        plan.loop_options = loop_options(backend.value, uvloop)
        plan.quiet = quiet
        plan.debug = debug
        plan.fanout_detail = fanout_detail
        plan.by_tag = check_tag_key(by_tag)
        plain = no_live or virtual_time or not console.is_terminal
        plan.view = "off" if quiet else "plain" if plain else "live"
        if host is not None and host_check and serving is None:
            check_host(host)  # an in-process server needs no check
        with open_live_servers(prometheus, web, web_token) as live:
            plan.watchers, plan.live_tasks = live.watchers, live.tasks
            outcome = execute(plan, console)
            with finish_first() as pending:  # a signal now: finish the reports, then exit
                code = report(plan, outcome, console)
        if pending.signum is not None:
            print("trio-bots: interrupted; the reports were written first", file=sys.stderr)
            code = 128 + pending.signum
    except CliExit as stop:
        if debug and stop.cause is not None:
            traceback.print_exception(stop.cause, file=sys.stderr)
        print(f"trio-bots: {stop}", file=sys.stderr)
        code = stop.code
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM outside the swarm: while importing, or a second signal while
        # the reports are written. (typer would make every one of them 130.)
        print("trio-bots: interrupted", file=sys.stderr)
        code = interrupted_code()
    raise typer.Exit(code)


# -- report

app.command("report", no_args_is_help=True)(report_log)


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
    """The console script: ``trio-bots``. Exits with the codes of docs/cli.md.

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
    previous = signal.getsignal(signal.SIGTERM)
    handle_sigterm()  # first: a SIGTERM while importing the scenario exits 143, not -15
    try:
        app(args=None if argv is None else list(argv), prog_name="trio-bots")
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if _only_interrupts(exc):
            # Ctrl-C or SIGTERM outside the swarm (while importing, or a second one
            # while writing the reports).
            print("trio-bots: interrupted", file=sys.stderr)
            raise SystemExit(interrupted_code()) from None
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    raise SystemExit(EXIT_OK)
