"""The swarm's keyword options: defaults, validation and the fd preflight.

Every option is checked before any bot starts; a bad one raises
`ConfigError` saying what was expected and what was given.

Example:
    >>> options = validate_options(1, {"duration": 5})
    >>> options["duration"], options["on_full"]
    (5.0, 'block')
    >>> validate_options(1, {"durration": 5})
    Traceback (most recent call last):
    ...
    trio_bots._errors.ConfigError: unknown swarm option 'durration'; did you mean 'duration'?
"""

from __future__ import annotations

import difflib
import math
import resource
from collections.abc import Callable, Mapping
from typing import Any

from .._errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "factory": None,
    "max_failures": 0,
    "duration": None,
    "stop_grace": 5.0,
    "inbox_size": 1000,
    "on_full": "block",
    "fanout": "group",
    "host": None,
    "handle_sigint": False,
    "sockets_per_bot": 1,
    "request_timeout": None,
    "seed": None,
    # load shapes (see _load.py)
    "spawn_rate": None,
    "stages": None,
    "rate": None,
    "max_bots": None,
    "max_queue": None,
    "iterations": None,
    "think_time": None,
    "pace": None,
}

#: File descriptors kept free for the process itself (stdio, logs, reports, the event loop).
FD_HEADROOM = 64


def _number(name: str, value: Any, *, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
    if value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ConfigError(f"{name} must be {relation} {minimum:g}, got {value!r}")
    return float(value)


def _integer(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        wanted = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name} must be one of {wanted}, got {value!r}")
    return str(value)


def _stages(name: str, value: Any, *, what: str) -> list[tuple[float, float]]:
    example = f"{name}=[(10, 100), (30, 100), (5, 0)]"
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise ConfigError(f"{name} must be a list of (seconds, {what}) pairs, e.g. {example}")
    stages = []
    for index, stage in enumerate(value):
        try:
            seconds, target = stage
        except (TypeError, ValueError):
            raise ConfigError(
                f"{name}[{index}] must be a (seconds, {what}) pair, got {stage!r}; e.g. {example}"
            ) from None
        seconds = _number(f"{name}[{index}] duration", seconds)
        target = _number(f"{name}[{index}] {what}", target)
        stages.append((seconds, target))
    if not stages:
        raise ConfigError(f"{name} must not be empty; e.g. {example}")
    return stages


def _think_time(value: Any) -> float | tuple[float, float]:
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ConfigError(f"think_time must be seconds or a (low, high) pair, got {value!r}")
        low = _number("think_time low", value[0])
        high = _number("think_time high", value[1])
        if high < low:
            raise ConfigError(f"think_time (low, high) needs low <= high, got {value!r}")
        return (low, high)
    return _number("think_time", value)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "max_failures": lambda v: v if v is None else _integer("max_failures", v, minimum=0),
    "duration": lambda v: v if v is None else _number("duration", v, strict=True),
    "stop_grace": lambda v: _number("stop_grace", v),
    "inbox_size": lambda v: _integer("inbox_size", v, minimum=1),
    "on_full": lambda v: _choice("on_full", v, ("block", "drop", "error")),
    "fanout": lambda v: _choice("fanout", v, ("group", "total", "off")),
    "handle_sigint": bool,
    "sockets_per_bot": lambda v: _integer("sockets_per_bot", v, minimum=0),
    "request_timeout": lambda v: v if v is None else _number("request_timeout", v, strict=True),
    "spawn_rate": lambda v: v if v is None else _number("spawn_rate", v, strict=True),
    "stages": lambda v: v if v is None else _stages("stages", v, what="bots"),
    "max_bots": lambda v: v if v is None else _integer("max_bots", v, minimum=1),
    "max_queue": lambda v: v if v is None else _integer("max_queue", v, minimum=0),
    "iterations": lambda v: v if v is None else _integer("iterations", v, minimum=1),
    "think_time": lambda v: v if v is None else _think_time(v),
    "pace": lambda v: v if v is None else _number("pace", v, strict=True),
}


def _check_host(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"host must be a string such as '127.0.0.1:8080', got {value!r}")
    return value


def _check_factory(value: Any) -> Any:
    if value is not None and not callable(value):
        raise ConfigError(f"factory must be callable as factory(worker, size=N), got {value!r}")
    return value


def _check_rate(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number("rate", value, strict=True)
    return _stages("rate", value, what="arrivals/s")


_CHECKS["host"] = _check_host
_CHECKS["factory"] = _check_factory
_CHECKS["rate"] = _check_rate


def validate_options(size: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check `size` and every option; returns the full option dict with defaults.

    Raises:
        ConfigError: on an unknown option or a bad value.
    """
    _integer("size", size, minimum=0)
    merged = dict(DEFAULTS)
    for name, value in options.items():
        check = _CHECKS.get(name)
        if name not in DEFAULTS:
            close = difflib.get_close_matches(name, DEFAULTS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(DEFAULTS)}"
            raise ConfigError(f"unknown swarm option {name!r}{hint}")
        merged[name] = check(value) if check is not None else value
    if merged["pace"] is not None and merged["think_time"] is not None:
        raise ConfigError("give either think_time= or pace=, not both")
    if merged["rate"] is not None:
        if merged["duration"] is None and not isinstance(merged["rate"], list):
            raise ConfigError(
                "the open model (rate=) needs duration= or rate stages, e.g. rate=100, duration=30"
            )
        if merged["stages"] is not None:
            raise ConfigError("give either stages= (closed model) or rate= (open model), not both")
    return merged


def peak_bots(size: int, options: Mapping[str, Any]) -> int:
    """The most bots that can be alive at once under these options."""
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
    if not per_bot:
        return
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
