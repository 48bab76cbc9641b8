"""Seeding trio's scheduler, so that a seeded swarm replays the same order of tasks.

Trio runs the tasks that are ready in a random order each pass. Its deterministic
mode, which trio's own Hypothesis support turns on, sorts each pass by task
creation order and shuffles it with one `random.Random` instance: seeding that
instance makes the order of a run a function of its seed. Both are private trio
API (``trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING`` and ``._r``). This
module is the only place that touches them; pyproject.toml pins the trio
versions it is tested with, and tests/test_simulation.py fails if they change.

Example:
    >>> import trio
    >>> async def order():
    ...     seen = []
    ...     async with trio.open_nursery() as nursery:
    ...         for name in "abcde":
    ...             nursery.start_soon(lambda n=name: seen.append(n) or trio.sleep(0))
    ...     return "".join(seen)
    >>> def seeded_run():
    ...     with seeded_scheduler(42):
    ...         return trio.run(order)
    >>> seeded_run() == seeded_run()
    True
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Where trio keeps its scheduler's deterministic mode and random instance (private API).
TRIO_RUN_MODULE = "trio._core._run"
DETERMINISTIC_FLAG = "_ALLOW_DETERMINISTIC_SCHEDULING"
SCHEDULER_RANDOM = "_r"

# How many seeded swarms run now: the mode is turned off again only after the last.
_active = 0
_was_on = False


def trio_scheduler() -> tuple[Any, random.Random]:
    """Trio's run module and its scheduler's random instance.

    Raises:
        RuntimeError: this trio has neither; see pyproject.toml for the versions supported.

    Example:
        >>> module, rng = trio_scheduler()
        >>> isinstance(rng, random.Random)
        True
    """
    module = importlib.import_module(TRIO_RUN_MODULE)
    rng = getattr(module, SCHEDULER_RANDOM, None)
    if not hasattr(module, DETERMINISTIC_FLAG) or not isinstance(rng, random.Random):
        import trio

        raise RuntimeError(
            f"trio {trio.__version__} has no {TRIO_RUN_MODULE}.{DETERMINISTIC_FLAG} and "
            f"{SCHEDULER_RANDOM}: seeded swarms cannot make its scheduler deterministic; "
            "install a trio version that trio-bots supports (see its pyproject.toml)"
        )
    return module, rng


@contextmanager
def seeded_scheduler(seed: int | str) -> Iterator[None]:
    """Within the block, trio schedules ready tasks in an order that only `seed` decides.

    The scheduler's random instance is seeded on entry (from a string, so the
    same in every process). The deterministic mode stays on after the block if
    it was on before it (Hypothesis may have turned it on).
    """
    global _active, _was_on
    module, rng = trio_scheduler()
    if _active == 0:
        _was_on = bool(getattr(module, DETERMINISTIC_FLAG))
    _active += 1
    setattr(module, DETERMINISTIC_FLAG, True)
    rng.seed(f"trio-bots scheduler:{seed}")
    try:
        yield
    finally:
        _active -= 1
        if _active == 0:
            setattr(module, DETERMINISTIC_FLAG, _was_on)
