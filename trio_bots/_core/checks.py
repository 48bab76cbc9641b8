"""What a swarm option accepts: small `Check` objects that validate a value and describe it.

Each option of `trio_bots._core.options.OPTIONS` names one. Calling a check
returns the value, normalised (seconds become floats), or raises
`ConfigError` saying what was expected and what was given; `describe()`
says what it takes, for the docs; ``kind`` is what the command line converts
a flag's text to when the flag has no parser of its own.

A leaf: it imports nothing of ours but `trio_bots._errors`.

Example:
    >>> Integer(minimum=1)("inbox_size", 0)
    Traceback (most recent call last):
    ...
    trio_bots.ConfigError: inbox_size must be >= 1, got 0
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .._errors import ConfigError


class Check:
    """What one option accepts: validates a value, and says what it takes.

    Subclasses are small frozen dataclasses; calling one returns the value,
    normalised (ints become floats for seconds), or raises `ConfigError`.

    Example:
        >>> seconds = Number(strict=True)
        >>> seconds("pace", 2), seconds.describe(), seconds.show(5.0)
        (2.0, 'seconds > 0', '5s')
    """

    #: What the command line converts a flag's text to, when the flag has no parser.
    kind: ClassVar[type] = str

    def __call__(self, name: str, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        """What the option takes, for the docs."""
        raise NotImplementedError

    def show(self, value: Any) -> str:
        """A value as ``--help`` shows a default."""
        return str(value)


def _number(name: str, value: Any, *, strict: bool = False, unit: str = "seconds") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{name} must be a number of {unit}, got {value!r}")
    if value < 0 or (strict and value == 0):
        raise ConfigError(f"{name} must be {'>' if strict else '>='} 0, got {value!r}")
    return float(value)


def _integer(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")
    return value


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
        target = _number(f"{name}[{index}] {what}", target, unit=what)
        stages.append((seconds, target))
    if not stages:
        raise ConfigError(f"{name} must not be empty; e.g. {example}")
    return stages


@dataclass(frozen=True)
class Number(Check):
    """A number >= 0 (> 0 when `strict`), as a float; `unit` is what it counts."""

    strict: bool = False
    unit: str = "seconds"
    kind: ClassVar[type] = float

    def __call__(self, name: str, value: Any) -> float:
        return _number(name, value, strict=self.strict, unit=self.unit)

    def describe(self) -> str:
        return f"{self.unit} {'>' if self.strict else '>='} 0"

    def show(self, value: Any) -> str:
        return f"{value:g}s" if self.unit == "seconds" else f"{value:g}"


@dataclass(frozen=True)
class Integer(Check):
    """An int >= `minimum` (not a bool)."""

    minimum: int = 0
    kind: ClassVar[type] = int

    def __call__(self, name: str, value: Any) -> int:
        return _integer(name, value, minimum=self.minimum)

    def describe(self) -> str:
        return f"int >= {self.minimum}"


@dataclass(frozen=True)
class Choice(Check):
    """One of a few strings."""

    choices: tuple[str, ...]

    def __call__(self, name: str, value: Any) -> str:
        if value not in self.choices:
            wanted = ", ".join(repr(c) for c in self.choices)
            raise ConfigError(f"{name} must be one of {wanted}, got {value!r}")
        return str(value)

    def describe(self) -> str:
        quoted = [f'"{c}"' for c in self.choices]
        return f"{', '.join(quoted[:-1])} or {quoted[-1]}"


@dataclass(frozen=True)
class Stages(Check):
    """A non-empty list of (seconds, target) pairs; `what` names the target."""

    what: str

    def __call__(self, name: str, value: Any) -> list[tuple[float, float]]:
        return _stages(name, value, what=self.what)

    def describe(self) -> str:
        return f"[(seconds, {self.what}), ...]"


@dataclass(frozen=True)
class Rate(Check):
    """Arrivals per second: a number > 0, or stages of (seconds, arrivals/s)."""

    def __call__(self, name: str, value: Any) -> float | list[tuple[float, float]]:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _number(name, value, strict=True, unit="arrivals/s")
        return _stages(name, value, what="arrivals/s")

    def describe(self) -> str:
        return "arrivals/s > 0, or [(seconds, arrivals/s), ...]"


@dataclass(frozen=True)
class ThinkTime(Check):
    """Seconds >= 0, or a (low, high) pair for a uniform random pause."""

    def __call__(self, name: str, value: Any) -> float | tuple[float, float]:
        if isinstance(value, tuple | list):
            if len(value) != 2:
                raise ConfigError(f"{name} must be seconds or a (low, high) pair, got {value!r}")
            low = _number(f"{name} low", value[0])
            high = _number(f"{name} high", value[1])
            if high < low:
                raise ConfigError(f"{name} (low, high) needs low <= high, got {value!r}")
            return (low, high)
        return _number(name, value)

    def describe(self) -> str:
        return "seconds >= 0, or (low, high)"


@dataclass(frozen=True)
class Text(Check):
    """A string, such as `example`."""

    example: str

    def __call__(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string such as {self.example!r}, got {value!r}")
        return value

    def describe(self) -> str:
        return "str"


@dataclass(frozen=True)
class FilePath(Check):
    """A file to write, as a string or a path (``os.PathLike``): kept as a string."""

    example: str

    def __call__(self, name: str, value: Any) -> str:
        if not isinstance(value, str | os.PathLike) or not os.fspath(value):
            raise ConfigError(f"{name} must be a file name such as {self.example!r}, got {value!r}")
        return str(os.fspath(value))

    def describe(self) -> str:
        return "a file name (str or path)"


@dataclass(frozen=True)
class Expressions(Check):
    """Expressions, each checked by `parse` (which raises `ConfigError`): a list of
    strings, or one string; kept as a tuple of the stripped strings.

    Example:
        >>> Expressions(str.upper, "x < 1")("thresholds", ["a < 1 ", "b < 2"])
        ('a < 1', 'b < 2')
        >>> Expressions(str.upper, "x < 1")("thresholds", 5)
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: thresholds must be a list of expressions such as ['x < 1'], got 5
    """

    parse: Callable[[str], Any]
    example: str

    def __call__(self, name: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, bytes | Mapping) or not hasattr(value, "__iter__"):
            raise ConfigError(
                f"{name} must be a list of expressions such as [{self.example!r}], got {value!r}"
            )
        items = list(value)
        for item in items:
            self.parse(item)  # a ConfigError names the expression and the column
        return tuple(item.strip() for item in items)

    def describe(self) -> str:
        return "[expression, ...]"


@dataclass(frozen=True)
class Function(Check):
    """Something callable as `usage` says."""

    usage: str

    def __call__(self, name: str, value: Any) -> Any:
        if not callable(value):
            raise ConfigError(f"{name} must be callable as {self.usage}, got {value!r}")
        return value

    def describe(self) -> str:
        return "callable"


@dataclass(frozen=True)
class Boolean(Check):
    """True or False."""

    kind: ClassVar[type] = bool

    def __call__(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be True or False, got {value!r}")
        return value

    def describe(self) -> str:
        return "bool"


@dataclass(frozen=True)
class Seed(Check):
    """An int or a string, so that the same seed gives the same ``bot.random`` next time."""

    kind: ClassVar[type] = int

    def __call__(self, name: str, value: Any) -> int | str:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(
                f"{name} must be an int or a string (bot.random is seeded from "
                f"'{{seed}}:{{bot id}}', the same for every run), got {value!r}"
            )
        return value

    def describe(self) -> str:
        return "int or str"


@dataclass(frozen=True)
class DataSource(Check):
    """Test data: a ``.csv``/``.jsonl`` path (``"FILE:MODE"`` names the mode too), a list,
    or any iterable; the file itself is read before the start (``trio_bots._core.data``).

    Example:
        >>> DataSource()("data", "users.csv:cycle")
        'users.csv:cycle'
        >>> DataSource()("data", 42)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: data must be a file name (.csv, .jsonl), a list or ..., got 42
    """

    def __call__(self, name: str, value: Any) -> Any:
        if isinstance(value, str | os.PathLike | list | tuple):
            return value
        if isinstance(value, bytes | Mapping) or not hasattr(value, "__iter__"):
            raise ConfigError(
                f"{name} must be a file name (.csv, .jsonl), a list or an iterable of records, "
                f"got {value!r}"
            )
        return value

    def describe(self) -> str:
        return "a .csv/.jsonl path (\"FILE:MODE\"), a list or an iterable"


@dataclass(frozen=True)
class Implements(Check):
    """An object with the methods `methods`, such as `example` makes (duck-typed)."""

    methods: tuple[str, ...]
    example: str

    def __call__(self, name: str, value: Any) -> Any:
        missing = [m for m in self.methods if not callable(getattr(value, m, None))]
        if missing:
            raise ConfigError(
                f"{name} must be an object such as {self.example} (with "
                f"{', '.join(self.methods)}), got {value!r}, which has no {', '.join(missing)}"
            )
        return value

    def describe(self) -> str:
        return self.example


def cpus() -> int:
    """The CPUs this process may run on: what ``processes="auto"`` means.

    Example:
        >>> cpus() >= 1
        True
    """
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Processes(Check):
    """A number of shard processes >= 1, or ``"auto"``: one per CPU this process may use."""

    def __call__(self, name: str, value: Any) -> int:
        if value == "auto":
            return cpus()
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"{name} must be a number of processes >= 1 or \"auto\" (one per CPU), "
                f"got {value!r}"
            )
        return value

    def describe(self) -> str:
        return 'int >= 1, or "auto" (one per CPU)'


@dataclass(frozen=True)
class BotIds(Check):
    """Bot ids: a list (or any iterable) of ints >= 0, as a sorted tuple without repeats.

    Example:
        >>> BotIds()("trace_bots", [3, 0, 3])
        (0, 3)
        >>> BotIds()("trace_bots", 2)
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: trace_bots must be a list of bot ids such as [0, 5], got 2
    """

    kind: ClassVar[type] = int

    def __call__(self, name: str, value: Any) -> tuple[int, ...]:
        if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{name} must be a list of bot ids such as [0, 5], got {value!r}")
        ids = [_integer(f"{name} id", item, minimum=0) for item in value]
        return tuple(sorted(set(ids)))

    def describe(self) -> str:
        return "[bot id, ...]"
