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

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
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
        cancel_shielded_checkpoint: an async function that yields but never raises
            Cancelled: for after an operation that has happened.
        open_task_group: ``async with open_task_group() as tg`` gives something with
            ``start_soon(fn, *args, name=...)`` and ``cancel_scope`` (a trio nursery on trio).
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
        "cancel_shielded_checkpoint",
        "checkpoint",
        "checkpoint_if_cancelled",
        "current_time",
        "end_of_channel",
        "event",
        "is_trio",
        "name",
        "nothing_to_take",
        "open_channel",
        "open_task_group",
        "would_block",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_trio = name == "trio"
        self.open_channel: Callable[[int], tuple[Any, Any]]
        if self.is_trio:
            self.current_time: Callable[[], float] = trio.current_time
            self.checkpoint: Callable[[], Any] = trio.lowlevel.checkpoint
            self.checkpoint_if_cancelled: Callable[[], Any] = trio.lowlevel.checkpoint_if_cancelled
            self.cancel_shielded_checkpoint: Callable[[], Any] = (
                trio.lowlevel.cancel_shielded_checkpoint
            )
            self.open_channel = _trio_channel
            # a trio nursery, not anyio's TaskGroup: anyio wraps every task in a
            # TaskHandle with its own CancelScope and Event (~1 KB and ~14 µs per bot)
            self.open_task_group: Callable[[], Any] = trio.open_nursery
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
            self.cancel_shielded_checkpoint = anyio.lowlevel.cancel_shielded_checkpoint
            self.open_channel = _anyio_channel
            self.open_task_group = anyio.create_task_group
            self.event = anyio.Event
            self.cancel_scope = anyio.CancelScope
            self.would_block = anyio.WouldBlock
            self.broken = (anyio.BrokenResourceError, anyio.ClosedResourceError)
            self.end_of_channel = (anyio.EndOfStream, anyio.ClosedResourceError)
        self.nothing_to_take = (self.would_block, *self.end_of_channel)

    def bound_clock(self) -> Callable[[], float]:
        """The running loop's clock as one bound method, for hot paths.

        ``trio.current_time()`` goes through three Python calls (the run context,
        the runner, the clock); the clock's own bound method is one. Call this
        inside the running loop: the clock belongs to the current run (MockClock
        included).
        """
        if self.is_trio:
            return trio.lowlevel.current_clock().current_time
        if self.name == "asyncio":
            import asyncio

            return asyncio.get_running_loop().time
        return self.current_time


    def bound_stopwatch(self) -> Callable[[], float]:
        """A clock for durations only: its differences are those of `bound_clock`, but
        it may have another origin, so never compare it with a deadline.

        Under trio's own clock (``current_time()`` is an offset plus
        `time.perf_counter`) and asyncio's (`time.monotonic`) it is that C function
        itself: no Python call per read (about 50 ns less on each). Any other
        clock, `trio.testing.MockClock` included, is read through `bound_clock`.

        Example:
            >>> import trio
            >>> async def main():
            ...     return current_backend().bound_stopwatch()
            >>> trio.run(main) is time.perf_counter
            True
        """
        if self.is_trio:
            clock_type = type(trio.lowlevel.current_clock())
            if clock_type.__name__ == "SystemClock" and clock_type.__module__.startswith("trio."):
                return time.perf_counter
        elif self.name == "asyncio":
            import asyncio

            loop_time = type(asyncio.get_running_loop()).time
            if loop_time is asyncio.BaseEventLoop.time:
                return time.monotonic
        return self.bound_clock()


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


#: An anyio ``backend`` name and its ``backend_options``: what starts a loop.
LoopSpec = tuple[str, Mapping[str, Any]]


def running_loop_spec() -> LoopSpec:
    """The anyio ``backend`` and ``backend_options`` that start a loop like the running one.

    For a shard process, which runs its own loop: asyncio on uvloop gives
    ``{"use_uvloop": True}``, so the shards run on uvloop too.

    Example:
        >>> import anyio
        >>> async def spec():
        ...     return running_loop_spec()
        >>> anyio.run(spec, backend="asyncio")
        ('asyncio', {})
        >>> anyio.run(spec, backend="asyncio", backend_options={"use_uvloop": True})
        ('asyncio', {'use_uvloop': True})
        >>> anyio.run(spec, backend="trio")
        ('trio', {})
    """
    name = sniffio.current_async_library()
    if name != "asyncio":
        return name, {}
    import asyncio

    on_uvloop = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    return name, {"use_uvloop": True} if on_uvloop else {}


class LoopCaller:
    """Calls a function in one event loop, from that loop's thread or any other.

    `bind` it from inside the loop; until then, and from the loop's own thread,
    `call` calls at once. From another thread it waits for the loop to run it,
    and does nothing once the loop has closed.

    Example:
        >>> import threading, trio
        >>> async def main():
        ...     caller, seen = LoopCaller(), []
        ...     caller.bind()
        ...     here = threading.get_ident()
        ...     caller.call(seen.append, "same thread")
        ...     def elsewhere():
        ...         caller.call(lambda: seen.append(threading.get_ident() == here))
        ...     await trio.to_thread.run_sync(elsewhere)
        ...     return seen
        >>> trio.run(main)
        ['same thread', True]
    """

    __slots__ = ("_thread", "_token")

    def __init__(self) -> None:
        self._token: Any = None
        self._thread: int | None = None

    def bind(self) -> None:
        """Remember the running loop (call it from inside the loop)."""
        self._token = anyio.lowlevel.current_token()
        self._thread = threading.get_ident()

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        """``fn(*args)`` in the bound loop; see the class."""
        token = self._token
        if token is None or threading.get_ident() == self._thread:
            fn(*args)
            return
        try:
            anyio.from_thread.run_sync(fn, *args, token=token)
        except RuntimeError:
            pass  # the event loop closed in the meantime: nothing is left to call
