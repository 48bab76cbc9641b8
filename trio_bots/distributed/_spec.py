"""Workers and factories as importable specs: what a shard process imports instead of a pickle.

A child process cannot receive a function object, only the place to import it
from: ``("module", "pkg.bots", "player")``, ``("script", "/abs/run.py", "player")``
for the user's ``__main__`` script, or ``("path", "/abs/load.py", "player")`` for a
scenario file that the command imported by path. `spec_of` finds it, or
raises `ConfigError` saying why the function cannot travel (a closure, a
lambda, a generator factory...); `load` imports it in the child.

Example:
    >>> import json
    >>> spec_of(json.dumps, "worker")
    ('module', 'json', 'dumps')
    >>> load(('module', 'json', 'dumps')) is json.dumps
    True
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import types
from collections.abc import Mapping
from typing import Any

from .._errors import ConfigError

#: Set in a shard process while it imports the user's script: a swarm started by that
#: import (a driver script without ``if __name__ == "__main__":``) is not run again.
BOOTSTRAP_ENV = "TRIO_BOTS_SHARD_BOOTSTRAP"

#: The module name a shard gives the user's ``__main__`` script when it imports it.
MAIN_ALIAS = "__trio_bots_main__"

#: What the command names scenario modules it imports by path (see ``cli._parse``).
SCENARIO_PREFIX = "trio_bots_scenario_"

Spec = tuple[str, str, str]


class ShardBootstrap(BaseException):
    """Raised by a swarm that a shard process's import of the user's script starts: the
    import stops there, and the shard takes the worker from what ran before it."""


def spec_of(fn: Any, what: str) -> Spec:
    """Where a child process imports `fn` from.

    Raises:
        ConfigError: `fn` is not a module-level function (a closure, a lambda, a
            ``functools.partial``, a bound method) or cannot be imported again.

    Example:
        >>> def outer():
        ...     async def inner(bot): ...
        ...     return inner
        >>> spec_of(outer(), "worker")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: the worker outer.<locals>.inner is a closure ...
    """
    name = getattr(fn, "__qualname__", None)
    module_name = getattr(fn, "__module__", None)
    if not inspect.isfunction(fn) or name is None or module_name is None:
        raise ConfigError(
            f"the {what} {fn!r} cannot be sent to a shard process: with processes=, give a "
            f"function defined at the top level of a module or script"
        )
    if name == "<lambda>" or "<lambda>" in name:
        raise ConfigError(
            f"the {what} is a lambda, which a shard process cannot import: with processes=, "
            f"define it with def at the top level of a module or script"
        )
    if "<locals>" in name:
        raise ConfigError(
            f"the {what} {name} is a closure (defined inside a function), which a shard "
            f"process cannot import: with processes=, define it at the top level of a module "
            f"or script, and pass what it needs through bot.swarm.options or module globals"
        )
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if module_name in ("__main__", MAIN_ALIAS) or module_name.startswith(SCENARIO_PREFIX):
        if path is None:
            raise ConfigError(
                f"the {what} {name} was defined interactively, which a shard process cannot "
                f"import: with processes=, put it in a file"
            )
        kind = "path" if module_name.startswith(SCENARIO_PREFIX) else "script"
        return (kind, os.path.abspath(path), name)
    return ("module", module_name, name)


def workers_spec(worker: Any) -> Any:
    """`spec_of` for a worker, or for each of a weighted mapping ``{worker: weight}``."""
    if isinstance(worker, Mapping):
        return {"mapping": [(spec_of(fn, "worker"), weight) for fn, weight in worker.items()]}
    return spec_of(worker, "worker")


def factory_spec(factory: Any) -> Spec:
    """`spec_of` for the seed's ``factory``; a generator function is refused."""
    if inspect.isgeneratorfunction(factory):
        raise ConfigError(
            f"the factory {factory.__qualname__} is a generator function: it feeds bots one by "
            f"one, which cannot be split exactly over shards; with processes=, return a list "
            f"of awaitables, e.g. [worker(i) for i in range(size)]"
        )
    return spec_of(factory, "factory")


def _import_path(path: str, main: bool) -> types.ModuleType:
    name = MAIN_ALIAS if main else SCENARIO_PREFIX + os.path.splitext(os.path.basename(path))[0]
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    os.environ[BOOTSTRAP_ENV] = "1"
    try:
        module_spec.loader.exec_module(module)
    except ShardBootstrap:
        pass  # the script started its swarm: what it defined before that is here
    finally:
        del os.environ[BOOTSTRAP_ENV]
    return module


def load(spec: Spec) -> Any:
    """Import what `spec` names (in a shard process).

    Raises:
        ConfigError: it cannot be imported, or is not there.
    """
    kind, where, name = spec
    try:
        if kind in ("path", "script"):
            module = _import_path(where, main=kind == "script")
        else:
            module = importlib.import_module(where)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"a shard process cannot import {where}: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(
                f"a shard process imported {where} but found no {name} there; define it at "
                f"the top level, before the swarm is started"
            )
    return obj


def load_workers(spec: Any) -> Any:
    """The worker, or weighted mapping, that `workers_spec` described."""
    if isinstance(spec, dict):
        return {load(fn_spec): weight for fn_spec, weight in spec["mapping"]}
    return load(spec)
