"""Package plumbing shared by the public packages (a leaf: imports nothing of ours).

Example:
    >>> class Thing:
    ...     pass
    >>> Thing.__module__ = "somewhere._private"
    >>> fixup_module_metadata("somewhere", {"Thing": Thing})
    >>> Thing.__module__
    'somewhere'

"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fixup_module_metadata(module_name: str, namespace: Mapping[str, Any]) -> None:
    """Give the public names of `namespace` the module `module_name`, as trio does.

    Classes, functions and their methods that were defined in a private module
    of this package get ``__module__ = module_name``, so that ``repr``,
    tracebacks and documentation show the name users import.
    """
    seen: set[int] = set()
    package = module_name.split(".")[0]

    def fix(name: str, obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        mod = getattr(obj, "__module__", None)
        if mod is None or not mod.startswith(package + "."):
            return
        if "._" not in mod and not mod.split(".")[-1].startswith("_"):
            return  # already a public module
        obj.__module__ = module_name
        if isinstance(obj, type):
            for attr_name, attr in obj.__dict__.items():
                if callable(attr) and hasattr(attr, "__module__"):
                    fix(attr_name, attr)

    for name, obj in namespace.items():
        fix(name, obj)
