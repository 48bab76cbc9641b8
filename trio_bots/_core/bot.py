"""The Bot: one simulated player, with its own sockets, inbox and measurements.

Example:
    >>> import trio, trio_bots
    >>> async def worker(bot):
    ...     async with bot.measure("think"):
    ...         await trio.sleep(0)
    >>> result = trio.run(trio_bots.swarm, worker, 3)
    >>> result.stats["think"].count
    3
"""

from __future__ import annotations

import logging
import random
from collections.abc import Coroutine, Hashable
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sniffio
import trio

from .._errors import RequestTimeout
from . import transport as _transport
from .messaging import _RECV_ALL, Inbox, Message, RecvFilter, SendFilter

if TYPE_CHECKING:
    import ssl

    from .load import Iterations
    from .swarm import Swarm

logger = logging.getLogger("trio_bots")

_current_bot: ContextVar[Bot] = ContextVar("trio_bots.current_bot")

_NO_GROUPS: frozenset[Hashable] = frozenset()


def current_bot() -> Bot:
    """The `Bot` running the current task, for workers that are not passed one.

    Raises:
        RuntimeError: outside a bot's task.

    Example:
        >>> import trio, trio_bots
        >>> async def worker():
        ...     print("I am bot", trio_bots.current_bot().id)
        >>> _ = trio_bots.start(worker, size=1)
        I am bot 0
    """
    bot = _current_bot.get(None)
    if bot is None and _in_trio():
        bot = _bot_of_trio_task(trio.lowlevel.current_task())
    if bot is None:
        raise RuntimeError("current_bot() was called outside a bot's task")
    return bot


def _in_trio() -> bool:
    try:
        return sniffio.current_async_library() == "trio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


def _bot_of_trio_task(task: Any) -> Bot | None:
    """The bot whose task is `task` or one of its ancestors.

    On trio a bot's task runs ``Swarm._run_bot(bot, worker)``; finding the bot
    there costs nothing per bot, where a context variable costs ~130 bytes.
    """
    from .swarm import Swarm

    run_bot_code = Swarm._run_bot.__code__
    while task is not None:
        frame = getattr(task.coro, "cr_frame", None)
        if frame is not None and frame.f_code is run_bot_code:
            return frame.f_locals.get("bot")  # type: ignore[no-any-return]
        nursery = task.parent_nursery
        task = nursery.parent_task if nursery is not None else None
    return None


class Bot:
    """One bot of a swarm. The swarm makes them; workers receive one.

    Attributes:
        id: unique int, given in start order from 0 and never reused.
        swarm: the `Swarm` this bot belongs to.

    Everything the bot opens or adopts with `own` is closed when it ends,
    however it ends.

    Example:
        >>> import trio, trio_bots
        >>> async def worker(bot):
        ...     bot.join("red" if bot.id % 2 else "blue")
        ...     print(bot.id, sorted(bot.groups))
        >>> _ = trio.run(trio_bots.swarm, worker, 1)
        0 ['blue']
    """

    __slots__ = (
        "__weakref__",
        "_groups",
        "_inbox",
        "_lateness",
        "_log",
        "_owned",
        "_random",
        "_scope",
        "_stopping",
        "id",
        "swarm",
    )

    def __init__(self, swarm: Swarm, bot_id: int) -> None:
        self.id = bot_id
        self.swarm = swarm
        self._groups: frozenset[Hashable] = _NO_GROUPS
        self._inbox: Inbox | None = None
        #: None, one resource, or a list of them (oldest first).
        self._owned: Any = None
        self._random: random.Random | None = None
        self._log: logging.LoggerAdapter[logging.Logger] | None = None
        self._stopping: Any = None
        self._scope: Any = None
        #: Seconds this bot's current open-model iteration started late (CO correction).
        self._lateness = 0.0

    def __repr__(self) -> str:
        return f"<Bot {self.id}>"

    # -- identity and helpers

    @property
    def groups(self) -> frozenset[Hashable]:
        """The groups this bot is a member of."""
        return self._groups

    @property
    def stopping(self) -> Any:
        """An Event set when a graceful stop reaches this bot (duration, stop, signal, ramp)."""
        if self._stopping is not None:
            return self._stopping
        swarm = self.swarm
        if swarm._load is None or not swarm._load.scoped:
            return swarm._stopping  # one shared event, unless bots can be retired one by one
        event = self._stopping = swarm._backend.event()
        if swarm._stopping.is_set():
            event.set()
        return event

    @property
    def random(self) -> random.Random:
        """A `random.Random` for this bot, seeded from (``seed``, id) when ``seed`` is given."""
        if self._random is None:
            seed = self.swarm.options["seed"]
            self._random = random.Random(None if seed is None else f"{seed}:{self.id}")
        return self._random

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger tagged with the bot id (``extra={"bot_id": id}``, messages prefixed)."""
        if self._log is None:
            self._log = _BotLogger(logger, {"bot_id": self.id})
        return self._log

    # -- resources

    def own(self, resource: Any) -> Any:
        """Adopt `resource` (anything with ``aclose()`` or ``close()``); returns it.

        Owned resources are closed when the bot ends, newest first, shielded
        from cancellation.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     a, b = trio.testing.memory_stream_pair()
            ...     bot.own(a); bot.own(b)
            >>> _ = trio.run(trio_bots.swarm, worker, 1)
        """
        if not (hasattr(resource, "aclose") or hasattr(resource, "close")):
            raise TypeError(f"bot.own() takes something with aclose() or close(), got {resource!r}")
        owned = self._owned
        if owned is None:
            self._owned = resource  # most bots own one socket: no list for it
            return resource
        if not isinstance(owned, list):
            owned = self._owned = [owned]
        owned.append(resource)
        count = len(owned)
        if count >= 16 and count & (count - 1) == 0:
            # Clients that reconnect (HTTP after "Connection: close") hand the bot a stream
            # per connection and close the old ones themselves: forget those, so a long run
            # does not grow this list without bound. At powers of two: amortised O(1).
            owned[:] = [r for r in owned if not _is_closed(r)]
        return resource

    async def _close_owned(self) -> None:
        owned = self._owned
        if owned is None:
            return
        self._owned = None
        if not isinstance(owned, list):
            owned = [owned]
        with self.swarm._backend.cancel_scope(shield=True):
            for resource in reversed(owned):
                try:
                    aclose = getattr(resource, "aclose", None)
                    if aclose is not None:
                        await aclose()
                    else:
                        resource.close()
                except Exception as exc:  # a broken resource must not hide the bot's outcome
                    self.log.debug("closing %r failed: %r", resource, exc)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        *,
        tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> Any:
        """Connect to (host, port) over TCP, owned by this bot, with TCP_NODELAY.

        Returns a `trio.SocketStream` (a `trio.SSLStream` with ``tls=True``,
        the handshake already done) on trio; an adapter with ``send_all``,
        ``receive_some`` and ``aclose`` on asyncio. TLS verifies the server by
        default; pass ``ssl_context`` to trust other certificates.

        Raises:
            ConnectError: naming host and port; the OS error is the ``__cause__``.

        Example:
            >>> async def worker(bot):
            ...     stream = await bot.connect_tcp("127.0.0.1", 7777)
            ...     await stream.send_all(b"PING\\n")
        """
        stream = await _transport.connect_tcp(
            host, port, tls=tls, ssl_context=ssl_context, server_hostname=server_hostname
        )
        return self.own(stream)

    async def connect_udp(self, host: str, port: int) -> _transport.UDPConnection:
        """A UDP socket connected to (host, port), owned by this bot.

        Example:
            >>> async def worker(bot):
            ...     udp = await bot.connect_udp("127.0.0.1", 9999)
            ...     await udp.send(b"ping")
        """
        return self.own(await _transport.connect_udp(host, port))  # type: ignore[no-any-return]

    async def open_tcp_listener(self, port: int = 0, host: str = "127.0.0.1") -> Any:
        """A TCP listener owned by this bot, for bots that act as servers.

        Example:
            >>> async def worker(bot):
            ...     listener = await bot.open_tcp_listener()
            ...     port = listener.socket.getsockname()[1]
        """
        return self.own(await _transport.open_tcp_listener(port, host))

    # -- groups and messages

    def join(self, group: Hashable) -> None:
        """Join a named group (any hashable name but None).

        Example:
            >>> async def worker(bot):
            ...     bot.join("table-1")
        """
        self.swarm._groups.join(self, group)
        self._groups = self._groups | {group}

    def leave(self, group: Hashable) -> None:
        """Leave a group; leaving one you are not in does nothing.

        Example:
            >>> async def worker(bot):
            ...     bot.leave("table-1")
        """
        if group in self._groups:
            self._groups = self._groups - {group}
            self.swarm._groups.leave(self, group)

    def send(self, filter: SendFilter, data: Any) -> Coroutine[Any, Any, list[int]]:
        """Send `data` to the bots `filter` names; returns the ids that received it.

        Under ``on_full="block"`` it waits for room in full inboxes; a receiver
        that ends meanwhile is skipped. The sender never receives its own
        group message.

        Example:
            >>> async def worker(bot):
            ...     ids = await bot.send(trio_bots.send_group("table-1"), b"hello")
        """
        # The engine's coroutine itself: one frame less on every suspend and resume.
        return self.swarm._groups.send(self, filter, data)

    def send_nowait(self, filter: SendFilter, data: Any) -> list[int]:
        """Like `send` without waiting.

        Under ``on_full="block"`` it raises `trio.WouldBlock`, delivering to
        nobody, when a receiver's inbox is full.

        Example:
            >>> async def worker(bot):
            ...     bot.send_nowait(trio_bots.send_all(), "tick")
        """
        return self.swarm._groups.send_nowait(self, filter, data)

    def receive(self, filter: RecvFilter = _RECV_ALL) -> Coroutine[Any, Any, Message]:
        """The oldest message that matches `filter`, waiting for one if needed.

        Raises:
            BotGone: when the awaited sender (``recv_from``) or every other bot
                has ended and nothing matching is queued.

        Example:
            >>> async def worker(bot):
            ...     msg = await bot.receive(trio_bots.recv_from(0))
        """
        return self.swarm._groups.receive(self, filter)  # as in send()

    def receive_nowait(self, filter: RecvFilter = _RECV_ALL) -> Message:
        """The oldest matching message; raises `trio.WouldBlock` when there is none.

        Example:
            >>> async def worker(bot):
            ...     msg = bot.receive_nowait(trio_bots.recv_all())
        """
        return self.swarm._groups.receive_nowait(self, filter)

    def recv(self, filter: RecvFilter = _RECV_ALL) -> list[Message]:
        """Every matching message, oldest first, without waiting (the seed's ``recv``).

        Example:
            >>> async def worker(bot):
            ...     for msg in bot.recv(trio_bots.recv_all()):
            ...         print(msg.data)
        """
        return self.swarm._groups.recv(self, filter)

    def has_message(self, filter: RecvFilter = _RECV_ALL) -> bool:
        """Whether a message matching `filter` is waiting.

        Example:
            >>> async def worker(bot):
            ...     while not bot.has_message():
            ...         await bot.step()
        """
        return self.swarm._groups.has_message(self, filter)

    async def barrier(self, name: Hashable, group: Hashable | None = None) -> None:
        """Wait until every live member of `group` (or every live bot) has arrived.

        Bots that end, join or leave are accounted for at once, so a dead bot
        never deadlocks a barrier. The barrier is reusable.

        Raises:
            ConfigError: for a group barrier when this bot is not a member.

        Example:
            >>> async def worker(bot):
            ...     bot.join("room")
            ...     await bot.barrier("all-joined", group="room")
        """
        await self.swarm._groups.barrier(self, name, group)

    async def step(self) -> None:
        """A barrier over every live bot: the seed's ``yield``.

        Example:
            >>> async def worker(bot):
            ...     await bot.step()
        """
        await self.swarm._groups.barrier(self, "step", None)

    # -- iterating

    def iterations(self) -> Iterations:
        """The worker's loop: ``async for it in bot.iterations(): ...``.

        It ends when a graceful stop reaches this bot, or after ``iterations=N``;
        it waits ``think_time``/``pace`` between iterations, and in the open model
        (``rate=``) each step is one scheduled arrival. ``with it:`` around the
        body records an exception as a failed iteration and goes on.

        Example:
            >>> async def worker(bot):
            ...     async for it in bot.iterations():
            ...         with it:
            ...             async with bot.measure("ping"):
            ...                 await stream.send_all(b"PING\\n")
        """
        from .load import Iterations

        return Iterations(self)

    # -- measuring

    def measure(self, name: str) -> Measure:
        """Measure the body's latency and success under `name`.

        An `Exception` in the body counts as a failure and is re-raised;
        cancellation is not recorded. ``m.fail(reason)`` marks the request
        failed without raising; ``m.add_bytes(sent, received)`` records bytes.

        Example:
            >>> async def worker(bot):
            ...     async with bot.measure("login") as m:
            ...         await stream.send_all(b"LOGIN\\n")
            ...         reply = await stream.receive_some()
            ...         if reply != b"OK\\n":
            ...             m.fail(f"unexpected reply {reply!r}")
        """
        return Measure(self, name)

    def record(self, name: str, seconds: float, *, failed: bool = False) -> None:
        """Record a measurement taken elsewhere.

        Example:
            >>> async def worker(bot):
            ...     bot.record("server-side", 0.012)
        """
        recorder = self.swarm._recorder
        if failed:
            recorder.record_failure(name, "Failed", "recorded as failed", self.id)
        else:
            recorder.record(name, int(seconds * 1_000_000))

    def count(self, name: str, n: int = 1) -> None:
        """Add `n` to the custom counter `name`.

        Example:
            >>> async def worker(bot):
            ...     bot.count("moves")
        """
        self.swarm._recorder.count(name, n)

    def gauge(self, name: str, value: float) -> None:
        """Set the custom gauge `name` (the last value wins).

        Example:
            >>> async def worker(bot):
            ...     bot.gauge("queue_depth", 12)
        """
        self.swarm._recorder.gauge(name, value)


def _is_closed(resource: Any) -> bool:
    """Whether a stream's socket is already closed (false when it cannot tell)."""
    sock = getattr(resource, "socket", None)
    if sock is None:
        sock = getattr(getattr(resource, "transport_stream", None), "socket", None)
    fileno = getattr(sock, "fileno", None)
    if fileno is None:
        return False
    try:
        return bool(fileno() == -1)
    except Exception:
        return False


class _BotLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs.setdefault("extra", self.extra)
        return f"[bot {self.extra['bot_id']}] {msg}", kwargs  # type: ignore[index]


class Measure:
    """The context manager `Bot.measure` returns; see there.

    Example:
        >>> async def worker(bot):
        ...     async with bot.measure("ping") as m:
        ...         m.add_bytes(64, 64)
    """

    __slots__ = ("_bot", "_extra", "_name", "_start")

    def __init__(self, bot: Bot, name: str) -> None:
        self._bot = bot
        self._name = name
        #: Made only when needed (fail, add_bytes, request_timeout): the hot path stays short.
        self._extra: _MeasureExtra | None = None
        self._start = 0.0

    def _extras(self) -> _MeasureExtra:
        extra = self._extra
        if extra is None:
            extra = self._extra = _MeasureExtra()
        return extra

    def fail(self, reason: str) -> None:
        """Mark this request failed, with `reason`, without raising."""
        self._extras().failure = reason

    def add_bytes(self, sent: int, received: int) -> None:
        """Add to the bytes sent and received under this name."""
        extra = self._extras()
        extra.sent += sent
        extra.received += received

    async def __aenter__(self) -> Measure:
        swarm = self._bot.swarm
        timeout = swarm._request_timeout
        if timeout is not None:
            scope = self._extras().scope = swarm._backend.cancel_scope(
                deadline=swarm._clock() + timeout
            )
            scope.__enter__()
        self._start = swarm._clock()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        bot = self._bot
        swarm = bot.swarm
        elapsed = swarm._clock() - self._start
        if exc_type is None and self._extra is None and not bot._lateness:
            swarm._recorder.record(self._name, int(elapsed * 1_000_000))  # the common case
            return
        self._finish(exc_type, exc, tb, elapsed)

    def _finish(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        elapsed: float,
    ) -> None:
        bot = self._bot
        swarm = bot.swarm
        recorder = swarm._recorder
        name = self._name
        extra = self._extra or _NO_EXTRA
        timed_out = False
        if extra.scope is not None:
            scope, extra.scope = extra.scope, None
            # __exit__ returns True on a clean exit too; only cancelled_caught means "timed out".
            scope.__exit__(exc_type, exc, tb)
            timed_out = bool(scope.cancelled_caught)
        if extra.sent or extra.received:
            recorder.add_bytes(name, extra.sent, extra.received)
        if timed_out:
            message = f"{name!r} took longer than request_timeout={swarm._request_timeout} s"
            recorder.record_failure(name, "RequestTimeout", message, bot.id)
            raise RequestTimeout(message) from None
        if exc_type is None:
            if extra.failure is None:
                lateness = bot._lateness
                if lateness:
                    recorder.record_corrected(
                        name, int((elapsed + lateness) * 1_000_000), int(elapsed * 1_000_000)
                    )
                else:
                    recorder.record(name, int(elapsed * 1_000_000))
            else:
                recorder.record_failure(name, "Failed", extra.failure, bot.id)
        elif issubclass(exc_type, Exception):
            recorder.record_failure(name, exc_type.__name__, str(exc), bot.id)


class _MeasureExtra:
    """What a measurement needs beyond its latency: failure, bytes, timeout scope."""

    __slots__ = ("failure", "received", "scope", "sent")

    def __init__(self) -> None:
        self.failure: str | None = None
        self.sent = 0
        self.received = 0
        self.scope: Any = None


_NO_EXTRA = _MeasureExtra()
