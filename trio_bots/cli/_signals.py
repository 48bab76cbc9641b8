"""Signals outside the swarm: SIGTERM from the first line, and reports finished first.

While a swarm runs, it handles SIGINT and SIGTERM itself (a graceful stop, then
a second signal cancels). Outside it:

- `handle_sigterm` (the first thing `main` does) makes SIGTERM interrupt the
  command as Ctrl-C does, through the SIGINT machinery (so trio and asyncio
  deliver it at a safe point), and remembers it, so the exit code is 143;
- `finish_first` wraps the reports: a first signal is remembered and the
  reports are finished; a second one interrupts at once.

Example:
    >>> with finish_first() as pending:
    ...     pass
    >>> pending.signum is None
    True
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

_HANDLED = (signal.SIGINT, signal.SIGTERM)


@dataclass
class _Received:
    """The last signal that interrupted the command outside a swarm."""

    signum: int | None = None


_received = _Received()


def interrupted_code() -> int:
    """The exit code of an interrupt outside the swarm: 143 after SIGTERM, else 130.

    Example:
        >>> interrupted_code()
        130
    """
    signum = _received.signum
    return 128 + (signal.SIGINT if signum is None else signum)


def _interrupt(signum: int) -> None:
    """Interrupt as Ctrl-C would: through the SIGINT handler when there is one."""
    _received.signum = signum
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        # trio's or asyncio's handler: it raises KeyboardInterrupt at a safe point.
        signal.raise_signal(signal.SIGINT)
        return
    raise KeyboardInterrupt


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _interrupt(signum)


def handle_sigterm() -> None:
    """Make SIGTERM interrupt the command like Ctrl-C, exiting 143 instead of -15.

    Only from the main thread (elsewhere Python cannot install handlers).

    Example:
        >>> import signal
        >>> before = signal.getsignal(signal.SIGTERM)
        >>> handle_sigterm()
        >>> signal.getsignal(signal.SIGTERM) is not before
        True
        >>> _ = signal.signal(signal.SIGTERM, before)
    """
    _received.signum = None
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


@dataclass
class Pending:
    """The first signal `finish_first` held back, or None."""

    signum: int | None = None


@contextmanager
def finish_first() -> Iterator[Pending]:
    """Hold back a first SIGINT or SIGTERM until the block ends; a second interrupts at once.

    The caller exits with ``128 + pending.signum`` after the block when a signal came.
    """
    pending = Pending()
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        if pending.signum is None:
            pending.signum = signum
            return
        _received.signum = signum
        raise KeyboardInterrupt  # the second signal: stop writing now

    previous: dict[int, Any] = {signum: signal.signal(signum, hold) for signum in _HANDLED}
    try:
        yield pending
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
