"""Shared test configuration.

Scenario files under tests/scenarios/ are inputs for the CLI tests (some are
broken on purpose), not test modules: keep ``--doctest-modules`` out of them.
"""

collect_ignore_glob = ["scenarios/*"]
