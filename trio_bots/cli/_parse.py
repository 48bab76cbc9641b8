"""What the ``trio-bots`` command reads besides flag values: scenario specs and modules.

The flag values are read by the parsers that the options' declarations name
(`trio_bots._core.parse`). Everything here raises `ConfigError` with one
line saying what was expected and what was given, so the CLI can print it
and exit 2.

Example:
    >>> split_spec("load/chat.py:player")
    ('load/chat.py', 'player')
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import traceback
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError


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
        trio_bots.ConfigError: scenario file not found: no/such/file.py
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


def load_handler(spec: str) -> Any:
    """Import ``--serve FILE.py:HANDLER`` or ``module:HANDLER``: an ``async def handler(stream)``.

    HANDLER defaults to ``handler``.

    Raises:
        ConfigError: the module cannot be imported, or HANDLER is missing or not async.

    Example:
        >>> load_handler("no/such/server.py:handle")
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: --serve: scenario file not found: no/such/server.py
    """
    target, sep, func = spec.rpartition(":")
    if not (sep and func.isidentifier() and target):
        target, func = spec, "handler"
    try:
        module = _import(target)
    except ConfigError as exc:
        raise ConfigError(f"--serve: {exc}") from exc
    handler = getattr(module, func, None)
    if handler is None or not inspect.iscoroutinefunction(handler):
        found = "nothing" if handler is None else repr(handler)
        raise ConfigError(
            f"--serve {spec}: {target} must define a module-level `async def {func}(stream)`, "
            f"found {found}"
        )
    return handler


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
