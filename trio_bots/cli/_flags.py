"""The ``run`` command's swarm-option flags, derived from `trio_bots._core.options.OPTIONS`.

Each option declared with a `Flag` becomes one keyword parameter of
``run``, annotated for typer (``Annotated[int | None, typer.Option(...)]``),
so ``--help``, typer's own checks and ``typer.main.get_command`` see them
like any written parameter. Its value reaches ``run`` under the option's
name, None when the flag is not given; `flag_options` turns the given ones
into option values with each flag's parser.

Example:
    >>> [p.name for p in swarm_parameters()][:3]
    ['spawn_rate', 'stages', 'rate']
    >>> flag_options({"duration": "2m", "max_bots": 5, "pace": None})
    {'duration': 120.0, 'max_bots': 5}
    >>> flag_spelling("rate", "100"), flag_spelling("size")
    ('--rate 100', '--bots')
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar, cast

import typer

from .._core.checks import Choice
from .._core.options import OPTIONS, Flag, OptionSpec, option

#: The flag for ``size``, which is an argument of `swarm`, not an option.
BOTS_FLAG = "--bots"

_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def _choices(spec: OptionSpec) -> type[enum.StrEnum]:
    assert isinstance(spec.check, Choice)
    title = spec.name.title().replace("_", "")
    members = {choice: choice for choice in spec.check.choices}
    return cast("type[enum.StrEnum]", enum.StrEnum(title, members))


def _value_type(spec: OptionSpec) -> Any:
    """What typer converts the flag's text to before `flag_options` sees it."""
    assert spec.flag is not None
    if spec.flag.parse is not None:
        kind: Any = str  # the flag's own parser reads the text
    elif isinstance(spec.check, Choice):
        kind = _choices(spec)
    else:
        kind = spec.check.kind
    return list[kind] if spec.flag.repeatable else kind


def _parameter(spec: OptionSpec) -> inspect.Parameter:
    flag = spec.flag
    assert flag is not None
    info = typer.Option(
        spec.flag_name,
        metavar=flag.metavar,
        help=flag.help,
        show_default=spec.shown_default() or False,
        rich_help_panel=flag.panel,
    )
    return inspect.Parameter(
        spec.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[_value_type(spec) | None, info],
    )


def swarm_parameters() -> list[inspect.Parameter]:
    """One ``run`` parameter per option that has a flag, in the order of `OPTIONS`."""
    return [_parameter(spec) for spec in OPTIONS if spec.flag is not None]


def with_swarm_flags(*, after: str) -> Callable[[_Fn], _Fn]:
    """Give a command taking ``**swarm_flags`` one parameter per option flag, after `after`.

    The function's own parameters keep their annotations and defaults; its
    ``**swarm_flags`` receives the option flags by option name.
    """

    def decorate(fn: _Fn) -> _Fn:
        own = [
            param.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for param in inspect.signature(fn, eval_str=True).parameters.values()
            if param.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        at = [param.name for param in own].index(after) + 1
        params = [*own[:at], *swarm_parameters(), *own[at:]]
        fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return fn

    return decorate


def flag_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """The option values that the given flags spell; flags not given (None) are left out.

    Raises:
        ConfigError: a flag's text is not a value of its option.
    """
    options: dict[str, Any] = {}
    for name, value in given.items():
        if value is None or (isinstance(value, list | tuple) and not value):
            continue
        spec = option(name)
        assert spec.flag is not None and spec.flag_name is not None
        flag = spec.flag
        if isinstance(value, list | tuple):
            options[name] = [_one_value(flag, spec.flag_name, item) for item in value]
        else:
            options[name] = _one_value(flag, spec.flag_name, value)
    return options


def _one_value(flag: Flag, flag_name: str, value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if flag.parse is not None:
        return flag.parse(value, flag_name)
    return value


def flag_spelling(name: str, value: str = "") -> str:
    """``--rate``, or ``--rate 100``: how the command's messages write an option."""
    flag = BOTS_FLAG if name == "size" else option(name).flag_name
    if flag is None:
        return f"{name}={value}"
    return f"{flag} {value}" if value else flag
