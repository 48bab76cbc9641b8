"""The real nginx and redis-server for the tests that need them.

`service_address` gives ``HOST:PORT`` of a running service: the one
``.ci/run`` started (``TRIO_BOTS_REDIS`` / ``TRIO_BOTS_NGINX``), else one it
starts itself in a temporary folder with examples/services.py, else it skips
the test, saying how to install the binary. Each test module wraps it in a
session-scoped fixture of its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import services  # noqa: E402  (examples/services.py, standard library only)


def service_address(name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yield the address of service ``name`` ("redis" or "nginx") for a whole session."""
    given = os.environ.get(f"TRIO_BOTS_{name.upper()}")
    if given:
        yield given
        return
    if services.find(name) is None:
        program, package = services.BINARIES[name]
        pytest.skip(f"{program} is not installed (apt-get install {package}; .ci/run installs it)")
    folder = tmp_path_factory.mktemp(name)
    _pid, address = services.start(name, folder)
    try:
        yield address
    finally:
        services.stop(name, folder)
