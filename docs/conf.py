"""Sphinx configuration: build with ``sphinx-build -W -b html docs docs/_build/html``.

The Markdown pages are read by myst-parser; the API reference is generated from
the docstrings (autodoc, napoleon for the Google style, sphinxcontrib-trio for
async functions and context managers) and the CLI page from the command itself:
typer's own Markdown docs over ``typer.main.get_command(app)``, written to
``docs/_generated/cli.md`` when the build starts. (sphinx-click cannot read
it: typer 0.2x vendors its own click, whose classes are not click's.)
Nothing is downloaded: intersphinx reads the inventories kept in ``docs/_inv/``
(rebuild them with ``bash docs/_inv/build.sh``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sphinx.application import Sphinx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from trio_bots import __version__  # noqa: E402

project = "trio_bots"
author = "the trio_bots authors"
copyright = "the trio_bots authors"
release = version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinxcontrib_trio",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_inv", "_generated", "Thumbs.db", ".DS_Store"]

# Markdown: anchors for headings, so that ``page.md#a-heading`` links resolve.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# The reference: Google-style docstrings, members in source order, signatures
# with their annotations, backticks as cross-references to Python objects.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attributes: sections as fields, not a second description of each attribute.
napoleon_use_ivar = True
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
default_role = "py:obj"
nitpicky = False

# Offline: every inventory is a file in docs/_inv/; the URLs are only link targets.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3.11/", str(HERE / "_inv" / "python.inv")),
    "pytest": ("https://docs.pytest.org/en/7.2.x/", str(HERE / "_inv" / "pytest.inv")),
    "trio": ("https://trio.readthedocs.io/en/stable/", str(HERE / "_inv" / "trio.inv")),
    "anyio": ("https://anyio.readthedocs.io/en/stable/", str(HERE / "_inv" / "anyio.inv")),
}
intersphinx_timeout = 1

html_theme = "furo"
html_title = f"trio_bots {release}"


def _write_cli_reference(app: Sphinx) -> None:
    """Write the ``trio-bots`` reference from the command itself, for reference/cli.md."""
    import typer.cli
    import typer.main

    from trio_bots.cli import app as cli_app

    command = typer.main.get_command(cli_app)
    ctx = command.context_class(command, info_name="trio-bots")
    text = typer.cli.get_docs_for_click(obj=command, ctx=ctx, name="trio-bots")
    text = _plain_brackets(text)
    out = HERE / "_generated" / "cli.md"
    out.parent.mkdir(exist_ok=True)
    if not out.exists() or out.read_text() != text:  # unchanged: no rebuild of the page
        out.write_text(text)


def _plain_brackets(markdown: str) -> str:
    """Escape ``[`` in prose, outside code spans and fenced blocks: help texts are plain
    text, and "p95[10s](login)" must not become a Markdown link."""
    lines, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced:
            parts = line.split("`")
            line = "`".join(p.replace("[", "\\[") if i % 2 == 0 else p for i, p in enumerate(parts))
        lines.append(line)
    return "".join(lines)


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", _write_cli_reference)
