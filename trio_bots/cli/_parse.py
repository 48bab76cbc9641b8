"""What the ``trio-bots`` command reads: flag values and scenario modules.

Every parser raises `ConfigError` with one line saying what was expected,
what was given and an example, so the CLI can print it and exit 2.

Example:
    >>> parse_duration("1m30s"), parse_schedule("30s:100,10s:0", what="bots")
    (90.0, [(30.0, 100.0), (10.0, 0.0)])
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import re
import sys
import traceback
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError

_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(us|µs|ms|s|m|h)")
_NUMBER = re.compile(r"(\d+(?:\.\d*)?|\.\d+)")


def parse_duration(text: str, *, name: str = "duration") -> float:
    """Seconds from ``500ms``, ``30s``, ``2m``, ``1h``, ``1m30s`` or plain ``2.5``.

    Raises:
        ConfigError: the text is not a duration.

    Example:
        >>> [parse_duration(t) for t in ("500ms", "30s", "2m", "1h", "1m30s", "2.5")]
        [0.5, 30.0, 120.0, 3600.0, 90.0, 2.5]
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
    """Stages from ``"30s:100,1m:100,10s:0"``: (seconds, target) pairs.

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
        seconds = parse_duration(duration, name=f"{name} stage {index + 1}")
        stages.append((seconds, _non_negative(target, f"{name} stage {index + 1} {what}")))
    return stages


def parse_rate(text: str) -> float | list[tuple[float, float]]:
    """Arrivals per second: a number, or stages such as ``"30s:100,1m:500"``.

    Example:
        >>> parse_rate("50"), parse_rate("10s:20,5s:0")
        (50.0, [(10.0, 20.0), (5.0, 0.0)])
    """
    if ":" in text:
        return parse_schedule(text, what="arrivals/s", name="rate")
    return _non_negative(text, "rate")


def parse_think_time(text: str) -> float | tuple[float, float]:
    """Think time: one duration, or ``LOW-HIGH`` for a uniform random pause.

    Example:
        >>> parse_think_time("1s"), parse_think_time("500ms-2s"), parse_think_time("0.5-1")
        (1.0, (0.5, 2.0), (0.5, 1.0))
    """
    low, sep, high = text.partition("-")
    if not sep:
        return parse_duration(text, name="think-time")
    return (parse_duration(low, name="think-time"), parse_duration(high, name="think-time"))


def parse_max_failures(text: str) -> int | None:
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
        raise ConfigError(f"max-failures: expected an integer >= 0 or 'none', got {text!r}")
    return value


def parse_host(text: str) -> tuple[str, int | None]:
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
            raise ConfigError(f"host: expected [IPV6]:PORT such as [::1]:8080, got {text!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:  # a name, or a bare IPv6 address without a port
        host, port_text = text, None
    if not host:
        raise ConfigError(f"host: expected HOST or HOST:PORT such as 127.0.0.1:8080, got {text!r}")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"host: the port must be a number from 1 to 65535, got {text!r}")
    return host, int(port_text)


def _non_negative(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0 or math.isinf(value):
        raise ConfigError(f"{name}: expected a number >= 0, got {text.strip()!r}")
    return value


@dataclass(frozen=True)
class Scenario:
    """A loaded scenario: its worker, its ``options`` dict and where it came from.

    Example:
        >>> Scenario("demo.py:worker", print, {}).spec
        'demo.py:worker'
    """

    spec: str
    worker: Any
    options: Mapping[str, Any] = field(default_factory=dict)


def split_spec(spec: str) -> tuple[str, str]:
    """Split ``path/to/file.py[:func]`` or ``package.module[:func]``; func defaults to worker.

    Example:
        >>> split_spec("load/chat.py:player"), split_spec("mypkg.bots")
        (('load/chat.py', 'player'), ('mypkg.bots', 'worker'))
    """
    target, sep, func = spec.rpartition(":")
    if sep and func.isidentifier() and target:
        return target, func
    return spec, "worker"


def load_scenario(spec: str) -> Scenario:
    """Import a scenario module and find its worker and ``options``.

    A path (with ``/`` or ending in ``.py``) is imported from that file, its
    folder put first on ``sys.path`` so it can import its neighbours; anything
    else is imported as a module, with the current directory on ``sys.path``.

    Raises:
        ConfigError: the file is missing, the import fails (the message shows
            the error and where it happened), or the function or ``options``
            is missing or of the wrong kind.

    Example:
        >>> load_scenario("no/such/file.py")
        Traceback (most recent call last):
        ...
        trio_bots._errors.ConfigError: scenario file not found: no/such/file.py
    """
    target, func = split_spec(spec)
    module = _import(target)
    worker = getattr(module, func, None)
    if worker is None:
        raise ConfigError(
            f"scenario {target} has no {func}(); define `async def {func}(bot): ...` "
            f"or name another function with {target}:NAME"
        )
    if not callable(worker) and not isinstance(worker, Mapping):
        raise ConfigError(f"scenario {target}: {func} must be an async function, got {worker!r}")
    options = getattr(module, "options", {})
    if not isinstance(options, Mapping):
        raise ConfigError(
            f"scenario {target}: `options` must be a dict such as {{'size': 10, 'duration': 30}}, "
            f"got {type(options).__name__}"
        )
    for key in options:
        if not isinstance(key, str):
            raise ConfigError(f"scenario {target}: `options` keys must be strings, got {key!r}")
    return Scenario(f"{target}:{func}", worker, dict(options))


def _import(target: str) -> types.ModuleType:
    is_path = target.endswith(".py") or os.sep in target or "/" in target
    if is_path:
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"scenario file not found: {target}")
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        name = f"trio_bots_scenario_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(f"cannot import {target}: not a Python source file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise ConfigError(f"cannot import {target}: {_brief(exc, path)}") from exc
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is not None and target.startswith(exc.name):
            raise ConfigError(
                f"scenario module not found: {target} (give a file path such as "
                f"path/to/scenario.py, or a module importable from here)"
            ) from exc
        raise ConfigError(f"cannot import {target}: {_brief(exc, None)}") from exc
    except Exception as exc:
        raise ConfigError(f"cannot import {target}: {_brief(exc, None)}") from exc


def _brief(exc: BaseException, path: Path | None) -> str:
    """``Type: message (file:line)``, the line being the deepest one in the scenario."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({Path(exc.filename).name}:{exc.lineno})"
        return f"{type(exc).__name__}: {exc.msg}{where}"
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if path is not None and Path(f.filename).resolve() == path.resolve()]
    chosen = ours or frames
    if chosen:
        frame = chosen[-1]
        where = f" ({Path(frame.filename).name}:{frame.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"
