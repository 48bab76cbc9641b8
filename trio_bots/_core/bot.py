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
from collections.abc import Coroutine, Hashable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._errors import RequestTimeout
from . import transport
from .load import Iterations
from .messaging import RECV_ALL, Message, Messaging, RecvFilter, SendFilter
from .runtime import BotState, Runtime

if TYPE_CHECKING:
    import ssl

    from .swarm import Swarm

logger = logging.getLogger("trio_bots")

#: The bot of the running task: set once at the top of each bot's task, which has its own
#: copy of the context on trio and on asyncio alike.
_current_bot: ContextVar[Bot] = ContextVar("trio_bots.current_bot")


def current_bot() -> Bot:
    """The `Bot` running the current task, for workers that are not passed one.

    Tasks that a bot starts in its own nursery see the same bot.

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
    if bot is None:
        raise RuntimeError("current_bot() was called outside a bot's task")
    return bot


def enter_bot_task(bot: Bot) -> None:
    """Make `bot` the `current_bot` of the running task (the swarm calls it at the top
    of each bot's task)."""
    _current_bot.set(bot)


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

    __slots__ = ("__weakref__", "_messaging", "_runtime", "_state", "id", "swarm")

    def __init__(
        self, swarm: Swarm, state: BotState, runtime: Runtime, messaging: Messaging
    ) -> None:
        self.id = state.id
        self.swarm = swarm
        self._state = state
        self._runtime = runtime
        self._messaging = messaging

    def __repr__(self) -> str:
        return f"<Bot {self.id}>"

    # -- identity and helpers

    @property
    def groups(self) -> frozenset[Hashable]:
        """The groups this bot is a member of."""
        return self._state.groups

    @property
    def stopping(self) -> Any:
        """An Event set when a graceful stop reaches this bot (duration, stop, signal, ramp)."""
        return self._runtime.stopping_event(self._state)

    @property
    def random(self) -> random.Random:
        """A `random.Random` for this bot, seeded from (``seed``, id) when ``seed`` is given."""
        state = self._state
        if state.random is None:
            seed = self._runtime.options["seed"]
            state.random = random.Random(None if seed is None else f"{seed}:{self.id}")
        return state.random

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger tagged with the bot id (``extra={"bot_id": id}``, messages prefixed)."""
        state = self._state
        if state.log is None:
            state.log = _BotLogger(logger, {"bot_id": self.id})
        return state.log

    @property
    def data(self) -> Any:
        """This bot's test data record (the ``data=`` option), or None without it.

        Bot i gets record i by its global id (``i mod n`` in ``cycle`` mode); with
        ``data_per="iteration"`` it is the record of the current iteration (None
        before the first). A CSV row is a dict of the header's names.

        Raises:
            ConfigError: ``"FILE has only N records"`` when a ``sequential`` or
                ``shuffle`` source has run out (this fails the bot).

        Example:
            >>> import functools, trio, trio_bots
            >>> seen = {}
            >>> async def worker(bot):
            ...     seen[bot.id] = bot.data["user"]
            >>> users = [{"user": "ann"}, {"user": "bob"}]
            >>> _ = trio.run(functools.partial(trio_bots.swarm, worker, 3, data=users,
            ...                                data_mode="cycle"))
            >>> [seen[i] for i in range(3)]
            ['ann', 'bob', 'ann']
        """
        feeder = self._runtime.data
        if feeder is None:
            return None
        return feeder.for_bot(self)

    @property
    def owned(self) -> tuple[Any, ...]:
        """What this bot owns now, oldest first (see `own`)."""
        owned = self._state.owned
        if owned is None:
            return ()
        return tuple(owned) if isinstance(owned, list) else (owned,)

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
        state = self._state
        owned = state.owned
        if owned is None:
            state.owned = resource  # most bots own one socket: no list for it
            return resource
        if not isinstance(owned, list):
            owned = state.owned = [owned]
        owned.append(resource)
        count = len(owned)
        if count >= 16 and count & (count - 1) == 0:
            # Clients that reconnect (HTTP after "Connection: close") hand the bot a stream
            # per connection and close the old ones themselves: forget those, so a long run
            # does not grow this list without bound. At powers of two: amortised O(1).
            owned[:] = [r for r in owned if not _is_closed(r)]
        return resource

    async def close_owned(self) -> None:
        """Close everything this bot owns, newest first, shielded from cancellation
        (the swarm calls it when the bot ends)."""
        state = self._state
        owned = state.owned
        if owned is None:
            return
        state.owned = None
        if not isinstance(owned, list):
            owned = [owned]
        with self._runtime.backend.cancel_scope(shield=True):
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
        default; pass ``ssl_context`` to trust other certificates. With the
        ``network`` option (`trio_bots.testing.Network`), the stream is a
        simulated one to the handler served there, and no socket is opened.

        Raises:
            ConnectError: naming host and port; the OS error is the ``__cause__``.

        Example:
            >>> import trio, trio_bots
            >>> from trio_bots.protocols.testing import open_server
            >>> async def echo(stream):
            ...     await stream.send_all(await stream.receive_some())
            >>> async def worker(bot):
            ...     host, port = bot.swarm.host.split(":")
            ...     stream = await bot.connect_tcp(host, int(port))
            ...     await stream.send_all(b"PING\\n")
            ...     print(type(stream).__name__, await stream.receive_some())
            >>> async def main():
            ...     async with open_server(echo) as host:
            ...         await trio_bots.swarm(worker, 1, host=host)
            >>> trio.run(main)
            SocketStream b'PING\\n'
        """
        stream = await transport.connect_tcp(
            host,
            port,
            tls=tls,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            network=self._runtime.options["network"],
        )
        return self.own(stream)

    async def connect_udp(self, host: str, port: int) -> transport.UDPConnection:
        """A UDP socket connected to (host, port), owned by this bot.

        Example:
            >>> import trio, trio_bots
            >>> async def main():
            ...     server = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            ...     await server.bind(("127.0.0.1", 0))
            ...     async def worker(bot):
            ...         udp = await bot.connect_udp(*server.getsockname())
            ...         await udp.send(b"ping")
            ...     await trio_bots.swarm(worker, 1)
            ...     print((await server.recvfrom(100))[0])
            ...     server.close()
            >>> trio.run(main)
            b'ping'
        """
        network = self._runtime.options["network"]
        udp = await transport.connect_udp(host, port, network=network)
        return self.own(udp)  # type: ignore[no-any-return]

    async def open_tcp_listener(self, port: int = 0, host: str = "127.0.0.1") -> Any:
        """A TCP listener owned by this bot, for bots that act as servers.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     if bot.id == 0:  # the server bot
            ...         listener = await bot.open_tcp_listener()
            ...         await bot.send(trio_bots.send_bots([1]), listener.socket.getsockname())
            ...         stream = bot.own(await listener.accept())
            ...         print("server got", await stream.receive_some())
            ...     else:
            ...         host, port = (await bot.receive()).data
            ...         stream = await bot.connect_tcp(host, port)
            ...         await stream.send_all(b"hello")
            >>> _ = trio.run(trio_bots.swarm, worker, 2)
            server got b'hello'
        """
        network = self._runtime.options["network"]
        return self.own(await transport.open_tcp_listener(port, host, network=network))

    # -- groups and messages

    def join(self, group: Hashable) -> None:
        """Join a named group (any hashable name but None).

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     bot.join(f"table-{bot.id % 2}")
            ...     bot.join("lobby")
            ...     if bot.id == 1:
            ...         print(sorted(bot.groups))
            >>> _ = trio.run(trio_bots.swarm, worker, 2)
            ['lobby', 'table-1']
        """
        self._messaging.join(self._state, group)

    def leave(self, group: Hashable) -> None:
        """Leave a group; leaving one you are not in does nothing.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     bot.join("table-1")
            ...     bot.leave("table-1")
            ...     bot.leave("never-joined")  # nothing happens
            ...     print(bot.groups)
            >>> _ = trio.run(trio_bots.swarm, worker, 1)
            frozenset()
        """
        self._messaging.leave(self._state, group)

    def send(self, filter: SendFilter, data: Any) -> Coroutine[Any, Any, list[int]]:
        """Send `data` to the bots `filter` names; returns the ids that received it.

        Under ``on_full="block"`` it waits for room in full inboxes; a receiver
        that ends meanwhile is skipped. The sender never receives its own
        group message.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     bot.join("table-1")
            ...     await bot.step()
            ...     if bot.id == 0:
            ...         ids = await bot.send(trio_bots.send_group("table-1"), b"hello")
            ...         print("delivered to", sorted(ids))
            ...     else:
            ...         await bot.receive()
            >>> _ = trio.run(trio_bots.swarm, worker, 3)
            delivered to [1, 2]
        """
        # The engine's coroutine itself: one frame less on every suspend and resume.
        return self._messaging.send(self._state, filter, data)

    def send_nowait(self, filter: SendFilter, data: Any) -> list[int]:
        """Like `send` without waiting.

        Under ``on_full="block"`` it raises `trio.WouldBlock`, delivering to
        nobody, when a receiver's inbox is full.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     await bot.step()
            ...     if bot.id == 0:
            ...         print(sorted(bot.send_nowait(trio_bots.send_all(), "tick")))
            ...     else:
            ...         await bot.receive()
            >>> _ = trio.run(trio_bots.swarm, worker, 3)
            [1, 2]
        """
        return self._messaging.send_nowait(self._state, filter, data)

    def receive(self, filter: RecvFilter = RECV_ALL) -> Coroutine[Any, Any, Message]:
        """The oldest message that matches `filter`, waiting for one if needed.

        Raises:
            BotGone: when the awaited sender (``recv_from``) or every other bot
                has ended and nothing matching is queued.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     if bot.id == 0:
            ...         await bot.send(trio_bots.send_bots([1]), "hi")
            ...     else:
            ...         msg = await bot.receive(trio_bots.recv_from(0))
            ...         print(msg.sender, msg.data)
            >>> _ = trio.run(trio_bots.swarm, worker, 2)
            0 hi
        """
        return self._messaging.receive(self._state, filter)  # as in send()

    def receive_nowait(self, filter: RecvFilter = RECV_ALL) -> Message:
        """The oldest matching message; raises `trio.WouldBlock` when there is none.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     try:
            ...         bot.receive_nowait(trio_bots.recv_all())
            ...     except trio.WouldBlock:
            ...         print("nothing yet")
            >>> _ = trio.run(trio_bots.swarm, worker, 1)
            nothing yet
        """
        return self._messaging.receive_nowait(self._state, filter)

    def recv(self, filter: RecvFilter = RECV_ALL) -> list[Message]:
        """Every matching message, oldest first, without waiting (the seed's ``recv``).

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     if bot.id == 0:
            ...         for n in range(3):
            ...             await bot.send(trio_bots.send_bots([1]), n)
            ...     await bot.step()
            ...     if bot.id == 1:
            ...         print([msg.data for msg in bot.recv(trio_bots.recv_all())])
            >>> _ = trio.run(trio_bots.swarm, worker, 2)
            [0, 1, 2]
        """
        return self._messaging.recv(self._state, filter)

    def has_message(self, filter: RecvFilter = RECV_ALL) -> bool:
        """Whether a message matching `filter` is waiting.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     if bot.id == 0:
            ...         await bot.send(trio_bots.send_bots([1]), "go")
            ...     await bot.step()
            ...     if bot.id == 1:
            ...         print(bot.has_message(), bot.has_message(trio_bots.recv_from(7)))
            >>> _ = trio.run(trio_bots.swarm, worker, 2)
            True False
        """
        return self._messaging.has_message(self._state, filter)

    async def barrier(
        self, name: Hashable, group: Hashable | None = None, parties: int | None = None
    ) -> None:
        """Wait until every live member of `group` (or every live bot) has arrived.

        Bots that end, join or leave are accounted for at once, so a dead bot
        never deadlocks a barrier. The barrier is reusable: each release begins
        a new generation under the same name.

        A barrier never releases while a bot that was started has not yet run
        to its first checkpoint: so ``bot.join(room)`` then
        ``await bot.barrier("in", group=room)`` waits for every roommate, even
        when trio happens to run one bot first. With ``parties=N`` the barrier
        waits for N arrivals instead (at most the live bots), as
        `threading.Barrier` does; every call to one barrier gives the same N.

        Raises:
            ConfigError: for a group barrier when this bot is not a member.

        Example:
            >>> import trio, trio_bots
            >>> released = []
            >>> async def worker(bot):
            ...     bot.join("room")
            ...     await trio.sleep(bot.id)  # arrive at different times
            ...     await bot.barrier("all-joined", group="room")
            ...     released.append(trio.current_time())
            >>> _ = trio.run(trio_bots.swarm, worker, 3,
            ...              clock=trio.testing.MockClock(autojump_threshold=0))
            >>> released
            [2.0, 2.0, 2.0]
        """
        await self._messaging.barrier(self._state, name, group, parties)

    async def step(self) -> None:
        """A barrier over every live bot: the seed's ``yield``.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     for turn in range(2):
            ...         if bot.id == 0:
            ...             print("turn", turn)
            ...         await bot.step()
            >>> _ = trio.run(trio_bots.swarm, worker, 5)
            turn 0
            turn 1
        """
        await self._messaging.barrier(self._state, "step", None)

    # -- iterating

    def iterations(self) -> Iterations:
        """The worker's loop: ``async for it in bot.iterations(): ...``.

        It ends when a graceful stop reaches this bot, or after ``iterations=N``;
        it waits ``think_time``/``pace`` between iterations, and in the open model
        (``rate=``) each step is one scheduled arrival. ``with it:`` around the
        body records an exception as a failed iteration and goes on.

        Example:
            >>> import functools, trio, trio_bots
            >>> async def worker(bot):
            ...     async for it in bot.iterations():
            ...         with it:
            ...             async with bot.measure("ping"):
            ...                 await trio.sleep(0.01)
            ...             if it.index == 1:
            ...                 raise ValueError("a failed iteration, and the loop goes on")
            >>> result = trio.run(functools.partial(trio_bots.swarm, worker, 2, iterations=3))
            >>> result.stats["ping"].count, result.stats["iteration"].failure_count
            (6, 2)
        """
        return Iterations(self, self._state, self._runtime)

    # -- measuring

    def measure(self, name: str, tags: Mapping[str, Any] | None = None) -> Measure:
        """Measure the body's latency and success under `name`.

        An `Exception` in the body counts as a failure and is re-raised
        (`RequestTimeout` too). A body left by a cancellation, or any other
        `BaseException`, counts in ``stats[name].cancelled``: not a latency,
        not a failure. So ``count + failure_count + cancelled`` is every block
        entered. ``m.fail(reason)`` marks the request failed without raising;
        ``m.add_bytes(sent, received)`` records bytes. `tags` (and those of an
        enclosing `tagged` block) are dimensions of the measurement:
        ``stats[name]`` aggregates every tag set, and ``stats.tagged(name)``
        gives each one (see ``docs/tags.md``).

        It is a context manager of both kinds: ``async with bot.measure(name)``,
        or a plain ``with bot.measure(name):`` around the same awaits, which
        means the same (failure, cancellation, ``request_timeout``, the open
        model's correction, tags, traces) and costs less: no coroutine to make
        and run on the way in and out.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     with bot.measure("nap"):  # a plain with: the cheaper form
            ...         await trio.sleep(0)
            >>> trio.run(trio_bots.swarm, worker, 2).stats["nap"].count
            2

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     a, b = trio.testing.memory_stream_pair()
            ...     async with bot.measure("login") as m:
            ...         await a.send_all(b"LOGIN\\n")
            ...         await b.send_all(b"NO\\n" if bot.id else b"OK\\n")
            ...         reply = await a.receive_some()
            ...         if reply != b"OK\\n":
            ...             m.fail(f"unexpected reply {reply!r}")
            >>> stats = trio.run(trio_bots.swarm, worker, 3).stats["login"]
            >>> stats.count, stats.failure_count
            (1, 2)
        """
        runtime = self._runtime
        if tags is None and not runtime.bot_tags:
            return Measure(runtime, self._state, name)  # untagged: the hot path
        return Measure(runtime, self._state, self._tag_key(name, tags))

    def _tag_key(self, name: str, tags: Mapping[str, Any] | None) -> str:
        runtime = self._runtime
        ambient = runtime.bot_tags.get(self.id)
        if ambient is not None:
            tags = ambient if not tags else {**ambient, **tags}
        if not tags:
            return name
        return runtime.tag_keys.key(name, tags)

    @contextmanager
    def tagged(self, **tags: Any) -> Iterator[None]:
        """Tag every measurement of this bot inside the block (a plain ``with``).

        Blocks nest, the inner values winning; ``measure(..., tags=)`` adds to them.
        The tags apply to the bot's measurements in every task it runs.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     with bot.tagged(region="eu" if bot.id else "us"):
            ...         async with bot.measure("GET /item"):
            ...             await trio.sleep(0)
            >>> stats = trio.run(trio_bots.swarm, worker, 3).stats
            >>> stats["GET /item"].count, sorted(stats.tagged("GET /item"))
            (3, ['region=eu', 'region=us'])
            >>> stats["GET /item{region=eu}"].count
            2
        """
        bot_tags = self._runtime.bot_tags
        outer = bot_tags.get(self.id)
        bot_tags[self.id] = {**outer, **tags} if outer else dict(tags)
        try:
            yield
        finally:
            if outer is None:
                bot_tags.pop(self.id, None)
            else:
                bot_tags[self.id] = outer

    def record(
        self,
        name: str,
        seconds: float,
        *,
        failed: bool = False,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a measurement taken elsewhere (with `tags`, as `measure` has them).

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     bot.record("server-side", 0.012)
            >>> trio.run(trio_bots.swarm, worker, 2).stats["server-side"].max
            0.012
        """
        if tags is not None or self._runtime.bot_tags:
            name = self._tag_key(name, tags)
        recorder = self._runtime.recorder
        if failed:
            recorder.record_failure(name, "Failed", "recorded as failed", self.id)
        else:
            recorder.record(name, int(seconds * 1_000_000))

    def count(self, name: str, n: int = 1) -> None:
        """Add `n` to the custom counter `name`.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     bot.count("moves")
            ...     bot.count("moves", 2)
            >>> trio.run(trio_bots.swarm, worker, 2).metrics["counters"]
            {'moves': 6}
        """
        self._runtime.recorder.count(name, n)

    def gauge(self, name: str, value: float) -> None:
        """Set the custom gauge `name` (the last value wins).

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     bot.gauge("queue_depth", 12)
            >>> trio.run(trio_bots.swarm, worker, 1).metrics["gauges"]
            {'queue_depth': 12}
        """
        self._runtime.recorder.gauge(name, value)


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
        >>> import trio, trio_bots
        >>> async def worker(bot):
        ...     async with bot.measure("ping") as m:
        ...         m.add_bytes(64, 64)
        >>> trio.run(trio_bots.swarm, worker, 2).stats["ping"].bytes_sent
        128
    """

    __slots__ = ("_extra", "_name", "_runtime", "_start", "_state")

    def __init__(self, runtime: Runtime, state: BotState, name: str) -> None:
        self._runtime = runtime
        self._state = state
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

    # The plain ``with`` form is the fast one: ``async with`` makes and runs a coroutine
    # for each of __aenter__ and __aexit__; a sync context manager can wrap awaits too.
    # The two pairs are written out, not one calling the other: a call is what they save.

    def __enter__(self) -> Measure:
        runtime = self._runtime
        if runtime.request_timeout is not None:
            self._open_scope()
        self._start = runtime.stopwatch()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runtime = self._runtime
        elapsed = runtime.stopwatch() - self._start
        if exc_type is None and self._extra is None and not self._state.lateness:
            runtime.recorder.record(self._name, int(elapsed * 1_000_000))  # the common case
            return
        self._finish(exc_type, exc, tb, elapsed)

    async def __aenter__(self) -> Measure:
        runtime = self._runtime
        if runtime.request_timeout is not None:
            self._open_scope()
        self._start = runtime.stopwatch()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runtime = self._runtime
        elapsed = runtime.stopwatch() - self._start
        if exc_type is None and self._extra is None and not self._state.lateness:
            runtime.recorder.record(self._name, int(elapsed * 1_000_000))  # the common case
            return
        self._finish(exc_type, exc, tb, elapsed)

    def _open_scope(self) -> None:
        runtime = self._runtime
        timeout = runtime.request_timeout
        assert timeout is not None
        scope = self._extras().scope = runtime.backend.cancel_scope(
            deadline=runtime.clock() + timeout
        )
        scope.__enter__()

    def _finish(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        elapsed: float,
    ) -> None:
        runtime = self._runtime
        recorder = runtime.recorder
        bot_id = self._state.id
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
        tracer = runtime.tracer
        if timed_out:
            message = f"{name!r} took longer than request_timeout={runtime.request_timeout} s"
            recorder.record_failure(name, "RequestTimeout", message, bot_id)
            if tracer is not None:
                tracer.request_failed(bot_id, name, f"RequestTimeout: {message}")
            raise RequestTimeout(message) from None
        if exc_type is None:
            if extra.failure is None:
                lateness = self._state.lateness
                if lateness:
                    recorder.record_corrected(
                        name, int((elapsed + lateness) * 1_000_000), int(elapsed * 1_000_000)
                    )
                else:
                    recorder.record(name, int(elapsed * 1_000_000))
            else:
                recorder.record_failure(name, "Failed", extra.failure, bot_id)
                if tracer is not None:
                    tracer.request_failed(bot_id, name, extra.failure)
        elif issubclass(exc_type, Exception):
            recorder.record_failure(name, exc_type.__name__, str(exc), bot_id)
            if tracer is not None:
                tracer.request_failed(bot_id, name, f"{exc_type.__name__}: {exc}")
        else:  # a cancellation (the stop, or from outside) or another BaseException
            recorder.record_cancelled(name)


class _MeasureExtra:
    """What a measurement needs beyond its latency: failure, bytes, timeout scope."""

    __slots__ = ("failure", "received", "scope", "sent")

    def __init__(self) -> None:
        self.failure: str | None = None
        self.sent = 0
        self.received = 0
        self.scope: Any = None


_NO_EXTRA = _MeasureExtra()
