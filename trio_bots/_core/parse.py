"""Option values written as text: durations, stages, rates, think times, budgets, hosts.

The command line (and anything else that reads options from text) turns
flag values into the Python values of the swarm's options with these
parsers. Each has the shape ``parse(text, name)``: `name` is what the
error message calls the value (the CLI passes the flag, ``--duration``).
Every parser raises `ConfigError` with one line saying what was expected,
what was given and an example.

A leaf: it imports nothing of ours but `trio_bots._errors`.

Example:
    >>> parse_duration("1m30s"), parse_stages("30s:100,10s:0")
    (90.0, [(30.0, 100.0), (10.0, 0.0)])
"""

from __future__ import annotations

import math
import re
from typing import Any, Protocol

from .._errors import ConfigError

_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(us|µs|ms|s|m|h)")
_NUMBER = re.compile(r"(\d+(?:\.\d*)?|\.\d+)")


class TextParser(Protocol):
    """``parse(text, name)``: the option value that `text` spells; `name` is for messages."""

    def __call__(self, text: str, name: str, /) -> Any: ...


def parse_duration(text: str, name: str = "duration") -> float:
    """Seconds from ``500ms``, ``30s``, ``2m``, ``1h``, ``1m30s`` or plain ``2.5``.

    Raises:
        ConfigError: the text is not a duration.

    Example:
        >>> [parse_duration(t) for t in ("500ms", "30s", "2m", "1h", "1m30s", "2.5")]
        [0.5, 30.0, 120.0, 3600.0, 90.0, 2.5]
        >>> parse_duration("5x", "--pace")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: --pace: expected a duration such as 500ms, ... got '5x'
    """
    cleaned = text.strip().lower().replace(" ", "")
    if _NUMBER.fullmatch(cleaned):
        return float(cleaned)
    parts = _PART.findall(cleaned)
    if not cleaned or "".join(number + unit for number, unit in parts) != cleaned:
        raise ConfigError(
            f"{name}: expected a duration such as 500ms, 30s, 2m, 1h, 1m30s or plain seconds, "
            f"got {text!r}"
        )
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def parse_schedule(text: str, *, what: str, name: str = "stages") -> list[tuple[float, float]]:
    """Stages from ``"30s:100,1m:100,10s:0"``: (seconds, target) pairs; `what` names the target.

    Raises:
        ConfigError: a stage is not ``DURATION:NUMBER``.

    Example:
        >>> parse_schedule("30s:100, 1m:500", what="arrivals/s", name="rate")
        [(30.0, 100.0), (60.0, 500.0)]
    """
    stages = []
    for index, stage in enumerate(text.split(",")):
        duration, sep, target = stage.partition(":")
        if not sep:
            raise ConfigError(
                f"{name}: stage {index + 1} {stage.strip()!r} is not DURATION:{what.upper()}; "
                f'write e.g. "30s:100,1m:100,10s:0"'
            )
        seconds = parse_duration(duration, f"{name} stage {index + 1}")
        stages.append((seconds, _non_negative(target, f"{name} stage {index + 1} {what}")))
    return stages


def parse_stages(text: str, name: str = "stages") -> list[tuple[float, float]]:
    """Closed-model stages, ``"30s:100,1m:100,10s:0"``: (seconds, bots) pairs.

    Example:
        >>> parse_stages("30s")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: stages: stage 1 '30s' is not DURATION:BOTS; write e.g. ...
    """
    return parse_schedule(text, what="bots", name=name)


def parse_rate(text: str, name: str = "rate") -> float | list[tuple[float, float]]:
    """Arrivals per second: a number, or stages such as ``"30s:100,1m:500"``.

    Example:
        >>> parse_rate("50"), parse_rate("10s:20,5s:0")
        (50.0, [(10.0, 20.0), (5.0, 0.0)])
    """
    if ":" in text:
        return parse_schedule(text, what="arrivals/s", name=name)
    return _non_negative(text, name)


def parse_think_time(text: str, name: str = "think-time") -> float | tuple[float, float]:
    """Think time: one duration, or ``LOW-HIGH`` for a uniform random pause.

    Example:
        >>> parse_think_time("1s"), parse_think_time("500ms-2s"), parse_think_time("0.5-1")
        (1.0, (0.5, 2.0), (0.5, 1.0))
    """
    low, sep, high = text.partition("-")
    if not sep:
        return parse_duration(text, name)
    return (parse_duration(low, name), parse_duration(high, name))


def parse_max_failures(text: str, name: str = "max-failures") -> int | None:
    """A bot-failure budget: an integer >= 0, or ``none`` for no limit.

    Example:
        >>> parse_max_failures("3"), parse_max_failures("none")
        (3, None)
    """
    if text.strip().lower() in ("none", "unlimited", "inf"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"{name}: expected an integer >= 0 or 'none', got {text!r}")
    return value


def parse_host(text: str, name: str = "host") -> tuple[str, int | None]:
    """Split ``HOST[:PORT]``; IPv6 addresses with a port go in brackets.

    Raises:
        ConfigError: the port is not a number from 1 to 65535.

    Example:
        >>> parse_host("127.0.0.1:8080"), parse_host("example.com"), parse_host("[::1]:80")
        (('127.0.0.1', 8080), ('example.com', None), ('::1', 80))
    """
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"{name}: expected [IPV6]:PORT such as [::1]:8080, got {text!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:  # a name, or a bare IPv6 address without a port
        host, port_text = text, None
    if not host:
        raise ConfigError(
            f"{name}: expected HOST or HOST:PORT such as 127.0.0.1:8080, got {text!r}"
        )
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{name}: the port must be a number from 1 to 65535, got {text!r}")
    return host, int(port_text)


def parse_target(text: str, name: str = "host") -> str:
    """The ``host`` option from text: checked as ``HOST[:PORT]``, kept as given.

    Example:
        >>> parse_target("127.0.0.1:8080")
        '127.0.0.1:8080'
        >>> parse_target("127.0.0.1:http", "--host")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: --host: the port must be a number from 1 to 65535, got ...
    """
    parse_host(text, name)
    return text


def _non_negative(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0 or math.isinf(value):
        raise ConfigError(f"{name}: expected a number >= 0, got {text.strip()!r}")
    return value


def parse_processes(text: str, name: str = "processes") -> int | str:
    """``auto`` or a whole number of processes (``auto`` is resolved by the option's check).

    Raises:
        ConfigError: the text is neither.

    Example:
        >>> parse_processes("4"), parse_processes("auto")
        (4, 'auto')
    """
    cleaned = text.strip().lower()
    if cleaned == "auto":
        return "auto"
    if cleaned.isdigit():
        return int(cleaned)
    raise ConfigError(f"{name}: expected a number of processes such as 4, or auto, got {text!r}")
