"""The few primitives the engine needs, picked once per swarm for the running loop.

The engine is written against anyio so that it runs on every anyio backend.
On trio, the hot-path primitives (the clock, memory channels, events and
cancel scopes) are trio's own: anyio's wrappers around them cost a Python
call per operation, and users of trio get real trio objects.

Example:
    >>> import trio
    >>> async def main():
    ...     return current_backend().name
    >>> trio.run(main)
    'trio'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import sniffio
import trio


class Backend:
    """The primitives of one event loop, looked up once and then used directly.

    Attributes:
        name: ``"trio"`` or the anyio backend name (``"asyncio"``).
        is_trio: True on trio.
        current_time: the loop's clock, in seconds.
        checkpoint: an async function that yields to the scheduler.
        checkpoint_if_cancelled: an async function that raises if cancelled, and
            otherwise returns without yielding.
        open_channel: ``open_channel(size) -> (send, receive)`` memory channel ends
            with ``send``/``send_nowait``/``receive``/``receive_nowait``/``close``.
        event: the Event class.
        cancel_scope: the CancelScope class.
        would_block: the exception ``*_nowait`` raises when it would block.
        broken: the exceptions a send to a closed channel raises.
        end_of_channel: the exceptions a receive from a closed channel raises.
    """

    __slots__ = (
        "broken",
        "cancel_scope",
        "checkpoint",
        "checkpoint_if_cancelled",
        "current_time",
        "end_of_channel",
        "event",
        "is_trio",
        "name",
        "open_channel",
        "would_block",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_trio = name == "trio"
        self.open_channel: Callable[[int], tuple[Any, Any]]
        if self.is_trio:
            self.current_time: Callable[[], float] = trio.current_time
            self.checkpoint: Callable[[], Any] = trio.lowlevel.checkpoint
            self.checkpoint_if_cancelled: Callable[[], Any] = (
                trio.lowlevel.checkpoint_if_cancelled
            )
            self.open_channel = _trio_channel
            self.event: Callable[[], Any] = trio.Event
            self.cancel_scope: Callable[..., Any] = trio.CancelScope
            self.would_block: type[BaseException] = trio.WouldBlock
            self.broken: tuple[type[BaseException], ...] = (
                trio.BrokenResourceError,
                trio.ClosedResourceError,
            )
            self.end_of_channel: tuple[type[BaseException], ...] = (
                trio.EndOfChannel,
                trio.ClosedResourceError,
            )
        else:
            self.current_time = anyio.current_time
            self.checkpoint = anyio.lowlevel.checkpoint
            self.checkpoint_if_cancelled = anyio.lowlevel.checkpoint_if_cancelled
            self.open_channel = _anyio_channel
            self.event = anyio.Event
            self.cancel_scope = anyio.CancelScope
            self.would_block = anyio.WouldBlock
            self.broken = (anyio.BrokenResourceError, anyio.ClosedResourceError)
            self.end_of_channel = (anyio.EndOfStream, anyio.ClosedResourceError)


def _trio_channel(size: int) -> tuple[Any, Any]:
    return trio.open_memory_channel[Any](size)


def _anyio_channel(size: int) -> tuple[Any, Any]:
    return anyio.create_memory_object_stream[Any](size)


_BACKENDS: dict[str, Backend] = {}


def current_backend() -> Backend:
    """The `Backend` of the running event loop.

    Raises:
        RuntimeError: when called outside an async context.
    """
    name = sniffio.current_async_library()
    backend = _BACKENDS.get(name)
    if backend is None:
        backend = _BACKENDS[name] = Backend(name)
    return backend
