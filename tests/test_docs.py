"""The Sphinx site: every public name is in the generated reference.

Sphinx itself is not imported here (its deprecation warnings would trip
``filterwarnings = error``); ``.ci/run`` builds the site with ``-W``. These tests
read the autodoc directives of ``docs/reference/*.rst`` instead.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import trio_bots
import trio_bots.distributed
import trio_bots.metrics
import trio_bots.protocols
import trio_bots.report
import trio_bots.testing

DOCS = Path(__file__).parent.parent / "docs"
DIRECTIVE = re.compile(r"^\.\. auto(\w+)::\s+(\S+)\s*$", re.MULTILINE)

PUBLIC: list[ModuleType] = [
    trio_bots,
    trio_bots.metrics,
    trio_bots.report,
    trio_bots.testing,
    trio_bots.distributed,
    *(
        importlib.import_module(f"trio_bots.protocols.{name}")
        for name in trio_bots.protocols.__all__
    ),
]


def documented() -> dict[str, str]:
    """Each target of an ``.. auto*::`` directive in the reference, and its kind."""
    found: dict[str, str] = {}
    for page in sorted((DOCS / "reference").glob("*.rst")):
        for kind, target in DIRECTIVE.findall(page.read_text()):
            found[target] = kind
    return found


def resolve(target: str) -> Any:
    module_name, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except ModuleNotFoundError:
        return importlib.import_module(target)


def test_every_directive_names_a_real_object() -> None:
    for target in documented():
        resolve(target)  # raises on a typo or a removed name


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_every_public_name_is_in_the_reference(module: ModuleType) -> None:
    targets = documented()
    # A re-export is covered where its object is documented (trio_bots.Stats as
    # trio_bots.metrics.Stats); a plain number or string only under its own name.
    objects = [resolve(t) for t, kind in targets.items() if kind != "module"]
    missing = [
        f"{module.__name__}.{name}"
        for name in module.__all__
        if f"{module.__name__}.{name}" not in targets
        and (
            isinstance(getattr(module, name), (int, float, str))
            or not any(obj is getattr(module, name) for obj in objects)
        )
    ]
    assert not missing, (
        f"public names with no autodoc directive in docs/reference/*.rst: {missing}; "
        "add an `.. autofunction::`/`.. autoclass::`/`.. autodata::` line for each"
    )


def test_every_public_module_has_a_reference_section() -> None:
    targets = documented()
    modules = {t for t, kind in targets.items() if kind == "module"}
    assert {m.__name__ for m in PUBLIC} - {"trio_bots"} <= modules
    assert "trio_bots.protocols" in modules


def test_the_reference_is_in_the_toctree() -> None:
    index = (DOCS / "reference" / "index.md").read_text()
    for page in (DOCS / "reference").glob("*.rst"):
        assert re.search(rf"^{page.stem}$", index, re.MULTILINE), page.name
    assert "reference/index" in (DOCS / "index.md").read_text()


# -- the tutorial: every snippet runs ------------------------------------------------------

ROOT = DOCS.parent


def test_the_tutorial_page_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import doctest
    import sys

    monkeypatch.chdir(ROOT)  # the page runs from the repository's root
    monkeypatch.setattr(sys, "path", list(sys.path))  # it adds docs/tutorial
    before = set(sys.modules)
    try:
        failed, attempted = doctest.testfile(str(DOCS / "tutorial.md"), module_relative=False)
    finally:
        for name in {"chatbots", "chat_server", "_support"} - before:  # the page's imports
            sys.modules.pop(name, None)
    assert attempted > 15
    assert failed == 0


def tutorial_commands() -> list[str]:
    text = (DOCS / "tutorial.md").read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_tutorial_command_line_runs(tmp_path: Path) -> None:
    import shlex
    import subprocess
    import sys

    commands = tutorial_commands()
    assert commands and all(c.startswith("trio-bots run ") for c in commands)
    for command in commands:
        argv = shlex.split(command.replace("out/", f"{tmp_path}/"))
        proc = subprocess.run(
            [sys.executable, "-m", "trio_bots.cli", *argv[1:]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "tutorial.json").exists()


def test_the_tutorial_pytest_file_passes() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "docs/tutorial/test_chatbots.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
