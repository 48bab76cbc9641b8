"""What ``trio-bots run`` does once its flags are read: plan, run, report, exit code.

`plan_run` turns the flags and the scenario into a `Plan` (every value
checked before anything starts), `execute` runs the swarm in its own event
loop with the live view beside it, and `report` prints and writes the
reports and returns the exit code. Each step stops with `CliExit` (a line
for stderr and an exit code) instead of a traceback.

Example:
    >>> Outcome(result=None).code()
    0
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import socket
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console

from .._core.options import preflight_fds, validate_options
from .._core.parse import parse_host
from .._errors import ConfigError, SwarmAborted
from ._flags import flag_options, flag_spelling
from ._live import ViewMode, watch_swarm
from ._parse import load_handler, load_scenario
from ._signals import interrupted_code

#: Exit codes (docs/cli.md); a signal exits 128 + its number (130, 143).
EXIT_OK = 0
EXIT_THRESHOLD = 1
EXIT_USAGE = 2
EXIT_ABORTED = 3

#: How long the ``--host`` reachability check may take.
HOST_CHECK_TIMEOUT = 3.0


class CliExit(Exception):
    """Stop the command with one line on stderr and an exit code.

    Example:
        >>> str(CliExit(EXIT_USAGE, "error: scenario file not found: x.py"))
        'error: scenario file not found: x.py'
    """

    def __init__(self, code: int, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.cause = cause


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
    json_path: Path | None = None
    csv_prefix: Path | None = None
    html_path: Path | None = None
    backend: str = "trio"
    #: anyio's ``backend_options`` for the run's loop (``--uvloop``: ``use_uvloop``).
    loop_options: dict[str, Any] = field(default_factory=dict)
    view: ViewMode = "live"
    quiet: bool = False
    debug: bool = False
    fanout_detail: bool = False
    by_tag: str | None = None
    planned: float | None = None
    #: ``--serve``: (handler, host, port) served in-process over ``options["network"]``.
    serve: tuple[Any, str, int] | None = None
    #: ``--virtual-time``: the run's loop gets ``trio.testing.MockClock(autojump_threshold=0)``.
    virtual_time: bool = False
    #: Called with the live swarm once it starts (``--prometheus``, ``--web``).
    watchers: list[Callable[[Any], Any]] = field(default_factory=list)
    #: ``task(shutdown)``, run in the swarm's loop for the length of the run (``--web``'s
    #: server): it returns soon after ``await shutdown()`` does.
    live_tasks: list[Callable[[Any], Any]] = field(default_factory=list)


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
    #: A BaseException (not an Exception) that a bot raised and that ended the swarm.
    escaped: BaseException | None = None

    def code(self) -> int:
        """The exit code: signal (130/143) > aborted (3) > threshold failed (1) > 0.

        A bot's ``KeyboardInterrupt`` exits 130, its ``SystemExit(n)`` exits n, and
        any other BaseException 3, as an abort.
        """
        result = self.result
        escaped = self.escaped
        if isinstance(escaped, KeyboardInterrupt):
            return interrupted_code()
        if isinstance(escaped, SystemExit):
            return _system_exit_code(escaped)
        if escaped is not None:
            return EXIT_ABORTED
        if result is not None and result.interrupted and result.signal is not None:
            return 128 + int(result.signal)
        if self.aborted is not None or (result is not None and result.aborted):
            return EXIT_ABORTED
        if result is not None and result.aborted_by is not None:
            return EXIT_THRESHOLD  # abort-on-fail: a threshold failed and stopped the run
        if any(not t.passed for t in self.threshold_results):
            return EXIT_THRESHOLD
        return EXIT_OK


@dataclass(frozen=True)
class Flags:
    """The ``run`` flags as given; a flag not given (None) leaves the scenario's value standing.

    Attributes:
        bots: ``--bots``, the swarm's size.
        options: the swarm-option flags (``--duration``, ...) by option name,
            as typer read them: the text, for a flag with a parser.

    Example:
        >>> Flags(bots=3, options={"duration": "2m", "pace": None}).options["duration"]
        '2m'
    """

    bots: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def _planned_length(options: Mapping[str, Any]) -> float | None:
    """The run's length for the progress bar: duration, else the sum of the stages."""
    if options.get("duration") is not None:
        return float(options["duration"])
    for name in ("stages", "rate"):
        stages = options.get(name)
        if isinstance(stages, list):
            return float(sum(seconds for seconds, _ in stages))
    return None


def plan_run(spec: str, flags: Flags, *, network: Any = None) -> Plan:
    """Parse every flag (each ``--threshold`` too), import the scenario, validate the options.

    `network` (``--serve``) becomes the swarm's ``network`` option.
    """
    try:
        given = flag_options(flags.options)
        scenario = load_scenario(spec)
        options = dict(scenario.options)
        size = options.pop("size", None)
        options.update(given)
        if flags.bots is not None:
            size = flags.bots
        if size is None:
            # With stages or an arrival rate the load shape starts the bots.
            size = 0 if options.get("stages") or options.get("rate") else 1
        options["handle_sigint"] = True
        if network is not None:
            options["network"] = network
        _check_worker(scenario.spec, scenario.worker, options)
        validated = validate_options(size, options, spell=flag_spelling)
        preflight_fds(size, validated)
    except ConfigError as exc:
        raise CliExit(EXIT_USAGE, f"error: {exc}", exc) from None
    return Plan(
        spec=scenario.spec,
        worker=scenario.worker,
        size=size,
        options=options,
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


def loop_options(backend: str, uvloop: bool) -> dict[str, Any]:
    """The anyio ``backend_options`` of ``--uvloop``: ``{"use_uvloop": True}``, or none.

    Raises:
        CliExit: a usage error (exit 2): ``--uvloop`` on trio, or uvloop not installed.

    Example:
        >>> loop_options("asyncio", True), loop_options("asyncio", False)
        ({'use_uvloop': True}, {})
        >>> try:
        ...     loop_options("trio", True)
        ... except CliExit as usage:
        ...     print(usage.code, usage)
        2 error: --uvloop goes with --backend asyncio (trio has its own loop)
    """
    if not uvloop:
        return {}
    if backend != "asyncio":
        raise CliExit(
            EXIT_USAGE, f"error: --uvloop goes with --backend asyncio ({backend} has its own loop)"
        )
    try:
        import uvloop as _  # noqa: F401  (anyio imports it itself; this checks it is there)
    except ImportError:
        raise CliExit(
            EXIT_USAGE,
            "error: --uvloop needs uvloop; install it with: pip install 'trio-bots[uvloop]'",
        ) from None
    return {"use_uvloop": True}


def check_simulation(
    serve: str | None, virtual_time: bool, backend: str, host: str | None
) -> tuple[Any, str, int] | None:
    """``--serve`` and ``--virtual-time``: the handler and where to serve it, or None.

    Raises:
        CliExit: a usage error (exit 2): ``--virtual-time`` without ``--serve``,
            ``--serve`` on asyncio or without ``--host HOST:PORT``, a handler
            that cannot be imported.
    """
    if serve is None:
        if virtual_time:
            raise CliExit(
                EXIT_USAGE,
                "error: --virtual-time needs --serve FILE.py:HANDLER: only an in-process "
                "server can run in virtual time",
            )
        return None
    if backend != "trio":
        raise CliExit(
            EXIT_USAGE,
            f"error: {'--serve and --virtual-time need' if virtual_time else '--serve needs'} "
            f"the trio backend, not --backend {backend}: the simulated network is trio-only",
        )
    try:
        if host is None:
            raise ConfigError(
                "--serve needs --host HOST:PORT: the address the handler is served at "
                "and the bots connect to"
            )
        name, port = parse_host(host, "--host")
        if port is None:
            raise ConfigError(f"--serve needs --host HOST:PORT with a port, got {host!r}")
        return load_handler(serve), name, port
    except ConfigError as exc:
        raise CliExit(EXIT_USAGE, f"error: {exc}", exc) from None


def check_outputs(
    json_path: Path | None, csv_prefix: Path | None, html_path: Path | None
) -> tuple[Path | None, Path | None, Path | None]:
    """Fail before the run, not after it, when a report cannot be written."""
    for flag, path in (("--json", json_path), ("--csv", csv_prefix), ("--html", html_path)):
        if path is not None and not path.parent.is_dir():
            raise CliExit(
                EXIT_USAGE,
                f"error: {flag} {path}: the folder {path.parent} does not exist; create it first",
            )
    if html_path is not None:
        try:
            import plotly  # noqa: F401
        except ImportError as exc:
            raise CliExit(
                EXIT_USAGE,
                "error: --html needs plotly: pip install 'trio-bots[html]'",
                exc,
            ) from None
    return json_path, csv_prefix, html_path


def check_tag_key(key: str | None) -> str | None:
    """``--by-tag KEY``: a tag key (an identifier) or ``*``; exit 2 otherwise.

    Example:
        >>> check_tag_key("region"), check_tag_key(None)
        ('region', None)
    """
    if key is None or key == "*" or key.isidentifier():
        return key
    raise CliExit(
        EXIT_USAGE,
        f"error: --by-tag {key!r}: a tag key is an identifier, such as region ('*' for every "
        "tag set)",
    )


def check_host(text: str) -> None:
    """One TCP connect to --host HOST:PORT, bounded by HOST_CHECK_TIMEOUT; exit 3 on failure."""
    host, port = parse_host(text)
    if port is None:
        return
    try:
        with socket.create_connection((host, port), timeout=HOST_CHECK_TIMEOUT):
            pass
    except TimeoutError as exc:
        raise CliExit(
            EXIT_ABORTED,
            f"cannot reach {host}:{port}: no answer within {HOST_CHECK_TIMEOUT:g} s "
            "(is the server running? --no-host-check skips this check)",
            exc,
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise CliExit(
            EXIT_ABORTED,
            f"cannot reach {host}:{port}: {reason.lower()} (is the server running? "
            "--no-host-check skips this check)",
            exc,
        ) from None


def execute(plan: Plan, console: Console) -> Outcome:
    """Run the swarm in its own event loop and return what it produced."""
    options: dict[str, Any] = dict(plan.loop_options)
    if plan.virtual_time:
        import trio.testing

        options["clock"] = trio.testing.MockClock(autojump_threshold=0)
    try:
        return anyio.run(_drive, plan, console, backend=plan.backend, backend_options=options)
    except ConfigError as exc:  # an option the engine refused after all
        raise CliExit(EXIT_USAGE, f"error: {exc}", exc) from None


async def _drive(plan: Plan, console: Console) -> Outcome:
    from ..distributed._front import open_swarm

    running: Any = None
    aborted: SwarmAborted | None = None
    failed: Exception | None = None
    escaped: BaseException | None = None
    cancelled = anyio.get_cancelled_exc_class()
    async with contextlib.AsyncExitStack() as stack:
        if plan.serve is not None:
            handler, host, port = plan.serve
            await stack.enter_async_context(plan.options["network"].serve(handler, host, port))
        if plan.live_tasks:
            # The live servers get a graceful shutdown (hypercorn on asyncio must not be
            # cancelled mid-serve): the event is set on the way out, then the group waits.
            live_group = await stack.enter_async_context(anyio.create_task_group())
            stop_serving = anyio.Event()
            for task in plan.live_tasks:
                live_group.start_soon(task, stop_serving.wait)
            stack.callback(stop_serving.set)
        task_group = await stack.enter_async_context(anyio.create_task_group())
        try:
            async with open_swarm(plan.worker, plan.size, **plan.options) as running:
                for watch in plan.watchers:
                    watch(running)
                task_group.start_soon(watch_swarm, running, console, plan.view, plan.planned)
        except SwarmAborted as exc:
            aborted = exc
        except Exception as exc:  # re-raised below, outside the task group
            failed = exc
        except BaseException as exc:
            # A bot's KeyboardInterrupt, SystemExit, GeneratorExit or own BaseException
            # ended the swarm: report the run, then exit with its code. Never a cancellation.
            if isinstance(exc, cancelled) or running is None or running.result is None:
                raise
            escaped = exc
        finally:
            task_group.cancel_scope.cancel()  # the live view
    if failed is not None:
        raise failed
    result = aborted.result if aborted is not None else running.result
    return Outcome(result=result, aborted=aborted, escaped=escaped)


def _system_exit_code(exc: SystemExit) -> int:
    """The process exit code of `exc`, as Python gives it: None is 0, text is 1."""
    if exc.code is None:
        return EXIT_OK
    return exc.code if isinstance(exc.code, int) else 1


def report(plan: Plan, outcome: Outcome, console: Console) -> int:
    """Print the console report and the thresholds' verdicts, write the files; the exit code.

    The thresholds were judged by the swarm (``thresholds=``, live and at the end).
    """
    from ..report import render_console, write_csv, write_html, write_json

    result = outcome.result
    outcome.threshold_results = list(result.thresholds)
    for judged in outcome.threshold_results:
        if not judged.passed and judged.measured is None:
            # nothing to measure, or a threshold that could not be judged: say why
            print(f"trio-bots: threshold {judged}", file=sys.stderr)
    run_data = result.to_dict()
    if not plan.quiet:
        render_console(run_data, console, fanout_detail=plan.fanout_detail, by_tag=plan.by_tag)
    code = outcome.code()
    writers: list[tuple[Path | None, Callable[[Any, Path], Any]]] = [
        (plan.json_path, write_json),
        (plan.csv_prefix, write_csv),
        (plan.html_path, functools.partial(write_html, fanout_detail=plan.fanout_detail)),
    ]
    for path, write in writers:
        if path is None:
            continue
        try:
            write(run_data, path)
        except (OSError, ConfigError) as exc:
            print(f"trio-bots: error: cannot write {path}: {exc}", file=sys.stderr)
            code = code or EXIT_USAGE
    if outcome.escaped is not None:
        escaped = outcome.escaped
        name = type(escaped).__name__
        what = f"{name}: {escaped}" if str(escaped) else name
        print(f"trio-bots: a bot raised {what}; the swarm was cancelled", file=sys.stderr)
        where = _where(escaped)
        if where:
            print(f"  {where}  (--debug shows the traceback)", file=sys.stderr)
        if plan.debug:
            traceback.print_exception(escaped, file=sys.stderr)
    elif outcome.aborted is not None:
        print(f"trio-bots: aborted: {outcome.aborted}", file=sys.stderr)
        where = _where(outcome.aborted.__cause__)
        if where:
            print(f"  {where}  (--debug shows the traceback)", file=sys.stderr)
        if plan.debug and outcome.aborted.__cause__ is not None:
            traceback.print_exception(outcome.aborted.__cause__, file=sys.stderr)
    elif result.interrupted and result.signal is not None and not plan.quiet:
        print("trio-bots: interrupted; the reports cover the run until then", file=sys.stderr)
    elif result.aborted_by is not None:
        print(
            f"trio-bots: threshold {result.aborted_by} failed at {result.aborted_at:.1f} s; "
            "--abort-on-fail stopped the run (the reports cover it until then)",
            file=sys.stderr,
        )
    return code


def _where(exc: BaseException | None) -> str:
    """``at file.py:12 in worker: <source line>`` for the deepest frame of `exc`."""
    if exc is None or exc.__traceback__ is None:
        return ""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    line = f": {frame.line.strip()}" if frame.line else ""
    return f"at {Path(frame.filename).name}:{frame.lineno} in {frame.name}{line}"
