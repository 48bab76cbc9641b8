"""The runtime: the one object that a swarm's parts share.

The swarm makes one `Runtime` per run and hands it to every part: the bots,
the messaging registry, the load driver and the ticker. It holds what they
share, under public names: the options, the loop's primitives, the clock,
the recorder, the bot counters, the stop state, and the per-tick hooks.
What a part may *ask* of the swarm (start a bot, begin the stop, say that no
more bots will come, start a task) goes through `SwarmControl`, a small
interface that the swarm implements, so that no part reaches into another's
private state.

Example:
    >>> import trio
    >>> from trio_bots._core.backend import current_backend
    >>> from trio_bots._core.options import validate_options
    >>> async def main():
    ...     runtime = Runtime(validate_options(0, {}), current_backend(), size=0)
    ...     seen = []
    ...     runtime.on_tick(lambda tick: seen.append(tick.second))
    ...     async with trio.open_nursery() as nursery:
    ...         nursery.start_soon(runtime.run_ticker)
    ...         await trio.sleep(3.5)
    ...         nursery.cancel_scope.cancel()
    ...     return seen
    >>> trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    [0, 1, 2]
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from ..metrics import Recorder
from ..metrics._tags import TagKeys
from .shard import WHOLE_RUN, Shard

logger = logging.getLogger("trio_bots")

_NO_GROUPS: frozenset[Hashable] = frozenset()


class BotState:
    """The engine's record of one bot; `Bot` is the public face over it.

    Attributes:
        id: the bot's global id.
        groups: the groups it is a member of.
        inbox: its `messaging.Inbox`, made on first use (None until then).
        owned: None, one resource, or a list of them (oldest first).
        scope: its own cancel scope, when the load driver retires bots one by one.
        stopping: its own stop event, made on first use when bots stop one by one.
        lateness: seconds its current open-model iteration started late (CO correction).
        random: its `random.Random`, made on first use.
        log: its logger, made on first use.

    Example:
        >>> BotState(3).id, BotState(3).groups
        (3, frozenset())
    """

    __slots__ = (
        "groups",
        "id",
        "inbox",
        "lateness",
        "log",
        "owned",
        "random",
        "scope",
        "stopping",
    )

    def __init__(self, bot_id: int) -> None:
        self.id = bot_id
        self.groups: frozenset[Hashable] = _NO_GROUPS
        self.inbox: Any = None
        self.owned: Any = None
        self.scope: Any = None
        self.stopping: Any = None
        self.lateness = 0.0
        self.random: random.Random | None = None
        self.log: logging.LoggerAdapter[logging.Logger] | None = None

    def __repr__(self) -> str:
        return f"<BotState {self.id}>"


class SwarmControl(Protocol):
    """What the parts of a run may ask of the swarm that owns it."""

    def spawn(self) -> BotState:
        """Start one more bot now and return its state."""

    def begin_stop(self) -> None:
        """Begin the graceful stop of the whole run (its natural end, for a load driver)."""

    def no_more_bots(self) -> None:
        """Say that no more bots will be started: the run ends when the last one does."""

    def more_bots(self) -> None:
        """Say that bots may be started again (live control): the run goes on with none."""

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str) -> None:
        """Run ``fn(*args)`` in the swarm's task group."""


@dataclass(frozen=True)
class Tick:
    """What one second of the run added, handed to every `Runtime.on_tick` hook.

    Attributes:
        second: the bucket's second, counted from the run's start (0 for [0 s, 1 s)).
        bucket: that second's timeline bucket, as plain data (see `trio_bots.metrics`).
        bots_running: the live bots when the ticker ran.
        final: True for the last, partial second, written when the run ends.
        active_seconds: the seconds during which bots ran, up to now (what ``rps``
            divides by).
        counters: the custom counters (``bot.count``) so far.
        gauges: the custom gauges' (``bot.gauge``) last values.
        raw: each name's raw (uncorrected) histogram of this second, encoded, in the open
            model, when something asked for them (the HDR log, or the driver of a run
            over several processes); else empty.
        added: what this tick added, as a bucket: `bucket` itself, except for a final
            tick that merged into a second already ticked (a run that ended on a whole
            second), where `bucket` is the whole second and `added` the rest of it. A
            hook that sums the seconds reads `added` (None: read `bucket`).
        raw_percentiles: in the open model, that second's uncorrected latency percentiles
            by name (``{"get": {"p50": seconds, ...}}``); empty otherwise.

    Example:
        >>> Tick(second=0, bucket={"t": 0, "count": 0}, bots_running=1).bucket["count"]
        0
    """

    second: int
    bucket: Mapping[str, Any]
    bots_running: int
    final: bool = False
    active_seconds: float = 0.0
    counters: Mapping[str, float] = field(default_factory=dict)
    gauges: Mapping[str, float] = field(default_factory=dict)
    raw: Mapping[str, str] = field(default_factory=dict)
    added: Mapping[str, Any] | None = None
    raw_percentiles: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @property
    def delta(self) -> Mapping[str, Any]:
        """What this tick added: `added`, or `bucket` when that is None."""
        return self.bucket if self.added is None else self.added


class Runtime:
    """What one run's parts share; see the module docstring.

    Attributes:
        options: the validated options.
        size: the bots started up front (the ``size`` argument).
        backend: the running loop's `Backend`.
        clock: the loop's clock, one bound method (``anyio.current_time`` semantics).
        stopwatch: a clock for durations (`measure`), cheaper than `clock` to read:
            the same differences, another origin (see `Backend.bound_stopwatch`).
        start_time: the clock at the run's start.
        started_wall: ``time.time()`` at the run's start.
        recorder: the run's `trio_bots.metrics.Recorder`.
        tag_keys: the recorder keys of tagged measurements (``name{k=v}``), capped per name.
        bot_tags: the tags of each bot inside ``with bot.tagged(...)``, by bot id.
        request_timeout: the ``request_timeout`` option, read on every `measure`.
        stopping: the Event of the graceful stop of the whole run.
        per_bot_stops: True when bots can be stopped one by one (each gets its own
            ``stopping`` event and cancel scope); set by the load driver.
        control: the swarm's `SwarmControl`, once the swarm has started.
        data: the run's test data (a `data.Feeder`), or None without ``data=``.
        tracer: the run's wire transcripts (a `trace.Tracer`), or None when no bot
            is traced.
        load: the load driver, or None.
        bots_started, bots_running, bots_finished: bot counters.
        bots_target: the bots the load shape aims at now.
        dropped_arrivals: open-model arrivals dropped.
        warnings: the warnings of this run, for the report (each also logged).
        shard: this run's `Shard` (the whole run, unless it is one shard of several).
        cross_shard_skipped: ``send_bots`` ids skipped because they run in another shard.
    """

    def __init__(
        self, options: Mapping[str, Any], backend: Any, *, size: int, shard: Shard = WHOLE_RUN
    ) -> None:
        self.options = options
        self.size = size
        self.shard = shard
        self.cross_shard_skipped = 0
        self.backend = backend
        self.clock: Callable[[], float] = backend.bound_clock()
        self.stopwatch: Callable[[], float] = backend.bound_stopwatch()
        self.start_time = self.clock()
        self.started_wall = time.time() if shard.start_wall is None else shard.start_wall
        self.recorder = Recorder(self.start_time)
        # the HDR log writes the open model's raw histograms of each second too, and a
        # shard sends them to its driver
        self.recorder.keep_raw_intervals = (
            options.get("hdr_log") is not None or shard.raw_intervals
        )
        self.tag_keys = TagKeys(self.warn)
        self.bot_tags: dict[int, Mapping[str, Any]] = {}
        self.request_timeout: float | None = options["request_timeout"]
        self.stopping: Any = backend.event()
        self.per_bot_stops = False
        self.control: SwarmControl | None = None
        #: The `data.Feeder`, set by the swarm before the start; None without ``data=``.
        self.data: Any = None
        #: The `trace.Tracer`, set by the swarm before the start; None when nothing is traced.
        self.tracer: Any = None
        #: The load driver (`load.Driver`), or None when `size` bots start at once.
        self.load: Any = None
        self.bots_started = 0
        self.bots_running = 0
        self.bots_finished = 0
        self.bots_target = size
        self.dropped_arrivals = 0
        self.warnings: list[str] = []
        self.first_bot_at: float | None = None
        self.last_bot_end: float | None = None
        #: Bots started whose task has not begun to run yet (see `bot_began`): a count,
        #: since a set of ids would keep its peak size in memory for the whole run.
        self.unbegun = 0
        self._began_hooks: list[Callable[[], None]] = []
        self._tick_hooks: list[Callable[[Tick], None]] = []
        self._seconds_ticked = 0

    # -- bots

    def new_bot(self) -> BotState:
        """Count and return the state of a bot about to start; ids go in start order
        (global ids, in a shard of a larger run: see `Shard.bot_id`)."""
        state = BotState(self.shard.bot_id(self.bots_started))
        self.bots_started += 1
        self.bots_running += 1
        self.unbegun += 1
        if self.first_bot_at is None:
            self.first_bot_at = self.clock()
        return state

    def bot_began(self, state: BotState) -> None:
        """A bot's task has begun to run. It runs alone until its first checkpoint, so once
        no started bot is left unbegun, every one of them has reached its first checkpoint
        by the time any other task runs: what barriers wait for (see `messaging`)."""
        self.unbegun -= 1
        if not self.unbegun and self._began_hooks:
            for hook in self._began_hooks:
                hook()

    def on_all_began(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` each time the last unbegun bot begins."""
        self._began_hooks.append(fn)

    def bot_ended(self, state: BotState) -> None:
        """Count a bot that ended, however it ended."""
        self.bots_running -= 1
        self.bots_finished += 1
        self.last_bot_end = self.clock()
        if self.data is not None:
            self.data.release(state.id)
        if self.tracer is not None:
            self.tracer.bot_ended(state.id)

    def stopping_event(self, state: BotState) -> Any:
        """The event that tells this bot to stop: the run's, or its own when bots stop
        one by one (made here, on first use, already set if the run is stopping)."""
        event = state.stopping
        if event is not None:
            return event
        if not self.per_bot_stops:
            return self.stopping  # one shared event: no memory per bot
        event = state.stopping = self.backend.event()
        if self.stopping.is_set():
            event.set()
        return event

    def active_seconds(self, now: float) -> float:
        """Seconds during which bots ran, up to `now`: the denominator of ``rps``."""
        if self.first_bot_at is None:
            return 0.0
        end = now if self.bots_running or self.last_bot_end is None else self.last_bot_end
        return max(0.0, end - self.first_bot_at)

    def warn(self, message: str) -> None:
        """A warning about this run: logged, and kept for the report."""
        logger.warning("%s", message)
        self.warnings.append(message)

    # -- the ticker

    def on_tick(self, fn: Callable[[Tick], None]) -> Callable[[], None]:
        """Call ``fn(tick)`` once per second of the run, in the loop; returns a remover.

        The hook sees each second's `Tick` exactly once, in order, however late the
        loop is, and the last partial second when the run ends.
        """
        self._tick_hooks.append(fn)

        def remove() -> None:
            if fn in self._tick_hooks:
                self._tick_hooks.remove(fn)

        return remove

    async def run_ticker(self) -> None:
        """Write each second's timeline bucket at its due time, then call the hooks.

        Only the ticker writes buckets, each under its own second: a late loop files
        the samples of [k, k+1) under k whenever it gets to it.
        """
        while True:
            await anyio.sleep_until(self.start_time + self._seconds_ticked + 1)
            self._tick(final=False)

    def final_tick(self) -> None:
        """Write the last, partial second: called once, when the run ends."""
        self._tick(final=True)

    def _tick(self, *, final: bool) -> None:
        second = self._seconds_ticked
        if final and second and self.clock() - self.start_time <= second:
            # The run ended on a whole second, which the ticker already wrote: what is
            # left belongs to that second, and no empty bucket starts after the end.
            second -= 1
        recorder = self.recorder
        bucket = recorder.tick(second, self.bots_running)
        if not final:
            self._seconds_ticked = second + 1
        tick = Tick(
            second,
            bucket,
            self.bots_running,
            final,
            active_seconds=self.active_seconds(self.clock()),
            counters=recorder.counters(),
            gauges=recorder.gauges(),
            raw=recorder.last_raw,
            added=recorder.last_added,
            raw_percentiles=recorder.last_raw_percentiles,
        )
        for hook in list(self._tick_hooks):
            hook(tick)

    def snapshot(self) -> dict[str, Any]:
        """The metrics so far, as plain data; it writes nothing."""
        now = self.clock()
        return self.recorder.snapshot(
            now, bots_running=self.bots_running, active_seconds=self.active_seconds(now)
        )
