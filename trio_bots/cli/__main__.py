"""``python -m trio_bots.cli``: the same as the ``trio-bots`` command."""

from . import main

main()
