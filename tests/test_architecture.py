"""The package's own rules: no module uses another module's underscore names.

`lint-imports` (run by .ci/run) checks which modules may import which; this test
checks the rule it cannot see: a module may import a private *module*, but never
another module's underscore *name*, and reads no underscore attribute that it
does not define itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import trio_bots

PACKAGE = Path(trio_bots.__file__).parent


def _underscore(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_in(tree: ast.AST) -> set[str]:
    """Every name a module defines: functions, classes, assigned names and attributes,
    and the strings of its ``__slots__``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
    return names


#: Our private modules and packages: importing one of them by name is allowed.
MODULES = {path.stem for path in PACKAGE.rglob("*.py")} | {
    path.name for path in PACKAGE.rglob("*") if path.is_dir()
}


def violations(source: str, where: str, modules: set[str] = MODULES) -> list[str]:
    tree = ast.parse(source)
    defined = _defined_in(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found += [
                f"{where}:{node.lineno}: imports {alias.name} from {node.module or '.'}"
                for alias in node.names
                if _underscore(alias.name) and alias.name not in modules
            ]
        elif isinstance(node, ast.Attribute) and _underscore(node.attr):
            if node.attr not in defined:
                found.append(f"{where}:{node.lineno}: reads .{node.attr}, defined elsewhere")
    return found


def test_the_checker_finds_what_it_should() -> None:
    bad = "from ._hdr import _encode\nswarm._recorder.tick()\n"
    assert len(violations(bad, "x.py", modules={"_hdr"})) == 2
    fine = (
        "from . import _hdr\n"
        "class A:\n    def f(self):\n        self._x = 1\n        return self._x\n"
    )
    assert violations(fine, "x.py", modules={"_hdr"}) == []


def test_no_module_uses_another_modules_underscore_names() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += violations(path.read_text(), str(path.relative_to(PACKAGE)))
    assert found == []
