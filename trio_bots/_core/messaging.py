"""Named groups of bots, message filters, inboxes and barriers.

These are the seed's concepts made values: a bot joins named groups, sends
to a *send filter* (a group, everyone, a list of ids) and takes messages
that match a *receive filter* (anything, a group, one sender). Barriers let
bots move in lock step, as the seed's ``yield`` did.

Example:
    >>> import trio, trio_bots
    >>> async def worker(bot):
    ...     bot.join("table")
    ...     await bot.step()
    ...     if bot.id == 0:
    ...         await bot.send(trio_bots.send_group("table"), "hi")
    ...     else:
    ...         msg = await bot.receive(trio_bots.recv_group("table"))
    ...         print(f"bot {bot.id} got {msg.data!r} from bot {msg.sender}")
    >>> _ = trio.run(trio_bots.swarm, worker, 2)
    bot 1 got 'hi' from bot 0
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import trio

from .._errors import BotGone, ConfigError, InboxFull

if TYPE_CHECKING:
    from .backend import Backend
    from .runtime import BotState, Runtime

#: Past this many distinct groups, ``fanout="group"`` records under one name.
MAX_FANOUT_GROUPS = 100


class Message(NamedTuple):
    """A message between bots.

    Attributes:
        sender: the sending bot's id.
        group: g for a ``send_group(g)`` message, None otherwise.
        data: any Python object, passed by reference (never copied).
        sent_at: the swarm clock when it was sent, in seconds.

    Example:
        >>> Message(sender=0, group="t", data=b"hi", sent_at=1.5).data
        b'hi'
    """

    sender: int
    group: Hashable | None
    data: Any
    sent_at: float


# -- filters ---------------------------------------------------------------------------------


class SendFilter:
    """Says which bots a message goes to. Build one with `send_group`, `send_all` or `send_bots`."""

    __slots__ = ()
    group: Hashable | None = None

    def targets(self, registry: Messaging, sender: int) -> Iterable[BotState]:  # pragma: no cover
        raise NotImplementedError


class _SendGroup(SendFilter):
    __slots__ = ("group",)

    def __init__(self, group: Hashable) -> None:
        self.group = group

    def targets(self, registry: Messaging, sender: int) -> Iterable[BotState]:
        members = registry.members.get(self.group)
        if not members:
            return ()
        return [bot for bot_id, bot in members.items() if bot_id != sender]

    def __repr__(self) -> str:
        return f"send_group({self.group!r})"


class _SendAll(SendFilter):
    __slots__ = ()

    def targets(self, registry: Messaging, sender: int) -> Iterable[BotState]:
        return [bot for bot_id, bot in registry.live.items() if bot_id != sender]

    def __repr__(self) -> str:
        return "send_all()"


class _SendBots(SendFilter):
    __slots__ = ("ids",)

    def __init__(self, ids: Iterable[int]) -> None:
        self.ids = tuple(dict.fromkeys(ids))  # a repeated id still gets the message once

    def targets(self, registry: Messaging, sender: int) -> Iterable[BotState]:
        live = registry.live
        targets = [live[bot_id] for bot_id in self.ids if bot_id in live]
        if len(targets) < len(self.ids) and registry.shard.distributed:
            registry.count_remote(bot_id for bot_id in self.ids if bot_id not in live)
        return targets

    def __repr__(self) -> str:
        return f"send_bots({list(self.ids)!r})"


class RecvFilter:
    """Says which messages a receive takes: see `recv_all`, `recv_group`, `recv_from`."""

    __slots__ = ()
    #: The one sender this filter waits on, for `BotGone`; None for any sender.
    sender: int | None = None

    def match(self, msg: Message) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


class _RecvAll(RecvFilter):
    __slots__ = ()

    def match(self, msg: Message) -> bool:
        return True

    def __repr__(self) -> str:
        return "recv_all()"


class _RecvGroup(RecvFilter):
    __slots__ = ("group",)

    def __init__(self, group: Hashable) -> None:
        self.group = group

    def match(self, msg: Message) -> bool:
        return msg.group == self.group

    def __repr__(self) -> str:
        return f"recv_group({self.group!r})"


class _RecvFrom(RecvFilter):
    __slots__ = ("sender",)

    def __init__(self, bot_id: int) -> None:
        self.sender = bot_id

    def match(self, msg: Message) -> bool:
        return msg.sender == self.sender

    def __repr__(self) -> str:
        return f"recv_from({self.sender!r})"


_SEND_ALL = _SendAll()
#: The default filter of `Bot.receive` and friends (compared by identity on the hot path).
RECV_ALL: RecvFilter = _RecvAll()


def check_group(group: Hashable) -> None:
    if group is None:
        raise ConfigError("a group name cannot be None; use a string or an int, e.g. 'table-1'")
    try:
        hash(group)
    except TypeError:
        raise ConfigError(f"a group name must be hashable, got {group!r}") from None


def send_group(group: Hashable) -> SendFilter:
    """Every *other* live member of `group`; the sender never gets its own message.

    Example:
        >>> send_group("table-1")
        send_group('table-1')
    """
    check_group(group)
    return _SendGroup(group)


def send_all() -> SendFilter:
    """Every other live bot.

    Example:
        >>> send_all()
        send_all()
    """
    return _SEND_ALL


def send_bots(ids: Iterable[int]) -> SendFilter:
    """Exactly the bots listed; ended or unknown ids are skipped.

    Example:
        >>> send_bots([1, 2])
        send_bots([1, 2])
    """
    return _SendBots(ids)


def recv_all() -> RecvFilter:
    """Any message.

    Example:
        >>> recv_all()
        recv_all()
    """
    return RECV_ALL


def recv_group(group: Hashable) -> RecvFilter:
    """A message that was sent with ``send_group(group)``.

    Example:
        >>> recv_group("table-1")
        recv_group('table-1')
    """
    check_group(group)
    return _RecvGroup(group)


def recv_from(bot_id: int) -> RecvFilter:
    """A message from the bot `bot_id`.

    Example:
        >>> recv_from(3)
        recv_from(3)
    """
    return _RecvFrom(bot_id)


# -- inboxes ---------------------------------------------------------------------------------

#: Put in a waiting bot's channel to make it re-check whether its sender is gone.
_WAKE: Any = object()


class Inbox:
    """A bot's bounded memory channel plus the messages it took but no filter matched yet."""

    __slots__ = ("pending", "receive_channel", "send_channel", "waiting")

    def __init__(self, backend: Backend, size: int) -> None:
        self.send_channel, self.receive_channel = backend.open_channel(size)
        self.pending: list[Message] = []
        #: The filter of a receive blocked on the channel, or None.
        self.waiting: RecvFilter | None = None

    def is_full(self) -> bool:
        stats = self.send_channel.statistics()
        return bool(stats.current_buffer_used >= stats.max_buffer_size)


# -- barriers --------------------------------------------------------------------------------


class _Barrier:
    """One named barrier; `arrived` only ever holds current participants."""

    __slots__ = ("arrived", "event", "group", "name", "parties", "reported")

    def __init__(
        self, backend: Backend, name: Hashable, group: Hashable | None, parties: int | None
    ) -> None:
        self.name = name
        self.group = group
        self.parties = parties
        self.arrived: set[int] = set()
        self.event = backend.event()
        #: In a run over several shards: this generation was reported complete here.
        self.reported = False


# -- the registry ----------------------------------------------------------------------------


class Messaging:
    """Every live bot, the groups, the barriers and message delivery, for one run.

    It works on `BotState`s, the engine's side of each bot: a bot's inbox and
    groups are fields there, not private attributes of `Bot`.
    """

    def __init__(self, runtime: Runtime) -> None:
        options = runtime.options
        self.runtime = runtime
        self.backend = runtime.backend
        self.recorder = runtime.recorder
        self.clock = runtime.clock
        self.inbox_size: int = options["inbox_size"]
        self.on_full: str = options["on_full"]
        self.fanout: str = options["fanout"]
        self.live: dict[int, BotState] = {}
        self.members: dict[Hashable, dict[int, BotState]] = {}
        self.dropped_messages = 0
        self._barriers: dict[tuple[Hashable, Hashable | None], _Barrier] = {}
        self._barriers_by_group: dict[Hashable | None, list[_Barrier]] = {}
        #: Barriers that were complete while a started bot had not begun to run.
        self._deferred: dict[_Barrier, None] = {}  # in deferral order, not by address
        #: sender id -> inboxes whose blocked receive waits on that sender alone.
        self._waiting_on: dict[int, set[Inbox]] = {}
        self._fanout_names: dict[Hashable | None, str] = {None: "direct"}
        if self.fanout == "total":
            self._fanout_names[None] = "fanout"
        #: group -> the recorder's sample list of its fan-out name: one append per delivery.
        self._fanout_samples: dict[Hashable | None, list[int]] = {}
        runtime.on_all_began(self._all_began)
        self.shard = runtime.shard
        #: The coordinator of the shards (global barriers, group reports), or None.
        self.link = runtime.shard.link
        if self.link is not None:
            self.link.attach(self.release_global)

    def count_remote(self, bot_ids: Iterable[int]) -> None:
        """Count the ``send_bots`` ids that were skipped because another shard runs them."""
        owns = self.shard.owns
        self.runtime.cross_shard_skipped += sum(1 for bot_id in bot_ids if not owns(bot_id))

    # membership

    def add(self, bot: BotState) -> None:
        self.live[bot.id] = bot

    def group_sizes(self) -> dict[Hashable, int]:
        """Each group's live members now, by group; a group that empties is gone.

        One pass over the groups, for live views that ask now and then (never
        on a send or a receive).
        """
        return {group: len(members) for group, members in self.members.items()}

    def join(self, bot: BotState, group: Hashable) -> None:
        check_group(group)
        members = self.members.get(group)
        if members is None:
            members = self.members[group] = {}
            if self.link is not None:
                self.link.new_group(group)
        members[bot.id] = bot
        bot.groups = bot.groups | {group}
        self.inbox(bot)

    def leave(self, bot: BotState, group: Hashable) -> None:
        members = self.members.get(group)
        if members is None or members.pop(bot.id, None) is None:
            return
        bot.groups = bot.groups - {group}
        if not members:
            del self.members[group]
        for barrier in self._barriers_by_group.get(group, ()):
            barrier.arrived.discard(bot.id)
            self._release_if_complete(barrier)

    def remove(self, bot: BotState) -> None:
        """Forget an ended bot: wake whoever waits on it, re-check the barriers."""
        self.live.pop(bot.id, None)
        for group in bot.groups:
            self.leave(bot, group)
        for barrier in self._barriers_by_group.get(None, ()):
            barrier.arrived.discard(bot.id)
            self._release_if_complete(barrier)
        inbox = bot.inbox
        if inbox is not None:
            # Blocked senders get BrokenResourceError and skip this bot.
            inbox.receive_channel.close()
            inbox.send_channel.close()
            if inbox.waiting is not None and inbox.waiting.sender is not None:
                self._unwait(inbox, inbox.waiting.sender)
        for waiter in self._waiting_on.pop(bot.id, ()):
            self._wake(waiter)
        if len(self.live) == 1:
            # The last bot can never get a message again: wake it if it is waiting.
            (last,) = self.live.values()
            if last.inbox is not None and last.inbox.waiting is not None:
                self._wake(last.inbox)

    def _wake(self, inbox: Inbox) -> None:
        try:
            inbox.send_channel.send_nowait(_WAKE)
        except (self.backend.would_block, *self.backend.broken):
            pass

    def _unwait(self, inbox: Inbox, sender: int) -> None:
        waiters = self._waiting_on.get(sender)
        if waiters is not None:
            waiters.discard(inbox)
            if not waiters:
                del self._waiting_on[sender]

    def inbox(self, bot: BotState) -> Inbox:
        inbox = bot.inbox
        if inbox is None:
            inbox = bot.inbox = Inbox(self.backend, self.inbox_size)
        return inbox  # type: ignore[no-any-return]

    # sending

    def _targets(self, sender: BotState, flt: SendFilter) -> list[BotState]:
        if not isinstance(flt, SendFilter):
            raise ConfigError(
                f"send() takes a send filter such as send_group(g), send_all() or "
                f"send_bots(ids), got {flt!r}"
            )
        return list(flt.targets(self, sender.id))

    def _check_capacity(self, targets: list[BotState], error: type[BaseException]) -> None:
        for bot in targets:
            if bot.inbox is not None and bot.inbox.is_full():
                if error is InboxFull:
                    raise InboxFull(
                        f"bot {bot.id}'s inbox is full ({self.inbox_size} messages); nothing was "
                        f"sent. Raise inbox_size, or use on_full='block' or 'drop'"
                    )
                raise error

    def send_nowait(self, sender: BotState, flt: SendFilter, data: Any) -> list[int]:
        targets = self._targets(sender, flt)
        if not targets:
            return []
        on_full = self.on_full
        if on_full == "error":
            self._check_capacity(targets, InboxFull)
        elif on_full == "block":
            self._check_capacity(targets, trio.WouldBlock)
        msg = Message(sender.id, flt.group, data, self.clock())
        would_block = self.backend.would_block
        received = []
        for bot in targets:
            inbox = bot.inbox
            if inbox is None:
                inbox = self.inbox(bot)
            try:
                inbox.send_channel.send_nowait(msg)
            except would_block:
                self.dropped_messages += 1
                continue
            received.append(bot.id)
        return received

    async def send(self, sender: BotState, flt: SendFilter, data: Any) -> list[int]:
        # cancelled before anything is sent, or not at all once it is: trio's rule
        await self.backend.checkpoint_if_cancelled()
        if self.on_full != "block":
            received = self.send_nowait(sender, flt, data)
            await self.backend.cancel_shielded_checkpoint()
            return received
        targets = self._targets(sender, flt)
        msg = Message(sender.id, flt.group, data, self.clock())
        would_block = self.backend.would_block
        broken = self.backend.broken
        received = []
        blocked = False
        for bot in targets:
            inbox = bot.inbox
            if inbox is None:
                if bot.id not in self.live:
                    continue  # it ended while we were blocked on an earlier receiver
                inbox = self.inbox(bot)
            try:
                inbox.send_channel.send_nowait(msg)
            except would_block:
                blocked = True
                try:
                    await inbox.send_channel.send(msg)
                except broken:
                    continue  # the receiver ended while we waited
            except broken:
                continue
            received.append(bot.id)
        if not blocked:
            await self.backend.cancel_shielded_checkpoint()
        return received

    # receiving

    def _taken(self, msg: Message, now: float | None = None) -> None:
        """Record the fan-out latency of a message the receiver just took (now, by default)."""
        samples = self._fanout_samples.get(msg.group)
        if samples is None:
            samples = self._new_fanout_samples(msg.group)
            if samples is None:
                return  # fanout="off"
        if now is None:
            now = self.clock()
        samples.append(int((now - msg.sent_at) * 1_000_000))

    def _new_fanout_samples(self, group: Hashable | None) -> list[int] | None:
        """The sample list of `group`'s fan-out name, now cached (None: not recorded)."""
        fanout = self.fanout
        if fanout == "off":
            return None
        if fanout == "total":
            name = "fanout"
        else:
            name_or_none = self._fanout_names.get(group)
            name = self._new_fanout_name(group) if name_or_none is None else name_or_none
        samples = self.recorder.samples(name, "fanout")
        self._fanout_samples[group] = samples
        return samples

    def _new_fanout_name(self, group: Hashable | None) -> str:
        if len(self._fanout_names) > MAX_FANOUT_GROUPS:
            self.runtime.warn(
                f"more than {MAX_FANOUT_GROUPS} groups carry messages: fan-out latency is now "
                f"recorded under the single name 'fanout' (fanout='total')"
            )
            self.fanout = "total"
            self._fanout_samples.clear()  # every group records under "fanout" from now on
            return "fanout"
        name = self._fanout_names[group] = f"group:{group}"
        return name

    def _drain(self, inbox: Inbox) -> None:
        """Move everything in the channel to the pending list, without waiting."""
        receive_nowait = inbox.receive_channel.receive_nowait
        pending = inbox.pending
        try:
            while True:
                msg = receive_nowait()
                if msg is not _WAKE:
                    pending.append(msg)
        except self.backend.nothing_to_take:
            pass

    def _take_pending(self, inbox: Inbox, flt: RecvFilter) -> Message | None:
        pending = inbox.pending
        for index, msg in enumerate(pending):
            if flt.match(msg):
                del pending[index]
                self._taken(msg)
                return msg
        return None

    def _gone(self, bot: BotState, flt: RecvFilter) -> str | None:
        """Why no message matching `flt` can ever come, or None while one still may."""
        sender = flt.sender
        if sender is not None and sender not in self.live:
            return f"bot {sender} has ended and nothing from it is queued for bot {bot.id}"
        if len(self.live) <= 1 or (len(self.live) == 2 and sender == bot.id):
            return f"every other bot has ended and nothing matching {flt!r} is queued"
        return None

    def receive_nowait(self, bot: BotState, flt: RecvFilter) -> Message:
        inbox = self.inbox(bot)
        self._drain(inbox)
        msg = self._take_pending(inbox, flt)
        if msg is None:
            raise trio.WouldBlock
        return msg

    def _take_ready(self, inbox: Inbox, flt: RecvFilter) -> Message | None:
        """The oldest matching message already queued (pending, then channel), or None."""
        if inbox.pending:
            msg = self._take_pending(inbox, flt)
            if msg is not None:
                return msg
        receive_nowait = inbox.receive_channel.receive_nowait
        try:
            while True:
                msg = receive_nowait()
                if msg is _WAKE:
                    continue
                if flt is RECV_ALL or flt.match(msg):
                    self._taken(msg)
                    return msg  # type: ignore[no-any-return]
                inbox.pending.append(msg)
        except self.backend.nothing_to_take:
            return None

    async def receive(self, bot: BotState, flt: RecvFilter) -> Message:
        if flt.sender is not None and self.shard.distributed and not self.shard.owns(flt.sender):
            raise ConfigError(
                f"bot {bot.id} waits for a message from bot {flt.sender}, which runs in another "
                f"shard: messages stay inside a shard. Give shard_align= so that the bots that "
                f"talk run together, or run in one process"
            )
        inbox = bot.inbox
        if inbox is None:
            inbox = self.inbox(bot)
        # fast path: a message is already there; a Cancelled can only come before taking it
        await self.backend.checkpoint_if_cancelled()
        msg = self._take_ready(inbox, flt)
        if msg is not None:
            await self.backend.cancel_shielded_checkpoint()
            return msg
        channel = inbox.receive_channel
        while True:
            reason = self._gone(bot, flt)
            if reason is not None:
                self._drain(inbox)
                msg = self._take_pending(inbox, flt)
                if msg is not None:
                    await self.backend.cancel_shielded_checkpoint()
                    return msg
                raise BotGone(reason)
            inbox.waiting = flt
            sender = flt.sender
            if sender is not None:
                waiters = self._waiting_on.get(sender)
                if waiters is None:
                    waiters = self._waiting_on[sender] = set()
                waiters.add(inbox)
            try:
                msg = await channel.receive()
            finally:
                inbox.waiting = None
                if sender is not None:
                    self._unwait(inbox, sender)
            if msg is _WAKE:
                continue
            if flt.match(msg):
                self._taken(msg)
                return msg  # type: ignore[no-any-return]
            inbox.pending.append(msg)

    def recv(self, bot: BotState, flt: RecvFilter) -> list[Message]:
        inbox = self.inbox(bot)
        self._drain(inbox)
        taken = [msg for msg in inbox.pending if flt.match(msg)]
        if taken:
            inbox.pending = [msg for msg in inbox.pending if not flt.match(msg)]
            now = self.clock()
            for msg in taken:
                self._taken(msg, now)
        return taken

    def has_message(self, bot: BotState, flt: RecvFilter) -> bool:
        inbox = self.inbox(bot)
        self._drain(inbox)
        return any(flt.match(msg) for msg in inbox.pending)

    # barriers

    async def barrier(
        self, bot: BotState, name: Hashable, group: Hashable | None, parties: int | None = None
    ) -> None:
        if group is not None:
            members = self.members.get(group)
            if members is None or bot.id not in members:
                raise ConfigError(
                    f"bot {bot.id} called barrier({name!r}, group={group!r}) but is not a member "
                    f"of {group!r}; call bot.join({group!r}) first"
                )
        if parties is not None and (
            isinstance(parties, bool) or not isinstance(parties, int) or parties < 1
        ):
            raise ConfigError(f"barrier parties must be an int >= 1, got {parties!r}")
        key = (name, group)
        barrier = self._barriers.get(key)
        if barrier is None:
            barrier = self._barriers[key] = _Barrier(self.backend, name, group, parties)
            self._barriers_by_group.setdefault(group, []).append(barrier)
        elif barrier.parties != parties:
            raise ConfigError(
                f"barrier {name!r} was first used with parties={barrier.parties!r}, and now "
                f"with parties={parties!r}; give every call the same parties"
            )
        event = barrier.event
        barrier.arrived.add(bot.id)
        if self._release_if_complete(barrier):
            await self.backend.checkpoint()
            return
        try:
            await event.wait()
        except BaseException:
            if barrier.event is event:  # not released: this bot no longer waits here
                barrier.arrived.discard(bot.id)
            raise

    def _participants(self, barrier: _Barrier) -> int:
        """How many arrivals release this generation of `barrier`."""
        if barrier.parties is not None:
            # an explicit count, but never more than the bots still alive: a dead bot
            # must not deadlock it
            return min(barrier.parties, len(self.live))
        if barrier.group is None:
            return len(self.live)
        return len(self.members.get(barrier.group, ()))

    def _release_if_complete(self, barrier: _Barrier) -> bool:
        if len(barrier.arrived) < self._participants(barrier):
            return False
        if self.runtime.unbegun:
            # A bot that started with this one has not run yet: it may be about to join
            # the group (join, then barrier, is the natural pattern). Release once every
            # started bot has reached its first checkpoint.
            self._deferred[barrier] = None
            return False
        if self.link is not None and barrier.group is None and barrier.parties is None:
            # step() and barriers over every bot are global: the coordinator releases them
            # once every shard's live bots wait (see release_global)
            if not barrier.reported:
                barrier.reported = True
                self.link.barrier_complete(barrier.name)
            return False
        self._release(barrier)
        return True

    def _release(self, barrier: _Barrier) -> None:
        barrier.event.set()
        barrier.event = self.backend.event()
        barrier.arrived = set()
        barrier.reported = False

    def release_global(self, name: Hashable) -> None:
        """The coordinator of the shards says every shard waits at the global barrier
        `name`: release this shard's generation of it."""
        barrier = self._barriers.get((name, None))
        if barrier is not None and barrier.reported:
            self._release(barrier)

    def _all_began(self) -> None:
        """The last unbegun bot is running now: once it reaches its first checkpoint, the
        deferred barriers are checked again, in a task of their own."""
        if self._deferred:
            control = self.runtime.control
            assert control is not None
            control.start_soon(self._recheck_deferred, name="trio_bots barriers")

    async def _recheck_deferred(self) -> None:
        # Runs after the bot that began has yielded: only one task runs at a time.
        deferred, self._deferred = self._deferred, {}
        for barrier in deferred:
            self._release_if_complete(barrier)
