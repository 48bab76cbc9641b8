"""The swarm options' declarations, and what derives from them: validation, flags, docs."""

from __future__ import annotations

import difflib
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from trio_bots import ConfigError
from trio_bots._core.checks import Integer
from trio_bots._core.options import (
    DEFAULTS,
    OPTIONS,
    Flag,
    OptionSpec,
    option,
    options_table,
    python_spelling,
    update_table,
    validate_options,
)
from trio_bots.cli import app
from trio_bots.cli._flags import flag_options, flag_spelling

DOCS = Path(__file__).parent.parent / "docs"
NAMES = [spec.name for spec in OPTIONS]
FLAGGED = [spec for spec in OPTIONS if spec.flag is not None]

#: A value each option refuses, and what the error says.
BAD_VALUES: dict[str, tuple[Any, str]] = {
    "spawn_rate": (0, "spawn_rate must be > 0, got 0"),
    "stages": ([(10, "many")], "stages[0] bots must be a number of bots, got 'many'"),
    "rate": ("fast", "rate must be a list of (seconds, arrivals/s) pairs"),
    "max_bots": (0, "max_bots must be >= 1, got 0"),
    "max_queue": (-1, "max_queue must be >= 0, got -1"),
    "duration": ("10s", "duration must be a number of seconds, got '10s'"),
    "stop_grace": (None, "stop_grace must be a number of seconds, got None"),
    "iterations": (1.5, "iterations must be an integer, got 1.5"),
    "think_time": ((2, 1), "think_time (low, high) needs low <= high, got (2, 1)"),
    "pace": (0, "pace must be > 0, got 0"),
    "max_failures": (True, "max_failures must be an integer, got True"),
    "request_timeout": (-1, "request_timeout must be > 0, got -1"),
    "fanout": ("groups", "fanout must be one of 'group', 'total', 'off', got 'groups'"),
    "inbox_size": (0, "inbox_size must be >= 1, got 0"),
    "on_full": ("wait", "on_full must be one of 'block', 'drop', 'error', got 'wait'"),
    "sockets_per_bot": (-1, "sockets_per_bot must be >= 0, got -1"),
    "thresholds": (5, "thresholds must be a list of expressions such as ['p99(login) < 50ms']"),
    "abort_on_fail": ("yes", "abort_on_fail must be True or False, got 'yes'"),
    "abort_delay": (-1, "abort_delay must be >= 0, got -1"),
    "hdr_log": (5, "hdr_log must be a file name such as 'run.hlog', got 5"),
    "data": (42, "data must be a file name (.csv, .jsonl), a list or an iterable of records"),
    "data_mode": ("loop", "data_mode must be one of 'sequential', 'cycle', 'random'"),
    "data_per": ("step", "data_per must be one of 'bot', 'iteration', got 'step'"),
    "seed": (object(), "seed must be an int or a string"),
    "trace_bots": ([0, -1], "trace_bots id must be >= 0, got -1"),
    "trace_failures": (0, "trace_failures must be >= 1, got 0"),
    "trace_dir": (3, "trace_dir must be a string such as 'traces', got 3"),
    "host": (8080, "host must be a string such as '127.0.0.1:8080', got 8080"),
    "processes": (0, 'processes must be a number of processes >= 1 or "auto" (one per CPU)'),
    "ray": (2, "ray must be a string such as 'auto', got 2"),
    "shard_align": (0, "shard_align must be >= 1, got 0"),
    "strict_groups": ("yes", "strict_groups must be True or False, got 'yes'"),
    "factory": (3, "factory must be callable as factory(worker, size=N), got 3"),
    "network": (3, "network must be an object such as trio_bots.testing.Network()"),
    "handle_sigint": ("no", "handle_sigint must be True or False, got 'no'"),
}


# -- the declarations


def test_every_option_is_declared_once_with_a_flag_or_a_reason() -> None:
    assert len(NAMES) == len(set(NAMES))
    assert list(DEFAULTS) == NAMES
    for spec in OPTIONS:
        assert (spec.flag is None) == bool(spec.no_flag), spec.name
        assert spec.help, spec.name
    python_only = {spec.name: spec.no_flag for spec in OPTIONS if spec.flag is None}
    assert python_only == {
        "data_mode": "given as --data FILE:MODE",
        "factory": "a callable",
        "network": "an object: `trio-bots run --serve` makes one",
        "handle_sigint": "the command always handles signals",
    }
    with pytest.raises(TypeError, match="flag= or no_flag="):
        OptionSpec("x", None, Integer(), "meaning")
    with pytest.raises(TypeError, match="flag= or no_flag="):
        OptionSpec("x", None, Integer(), "meaning", Flag("help"), no_flag="why")


def test_every_default_is_valid_and_kept() -> None:
    assert validate_options(3, {}) == DEFAULTS
    assert validate_options(3, dict(DEFAULTS)) == DEFAULTS


# -- validation


def test_a_bad_value_is_listed_for_every_option() -> None:
    assert sorted(BAD_VALUES) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_validate_options_refuses_a_bad_value_of_each_option(name: str) -> None:
    value, message = BAD_VALUES[name]
    with pytest.raises(ConfigError) as info:
        validate_options(1, {name: value})
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ({"duration": 5}, {"duration": 5.0}),
        ({"stages": [[1, 10], (2, 0)]}, {"stages": [(1.0, 10.0), (2.0, 0.0)]}),
        ({"rate": [(10, 5)]}, {"rate": [(10.0, 5.0)]}),
        ({"think_time": [0, 1]}, {"think_time": (0.0, 1.0)}),
        ({"max_failures": None}, {"max_failures": None}),
        ({"seed": "run-1"}, {"seed": "run-1"}),
    ],
)
def test_values_are_normalised(given: dict[str, Any], normalised: dict[str, Any]) -> None:
    options = validate_options(1, given)
    assert {name: options[name] for name in normalised} == normalised
    assert all(type(options[k]) is type(v) for k, v in normalised.items())


def test_unknown_option_says_did_you_mean() -> None:
    with pytest.raises(ConfigError) as info:
        validate_options(1, {"durration": 5})
    assert str(info.value) == "unknown swarm option 'durration'; did you mean 'duration'?"
    with pytest.raises(ConfigError, match="did you mean 'max_failures'"):
        validate_options(1, {"max_failure": 1})
    with pytest.raises(ConfigError) as info:
        validate_options(1, {"zzz": 1})
    assert str(info.value) == f"unknown swarm option 'zzz'; known: {', '.join(NAMES)}"
    with pytest.raises(ConfigError, match="did you mean 'spawn_rate'"):
        option("spawn_rates")


def test_size_is_checked() -> None:
    with pytest.raises(ConfigError, match="size must be >= 0, got -1"):
        validate_options(-1, {})
    with pytest.raises(ConfigError, match=r"size must be an integer, got 2\.0"):
        validate_options(2.0, {})


# -- the rules that span several options: for swarm() and in the CLI's own words

RULES = [
    (
        {"pace": 1, "think_time": 1},
        "give either think_time= or pace=, not both",
        "give either --think-time or --pace, not both",
    ),
    (
        {"rate": 10},
        "the open model (rate=) needs duration= or rate stages, e.g. rate=100, duration=30",
        "the open model (--rate) needs --duration or rate stages, e.g. --rate 100, --duration 30",
    ),
    (
        {"rate": 10, "duration": 5, "stages": [(1, 2)]},
        "give either stages= (closed model) or rate= (open model), not both",
        "give either --stages (closed model) or --rate (open model), not both",
    ),
    (
        {"rate": 10, "duration": 5, "think_time": 1},
        "think_time= and pace= belong to the closed model; with rate= the arrivals set the pace",
        "--think-time and --pace belong to the closed model; with --rate the arrivals set the pace",
    ),
    (
        {"rate": [(5, 10)], "pace": 1},
        "think_time= and pace= belong to the closed model",
        "--think-time and --pace belong to the closed model",
    ),
    (
        {"rate": 10, "duration": 5, "spawn_rate": 2},
        "spawn_rate= belongs to the closed model; rate= starts bots itself",
        "--spawn-rate belongs to the closed model; --rate starts bots itself",
    ),
    (
        {"max_queue": 5},
        "max_queue= belongs to the open model: give rate= too",
        "--max-queue belongs to the open model: give --rate too",
    ),
    (
        {"rate": 10, "duration": 5, "size": 0},
        "rate= needs bots to serve the arrivals (at least one): give max_bots=N (the most alive "
        "at once) and/or size=N (started up front, a warm pool)",
        "--rate needs bots to serve the arrivals (at least one): give --max-bots N (the most "
        "alive at once) and/or --bots N (started up front, a warm pool)",
    ),
]


@pytest.mark.parametrize(("given", "python", "cli"), RULES)
def test_options_that_do_not_go_together(given: dict[str, Any], python: str, cli: str) -> None:
    options = dict(given)
    size = options.pop("size", 1)
    with pytest.raises(ConfigError) as info:
        validate_options(size, options)
    assert str(info.value).startswith(python)
    with pytest.raises(ConfigError) as info:
        validate_options(size, options, spell=flag_spelling)
    assert str(info.value).startswith(cli)


@pytest.mark.parametrize(
    ("size", "given"),
    [
        (1, {"rate": 10, "duration": 5}),
        (0, {"rate": [(5, 10), (5, 0)], "max_bots": 3}),
        (0, {"rate": 10, "duration": 5, "max_bots": 1, "max_queue": 0}),
        (2, {"stages": [(1, 5)], "think_time": (0, 1), "spawn_rate": 3}),
        (2, {"pace": 1, "iterations": 3}),
    ],
)
def test_options_that_go_together(size: int, given: dict[str, Any]) -> None:
    options = validate_options(size, given)
    assert set(given) <= set(options)


def test_spellings() -> None:
    assert python_spelling("max_bots", "N") == "max_bots=N"
    assert flag_spelling("max_bots", "N") == "--max-bots N"
    assert flag_spelling("size", "N") == "--bots N"
    assert flag_spelling("factory") == "factory="  # no flag: the Python keyword


# -- the command line


def _run_command() -> Any:
    return typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]


def test_run_has_one_flag_per_declared_option() -> None:
    params = {param.name: param for param in _run_command().params}
    for spec in FLAGGED:
        assert spec.flag is not None
        param = params[spec.name]
        assert param.opts == [spec.flag_name]
        assert param.help == spec.flag.help
        assert param.metavar == spec.flag.metavar
        assert param.rich_help_panel == spec.flag.panel
        assert param.show_default == (spec.shown_default() or False)
        assert param.default is None  # not given: the scenario's value stands
    for spec in OPTIONS:
        if spec.flag is None:
            assert spec.name not in params
    cli_only = set(params) - {spec.name for spec in FLAGGED}
    assert cli_only == {
        "scenario",
        "bots",
        "host_check",
        "backend",
        "uvloop",
        "serve",
        "virtual_time",
        "json_file",
        "csv_prefix",
        "html_file",
        "fanout_detail",
        "by_tag",
        "no_live",
        "quiet",
        "debug",
        "prometheus",
        "web",
        "web_token",
    }


def test_help_lists_every_declared_flag() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    listed = set(re.findall(r"(--[a-z][a-z-]+)", result.output))
    for spec in FLAGGED:
        assert spec.flag_name in listed
    assert {"--bots", "--fanout-detail", "--json", "--no-host-check"} <= listed
    assert "[default: (5s)]" in result.output  # --stop-grace, from the default 5.0
    assert "<group|total|off>" in result.output  # --fanout's choices
    assert "Show one fan-out latency row per group instead of one summary row." in result.output
    for flag in ("--factory", "--handle-sigint"):
        assert flag not in listed


def test_flags_become_option_values() -> None:
    args = [
        *("ok.py", "--duration", "2m", "--stages", "10s:5,5s:0", "--fanout", "off"),
        *("--max-bots", "3", "--spawn-rate", "2.5", "--max-failures", "none"),
        *("--think-time", "1s-2s", "--host", "[::1]:80", "--seed", "4", "--on-full", "drop"),
    ]
    ctx = _run_command().make_context("run", args)
    names = {spec.name for spec in FLAGGED}
    given = {name: value for name, value in ctx.params.items() if name in names}
    assert flag_options(given) == {
        "duration": 120.0,
        "stages": [(10.0, 5.0), (5.0, 0.0)],
        "fanout": "off",
        "max_bots": 3,
        "spawn_rate": 2.5,
        "max_failures": None,
        "think_time": (1.0, 2.0),
        "host": "[::1]:80",
        "seed": 4,
        "on_full": "drop",
    }
    assert type(flag_options(given)["fanout"]) is str


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"duration": "5x"}, "--duration: expected a duration"),
        ({"stop_grace": "soon"}, "--stop-grace: expected a duration"),
        ({"stages": "30s"}, "--stages: stage 1 '30s' is not DURATION:BOTS"),
        ({"rate": "fast"}, "--rate: expected a number >= 0, got 'fast'"),
        ({"max_failures": "many"}, "--max-failures: expected an integer >= 0 or 'none'"),
        ({"host": "h:http"}, "--host: the port must be a number from 1 to 65535"),
    ],
)
def test_bad_flag_text_names_the_flag(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        flag_options(given)


# -- the docs


def test_docs_core_md_has_the_options_table(tmp_path: Path) -> None:
    copy = tmp_path / "core.md"
    shutil.copy(DOCS / "core.md", copy)
    if update_table(copy):
        diff = "".join(
            difflib.unified_diff(
                (DOCS / "core.md").read_text().splitlines(keepends=True),
                copy.read_text().splitlines(keepends=True),
                "docs/core.md",
                "from OPTIONS",
            )
        )
        pytest.fail(
            "docs/core.md's options table is not the one OPTIONS gives; regenerate it with\n"
            "    python -c 'import trio_bots._core.options as o; o.update_table()'\n" + diff
        )
    assert options_table() in copy.read_text()
    for spec in OPTIONS:
        assert f"| `{spec.name}` |" in options_table()


def test_update_table_needs_its_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# no table here\n")
    with pytest.raises(ValueError, match="are missing"):
        update_table(page)


def test_docs_cli_md_names_every_flag() -> None:
    text = (DOCS / "cli.md").read_text()
    for spec in FLAGGED:
        assert f"`{spec.flag_name}" in text, spec.flag_name
    assert "`--fanout-detail`" in text
