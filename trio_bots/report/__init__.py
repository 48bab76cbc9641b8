"""Reporters over a run snapshot (``SwarmResult.to_dict()``).

Console (rich), JSON (schema "trio-bots/1"), CSV (Locust's columns) and a
self-contained HTML page (plotly, the ``html`` extra). They read the plain
snapshot dict only, never the engine, so a snapshot loaded from disk or
merged from several processes renders the same way. See docs/reports.md.
"""

from .._util import fixup_module_metadata
from ..metrics import format_duration as format_duration
from ._console import render_console as render_console
from ._csv import write_csv as write_csv
from ._html import write_html as write_html
from ._json import read_json as read_json
from ._json import to_json_dict as to_json_dict
from ._json import write_json as write_json

__all__ = [
    "format_duration",
    "read_json",
    "render_console",
    "to_json_dict",
    "write_csv",
    "write_html",
    "write_json",
]

fixup_module_metadata(__name__, {name: globals()[name] for name in __all__})
del fixup_module_metadata

