"""The swarm's keyword options, each declared once, and the fd preflight.

`OPTIONS` holds one `OptionSpec` per option: its name, default, what it
accepts (a `Check`, which validates a value and describes itself), what it
means, and its ``trio-bots run`` flag (a `Flag`: metavar, text parser, help,
panel) or why it has none. Everything else derives from it:

- `validate_options` checks each value with its `Check`, then the rules that
  span several options, all in `check_combinations`;
- the CLI builds its ``run`` flags from `OPTIONS` (``trio_bots.cli._flags``);
- the options table of ``docs/core.md`` is `options_table()`; `update_table`
  regenerates it there.

A bad option raises `ConfigError` before any bot starts, saying what was
expected and what was given.

Example:
    >>> options = validate_options(1, {"duration": 5})
    >>> options["duration"], options["on_full"]
    (5.0, 'block')
    >>> validate_options(1, {"durration": 5})
    Traceback (most recent call last):
    ...
    trio_bots.ConfigError: unknown swarm option 'durration'; did you mean 'duration'?
    >>> validate_options(1, {"rate": 10})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    trio_bots.ConfigError: the open model (rate=) needs duration= or rate stages, ...
"""

from __future__ import annotations

import difflib
import math
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .._errors import ConfigError
from ..metrics import parse_threshold
from .checks import (
    Boolean,
    BotIds,
    Check,
    Choice,
    DataSource,
    Expressions,
    FilePath,
    Function,
    Implements,
    Integer,
    Number,
    Processes,
    Rate,
    Seed,
    Stages,
    Text,
    ThinkTime,
)
from .parse import (
    TextParser,
    parse_duration,
    parse_max_failures,
    parse_processes,
    parse_rate,
    parse_stages,
    parse_target,
    parse_think_time,
)

#: File descriptors kept free for the process itself (stdio, logs, reports, the event loop).
FD_HEADROOM = 64

# -- the declarations ---------------------------------------------------------------------------

#: The help panels of ``trio-bots run`` that swarm options appear in (None: the default one).
PANEL_LOAD = "Load shape"
PANEL_RUN = "Run length and pacing"
PANEL_FAILURES = "Failures and measuring"
PANEL_DATA = "Test data and tracing"
PANEL_SCALE = "Scale-out"
PANEL_OUTPUT = "Reports and output"


@dataclass(frozen=True)
class Flag:
    """How an option is given on the ``trio-bots run`` command line.

    Attributes:
        help: the ``--help`` line.
        metavar: what ``--help`` shows for the value; None: the type (``<int>``).
        parse: turns the flag's text into the option's value, as
            ``parse(text, flag_name)``; None: the command line converts the
            text to the `Check`'s ``kind`` (int, float) or choices itself.
        panel: the ``--help`` panel; None: the default one.
        show_default: the default as ``--help`` shows it; None: derived
            from the option's default (nothing shown for None).
        name: the flag, when it is not the option's name (``--trace-bot``
            for ``trace_bots``); None: ``--`` and the name, dashed.
        repeatable: the flag may be given several times, each adding one
            item to a list.
    """

    help: str
    metavar: str | None = None
    parse: TextParser | None = None
    panel: str | None = None
    show_default: str | None = None
    name: str | None = None
    repeatable: bool = False


@dataclass(frozen=True)
class OptionSpec:
    """One keyword option of `swarm`, `open_swarm` and ``trio-bots run``.

    Attributes:
        name: the keyword, ``duration``.
        default: its value when not given.
        check: what it accepts (validates and describes the value).
        help: what it means, for the docs.
        flag: its ``trio-bots run`` flag, or None.
        no_flag: why it has no flag (required when `flag` is None).
        none_ok: None is accepted although the default is not None.

    Example:
        >>> spec = option("stop_grace")
        >>> spec.flag_name, spec.default, spec.describe(), spec.shown_default()
        ('--stop-grace', 5.0, 'seconds >= 0', '5s')
    """

    name: str
    default: Any
    check: Check
    help: str
    flag: Flag | None = None
    no_flag: str = ""
    none_ok: bool = False

    def __post_init__(self) -> None:
        if (self.flag is None) == (not self.no_flag):
            raise TypeError(f"option {self.name}: give either flag= or no_flag= (the reason)")

    @property
    def accepts_none(self) -> bool:
        """Whether None is a valid value."""
        return self.default is None or self.none_ok

    @property
    def flag_name(self) -> str | None:
        """``--stop-grace`` for ``stop_grace``; None for a Python-only option."""
        if self.flag is None:
            return None
        return self.flag.name or "--" + self.name.replace("_", "-")

    def validate(self, value: Any) -> Any:
        """The value, checked and normalised.

        Raises:
            ConfigError: the value is not one this option accepts.
        """
        if value is None and self.accepts_none:
            return None
        return self.check(self.name, value)

    def describe(self) -> str:
        """What it accepts, for the docs: ``seconds > 0, or None``."""
        return self.check.describe() + (", or None" if self.accepts_none else "")

    def shown_default(self) -> str | None:
        """The default as ``trio-bots run --help`` shows it, or None to show nothing."""
        if self.flag is not None and self.flag.show_default is not None:
            return self.flag.show_default
        return None if self.default is None else self.check.show(self.default)


_SECONDS = Number()
_POSITIVE_SECONDS = Number(strict=True)

#: Every swarm option, in the order of the docs and of ``trio-bots run --help``.
OPTIONS: tuple[OptionSpec, ...] = (
    # load shapes (docs/load.md)
    OptionSpec(
        "spawn_rate",
        None,
        Number(strict=True, unit="bots per second"),
        "start the `size` bots at this many per second instead of all at once",
        Flag("Start bots at R per second instead of all at once.", panel=PANEL_LOAD),
    ),
    OptionSpec(
        "stages",
        None,
        Stages("bots"),
        "closed model: ramp the bot count linearly from `size` through each target",
        Flag(
            'Closed-model bot targets, e.g. "30s:100,1m:100,10s:0".',
            metavar="STAGES",
            parse=parse_stages,
            panel=PANEL_LOAD,
        ),
    ),
    OptionSpec(
        "rate",
        None,
        Rate(),
        "open model: arrivals per second, constant (with `duration`) or in stages",
        Flag(
            'Open model: arrivals per second R, or stages "30s:100,1m:500".',
            metavar="R|STAGES",
            parse=parse_rate,
            panel=PANEL_LOAD,
        ),
    ),
    OptionSpec(
        "max_bots",
        None,
        Integer(minimum=1),
        "open model: most bots alive at once (None: `size`)",
        Flag("Open model: most bots alive at once.", panel=PANEL_LOAD),
    ),
    OptionSpec(
        "max_queue",
        None,
        Integer(minimum=0),
        "open model: arrivals that may wait for a free bot (None: one second at the peak rate)",
        Flag("Open model: arrivals that may wait for a bot.", panel=PANEL_LOAD),
    ),
    # run length and pacing
    OptionSpec(
        "duration",
        None,
        _POSITIVE_SECONDS,
        "seconds, from the start, before a graceful stop",
        Flag(
            "Run length: 500ms, 30s, 2m, 1h or plain seconds; then a graceful stop.",
            metavar="D",
            parse=parse_duration,
            panel=PANEL_RUN,
        ),
    ),
    OptionSpec(
        "stop_grace",
        5.0,
        _SECONDS,
        "seconds bots get after `bot.stopping` is set, before they are cancelled",
        Flag(
            "Time bots get to stop before being cancelled.",
            metavar="D",
            parse=parse_duration,
            panel=PANEL_RUN,
        ),
    ),
    OptionSpec(
        "iterations",
        None,
        Integer(minimum=1),
        "times each bot's `bot.iterations()` loop runs (None: until the stop)",
        Flag("Times each bot runs the worker.", panel=PANEL_RUN),
    ),
    OptionSpec(
        "think_time",
        None,
        ThinkTime(),
        "closed model: pause between iterations; a pair is uniform random from `bot.random`",
        Flag(
            "Pause between iterations: 1s, or 500ms-2s (uniform).",
            metavar="D|LOW-HIGH",
            parse=parse_think_time,
            panel=PANEL_RUN,
        ),
    ),
    OptionSpec(
        "pace",
        None,
        _POSITIVE_SECONDS,
        "closed model: start an iteration every this many seconds",
        Flag(
            "Start an iteration every D (constant pacing).",
            metavar="D",
            parse=parse_duration,
            panel=PANEL_RUN,
        ),
    ),
    # failures and measuring
    OptionSpec(
        "max_failures",
        0,
        Integer(minimum=0),
        "bot failures tolerated; the swarm aborts when there are more (None: no limit)",
        Flag(
            "Bot failures allowed before the run aborts (exit 3); 'none' for no limit.",
            metavar="N|none",
            parse=parse_max_failures,
            panel=PANEL_FAILURES,
            show_default="0, fail fast, as in the library",
        ),
        none_ok=True,
    ),
    OptionSpec(
        "request_timeout",
        None,
        _POSITIVE_SECONDS,
        "a measured request that runs longer fails with `RequestTimeout`",
        Flag(
            "A measured request slower than D counts as failed.",
            metavar="D",
            parse=parse_duration,
            panel=PANEL_FAILURES,
        ),
    ),
    OptionSpec(
        "fanout",
        "group",
        Choice(("group", "total", "off")),
        'fan-out latency under `group:<g>`/`direct`, one `fanout` name (`"total"`), or `"off"`',
        Flag("Fan-out latency names.", panel=PANEL_FAILURES),
    ),
    OptionSpec(
        "inbox_size",
        1000,
        Integer(minimum=1),
        "the bounded channel of each bot's inbox",
        Flag("Messages a bot's inbox holds before --on-full applies.", panel=PANEL_FAILURES),
    ),
    OptionSpec(
        "on_full",
        "block",
        Choice(("block", "drop", "error")),
        "what a send does when a receiver's inbox is full: wait, skip it, or raise `InboxFull`",
        Flag("What a send does when a receiver's inbox is full.", panel=PANEL_FAILURES),
    ),
    OptionSpec(
        "sockets_per_bot",
        1,
        Integer(minimum=0),
        "for the fd preflight; 0 turns it off",
        Flag("For the open-file preflight; 0 disables it.", panel=PANEL_FAILURES),
    ),
    # thresholds, live (docs/metrics.md)
    OptionSpec(
        "thresholds",
        None,
        Expressions(parse_threshold, "p99(login) < 50ms"),
        "pass/fail expressions, judged every second of the run and at its end "
        "(`SwarmResult.thresholds`)",
        Flag(
            'Pass/fail check, e.g. "p99(login) < 50ms" or "p95[10s](login) < 80ms" '
            "(repeatable); judged live and at the end, a failure exits 1.",
            metavar="EXPR",
            panel=PANEL_FAILURES,
            name="--threshold",
            repeatable=True,
        ),
    ),
    OptionSpec(
        "abort_on_fail",
        False,
        Boolean(),
        "begin a graceful stop as soon as a threshold fails (`run.aborted_by`)",
        Flag("Stop the run gracefully when a threshold fails (exit 1).", panel=PANEL_FAILURES),
    ),
    OptionSpec(
        "abort_delay",
        0.0,
        _SECONDS,
        "with `abort_on_fail`: no abort before this many seconds from the start",
        Flag(
            "With --abort-on-fail: no abort before D from the start.",
            metavar="D",
            parse=parse_duration,
            panel=PANEL_FAILURES,
        ),
    ),
    OptionSpec(
        "hdr_log",
        None,
        FilePath("run.hlog"),
        "write every second's histogram per name to this file (HdrHistogram interval log)",
        Flag(
            "Write every second's latency histogram per name to FILE (HdrHistogram "
            "interval log; trio-bots report FILE rebuilds the reports).",
            metavar="FILE",
            panel=PANEL_OUTPUT,
        ),
    ),
    # test data (docs/data.md)
    OptionSpec(
        "data",
        None,
        DataSource(),
        "test data: `bot.data` is bot i's record i (`it.data` per iteration with `data_per`)",
        Flag(
            "Test data, a .csv (header first) or .jsonl file; MODE is sequential (the "
            "default), cycle, random, shuffle or shared.",
            metavar="FILE[:MODE]",
            panel=PANEL_DATA,
        ),
    ),
    OptionSpec(
        "data_mode",
        None,
        Choice(("sequential", "cycle", "random", "shuffle", "shared")),
        'how records are handed out; None: the MODE of `"FILE:MODE"`, else `"sequential"`',
        no_flag="given as --data FILE:MODE",
    ),
    OptionSpec(
        "data_per",
        "bot",
        Choice(("bot", "iteration")),
        'one record per bot, or one per step of `bot.iterations()` (`"iteration"`)',
        Flag("A record per bot, or per iteration (it.data).", panel=PANEL_DATA),
    ),
    # wire transcripts (docs/traces.md)
    OptionSpec(
        "trace_bots",
        None,
        BotIds(),
        "write every chunk these bots send and receive to `trace-N.log` in `trace_dir`",
        Flag(
            "Write bot N's wire transcript to trace-N.log (repeatable).",
            metavar="N",
            panel=PANEL_DATA,
            name="--trace-bot",
            repeatable=True,
        ),
    ),
    OptionSpec(
        "trace_failures",
        None,
        Integer(minimum=1),
        "keep each bot's last K events; write them for bots and measured requests that fail",
        Flag(
            "Keep each bot's last K events; write them when it or a request fails.",
            metavar="K",
            panel=PANEL_DATA,
        ),
    ),
    OptionSpec(
        "trace_dir",
        None,
        Text("traces"),
        "the folder of the transcripts, created if missing (None: the current folder)",
        Flag("Folder of the trace-N.log files (created if missing).", metavar="DIR",
             panel=PANEL_DATA),
    ),
    # the target, randomness
    OptionSpec(
        "seed",
        None,
        Seed(),
        "seeds each `bot.random` from (seed, bot id)",
        Flag("Seed for bot.random."),
    ),
    OptionSpec(
        "host",
        None,
        Text("127.0.0.1:8080"),
        "the target, as the user gave it: `bot.swarm.host`",
        Flag(
            "The target, as bot.swarm.host; with a port, checked with one TCP connect first "
            "(exit 3 if unreachable).",
            metavar="HOST[:PORT]",
            parse=parse_target,
        ),
    ),
    # scale-out (docs/scale-out.md)
    OptionSpec(
        "processes",
        None,
        Processes(),
        "run the swarm as this many shards, one child process each (None: in this process)",
        Flag(
            "Run the swarm in N child processes (shards); auto: one per CPU.",
            metavar="N|auto",
            parse=parse_processes,
            panel=PANEL_SCALE,
        ),
    ),
    OptionSpec(
        "ray",
        None,
        Text("auto"),
        '`"auto"` (a local Ray) or a Ray cluster address: one shard per Ray actor',
        Flag(
            "Run the shards as Ray actors: auto (a local Ray) or a cluster address; "
            "needs the ray extra.",
            metavar="auto|ADDRESS",
            panel=PANEL_SCALE,
        ),
    ),
    OptionSpec(
        "shard_align",
        1,
        Integer(minimum=1),
        "shard boundaries fall on multiples of this many bot ids, so id-based groups stay whole",
        Flag("Shard boundaries at multiples of G bot ids (groups such as id // G).",
             metavar="G", panel=PANEL_SCALE),
    ),
    OptionSpec(
        "strict_groups",
        False,
        Boolean(),
        "abort a sharded run when a group turns out to span shards (else: a warning)",
        Flag("Abort when a group spans shards, instead of warning.", panel=PANEL_SCALE),
    ),
    # Python only
    OptionSpec(
        "factory",
        None,
        Function("factory(worker, size=N)"),
        "the seed's `factory(worker, size=N)`: awaitables, one per bot",
        no_flag="a callable",
    ),
    OptionSpec(
        "network",
        None,
        Implements(("connect_tcp", "reseed"), "trio_bots.testing.Network()"),
        "simulation mode (trio only): `bot.connect_tcp` goes over this simulated network, "
        "never a real socket; see docs/testing.md",
        no_flag="an object: `trio-bots run --serve` makes one",
    ),
    OptionSpec(
        "handle_sigint",
        False,
        Boolean(),
        "SIGINT/SIGTERM: the first stops gracefully, a second cancels at once",
        no_flag="the command always handles signals",
    ),
)

_BY_NAME: dict[str, OptionSpec] = {spec.name: spec for spec in OPTIONS}

#: Every option's default, by name.
DEFAULTS: Mapping[str, Any] = {spec.name: spec.default for spec in OPTIONS}


def option(name: str) -> OptionSpec:
    """The declaration of option `name`.

    Raises:
        ConfigError: there is no such option (with a "did you mean").

    Example:
        >>> option("max_failures").flag_name
        '--max-failures'
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        close = difflib.get_close_matches(name, _BY_NAME, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(_BY_NAME)}"
        raise ConfigError(f"unknown swarm option {name!r}{hint}") from None


# -- validation -----------------------------------------------------------------------------


class Spelling(Protocol):
    """How error messages write an option, and an option with a value."""

    def __call__(self, name: str, value: str = "", /) -> str: ...


def python_spelling(name: str, value: str = "") -> str:
    """``rate=``, or ``rate=100``: an option as a keyword argument.

    Example:
        >>> python_spelling("duration"), python_spelling("duration", "30")
        ('duration=', 'duration=30')
    """
    return f"{name}={value}"


def check_combinations(size: int, options: Mapping[str, Any], spell: Spelling) -> None:
    """The rules that span several options; `options` are validated one by one already.

    Args:
        size: the bots started up front.
        options: every option, defaults included.
        spell: how the messages write the options (``rate=`` or ``--rate``).

    Raises:
        ConfigError: the first rule broken, in the order below.

    Example:
        >>> check_combinations(5, {**DEFAULTS, "pace": 1, "think_time": 1}, python_spelling)
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: give either think_time= or pace=, not both
    """
    s = spell
    rate = options["rate"]
    if options["data"] is None and options["data_mode"] is not None:
        raise ConfigError(f"{s('data_mode')} says how to hand out {s('data')}: give data too")
    if options["trace_dir"] is not None and not (
        options["trace_bots"] or options["trace_failures"] is not None
    ):
        raise ConfigError(
            f"{s('trace_dir')} says where transcripts go: give {s('trace_bots')} or "
            f"{s('trace_failures')} too"
        )
    if options["abort_on_fail"] and not options["thresholds"]:
        raise ConfigError(
            f"{s('abort_on_fail')} stops the run when a threshold fails: give "
            f"{s('thresholds')} too"
        )
    if options["abort_delay"] and not options["abort_on_fail"]:
        raise ConfigError(
            f"{s('abort_delay')} delays the abort of {s('abort_on_fail')}: give it too"
        )
    if options["pace"] is not None and options["think_time"] is not None:
        raise ConfigError(f"give either {s('think_time')} or {s('pace')}, not both")
    shards = options["processes"]
    if options["network"] is not None and (shards is not None or options["ray"] is not None):
        where = s("processes") if shards is not None else s("ray")
        raise ConfigError(
            f"a simulated network (network=, or --serve) lives in one event loop, so it "
            f"cannot be combined with {where}: run the simulation in one process"
        )
    if shards is not None and rate is not None:
        most = options["max_bots"] if options["max_bots"] is not None else size
        if most < shards:
            raise ConfigError(
                f"{s('processes', str(shards))} with {s('rate')} needs at least one bot per "
                f"shard, but at most {most} may be alive: give {s('max_bots', str(shards))} "
                f"or more, or fewer processes"
            )
    if rate is None:
        if options["max_queue"] is not None:
            raise ConfigError(f"{s('max_queue')} belongs to the open model: give {s('rate')} too")
        return
    if options["duration"] is None and not isinstance(rate, list):
        raise ConfigError(
            f"the open model ({s('rate')}) needs {s('duration')} or rate stages, "
            f"e.g. {s('rate', '100')}, {s('duration', '30')}"
        )
    if options["stages"] is not None:
        raise ConfigError(
            f"give either {s('stages')} (closed model) or {s('rate')} (open model), not both"
        )
    if options["think_time"] is not None or options["pace"] is not None:
        raise ConfigError(
            f"{s('think_time')} and {s('pace')} belong to the closed model; with {s('rate')} "
            "the arrivals set the pace"
        )
    if options["spawn_rate"] is not None:
        raise ConfigError(
            f"{s('spawn_rate')} belongs to the closed model; {s('rate')} starts bots itself"
        )
    if options["max_bots"] is None and size < 1:
        raise ConfigError(
            f"{s('rate')} needs bots to serve the arrivals (at least one): give "
            f"{s('max_bots', 'N')} (the most alive at once) and/or {s('size', 'N')} "
            "(started up front, a warm pool)"
        )


def check_backend(options: Mapping[str, Any], backend: str) -> None:
    """The rules about the event loop, checked as the swarm starts in it.

    Raises:
        ConfigError: ``network=`` on a loop other than trio.

    Example:
        >>> check_backend({**DEFAULTS, "network": object()}, "asyncio")
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: network= (simulation mode) needs trio, but this swarm runs on asyncio; run it with trio.run(...) or anyio.run(..., backend="trio")
    """  # noqa: E501
    if options["network"] is not None and backend != "trio":
        raise ConfigError(
            f"network= (simulation mode) needs trio, but this swarm runs on {backend}; "
            'run it with trio.run(...) or anyio.run(..., backend="trio")'
        )


def validate_options(
    size: Any, options: Mapping[str, Any], *, spell: Spelling = python_spelling
) -> dict[str, Any]:
    """Check `size` and every option; returns every option, with the defaults.

    Args:
        size: the bots started up front.
        options: the options given, by keyword name.
        spell: how messages about several options write them; the CLI
            passes its flags (``--rate``).

    Raises:
        ConfigError: on an unknown option, a bad value, or options that
            do not go together.

    Example:
        >>> validate_options(2, {"rate": 5, "duration": 10})["max_bots"] is None
        True
    """
    Integer(minimum=0)("size", size)
    merged = dict(DEFAULTS)
    for name, value in options.items():
        merged[name] = option(name).validate(value)
    check_combinations(size, merged, spell)
    return merged


# -- the fd preflight -----------------------------------------------------------------------


def peak_bots(size: int, options: Mapping[str, Any]) -> int:
    """The most bots that can be alive at once under these options.

    Example:
        >>> peak_bots(10, validate_options(10, {"stages": [(5, 40), (5, 0)]}))
        40
    """
    peak = size
    if options["stages"]:
        peak = max(peak, *(math.ceil(target) for _, target in options["stages"]))
    if options["max_bots"] is not None:
        peak = max(peak, options["max_bots"])
    return peak


def preflight_fds(size: int, options: Mapping[str, Any]) -> None:
    """Make room for every bot's sockets under RLIMIT_NOFILE, or say why it can't.

    Raises the soft limit only as far as needed; raises `ConfigError` when
    even the hard limit is too low.
    """
    per_bot = options["sockets_per_bot"]
    if not per_bot or options["network"] is not None:
        return  # a simulated network opens no file descriptors
    needed = peak_bots(size, options) * per_bot + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise ConfigError(
            f"too many bots for the open-file limit: {needed - FD_HEADROOM} sockets "
            f"({peak_bots(size, options)} bots x {per_bot}) plus {FD_HEADROOM} spare need {needed} "
            f"file descriptors, but the limit is {soft} (hard {hard}). Raise it with "
            f"`ulimit -n {needed}` (as root for more than {hard}), or run fewer bots"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


# -- the docs -------------------------------------------------------------------------------

#: The lines around the generated table in docs/core.md.
TABLE_BEGIN = (
    "<!-- options table: generated from OPTIONS in trio_bots/_core/options.py; "
    "regenerate it with python -c 'import trio_bots._core.options as o; o.update_table()' -->"
)
TABLE_END = "<!-- end of the options table -->"


def _code(value: Any) -> str:
    return f'`"{value}"`' if isinstance(value, str) else f"`{value!r}`"


def _flag_cell(spec: OptionSpec) -> str:
    if spec.flag is None:
        return f"Python only: {spec.no_flag}"
    if spec.flag.metavar is not None:
        value = spec.flag.metavar
    elif isinstance(spec.check, Choice):
        value = "|".join(spec.check.choices)
    else:
        value = f"<{spec.check.kind.__name__}>"
    return f"`{spec.flag_name} {value}`".replace("|", "\\|")


def options_table() -> str:
    """The options table of docs/core.md, in Markdown, from `OPTIONS`.

    Example:
        >>> table = options_table().splitlines()
        >>> table[0]
        '| option | default | accepts | flag | meaning |'
        >>> next(row for row in table if row.startswith("| `seed`")).split(" | ")[:4]
        ['| `seed`', '`None`', 'int or str, or None', '`--seed <int>`']
    """
    rows = [
        "| option | default | accepts | flag | meaning |",
        "|---|---|---|---|---|",
    ]
    for spec in OPTIONS:
        cells = [f"`{spec.name}`", _code(spec.default), spec.describe(), _flag_cell(spec)]
        rows.append(f"| {' | '.join([*cells, spec.help])} |")
    return "\n".join(rows) + "\n"


def update_table(path: str | Path = "docs/core.md") -> bool:
    """Regenerate the options table in `path`, between its marker lines; True if it changed.

    Raises:
        ValueError: the marker lines are missing.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    head, begin, rest = text.partition(TABLE_BEGIN + "\n")
    _, end, tail = rest.partition(TABLE_END)
    if not begin or not end:
        raise ValueError(f"{path}: the lines {TABLE_BEGIN!r} and {TABLE_END!r} are missing")
    new = f"{head}{TABLE_BEGIN}\n\n{options_table()}\n{TABLE_END}{tail}"
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
