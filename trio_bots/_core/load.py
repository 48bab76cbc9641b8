"""Load shapes: spawn rate, stages (closed model) and arrival rate (open model).

Closed model (the default): ``size`` bots run the worker, optionally ramped
up at ``spawn_rate`` bots/s, or driven through ``stages=[(seconds, bots), ...]``
linearly. Ramp-down retires the newest bots first: they get their own
``bot.stopping`` and ``stop_grace`` seconds, then are cancelled.

Open model (``rate=``): arrivals come at fixed intended times whatever the
server does. Each arrival is one step of some bot's ``bot.iterations()``
loop: an idle bot takes it, or a new bot is started (up to ``max_bots``), or
it waits in a queue (up to ``max_queue``), or it is dropped and counted.
Latency measured in an iteration is corrected for coordinated omission: it
counts from the intended start, so time spent queued behind a stalled server
shows in ``stats[name]``; ``stats[name].raw`` keeps the uncorrected figure.

Example:
    >>> import functools, trio, trio_bots
    >>> async def worker(bot):
    ...     async for it in bot.iterations():
    ...         with it:
    ...             async with bot.measure("work"):
    ...                 await trio.sleep(0.001)
    >>> run = functools.partial(trio_bots.swarm, worker, 2, rate=50, duration=1)
    >>> result = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    >>> result.stats["work"].count
    50
"""

from __future__ import annotations

import collections
import math
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import ConfigError
from ..metrics._hdr import SecondsHistogram
from .options import preflight_fds
from .runtime import BotState, Runtime, SwarmControl

if TYPE_CHECKING:
    from .bot import Bot


class Iteration:
    """One step of `Bot.iterations`; ``with it:`` makes a failing step non-fatal.

    Attributes:
        index: 0-based count of this bot's iterations.
        data: with ``data_per="iteration"``, this step's record of the ``data=``
            option (the next of one global sequence); otherwise ``bot.data``.
        intended_start: in the open model, the swarm-clock time this arrival
            was scheduled for; otherwise the actual start.
        started: the swarm-clock time the iteration actually started.

    Example:
        >>> import functools, trio, trio_bots
        >>> async def worker(bot):
        ...     async for it in bot.iterations():
        ...         with it:  # an Exception here is counted, and the loop goes on
        ...             if it.index % 2:
        ...                 raise ConnectionResetError("peer reset")
        >>> result = trio.run(functools.partial(trio_bots.swarm, worker, 1, iterations=4))
        >>> result.stats["iteration"].failure_count, result.bot_failures
        (2, [])
    """

    __slots__ = ("_bot", "_record", "_runtime", "index", "intended_start", "started")

    def __init__(
        self,
        bot: Bot,
        runtime: Runtime,
        index: int,
        intended_start: float,
        started: float,
        record: Any = None,
    ) -> None:
        self._bot = bot
        self._runtime = runtime
        self.index = index
        self.intended_start = intended_start
        self.started = started
        self._record = record

    @property
    def data(self) -> Any:
        """This step's record (``data_per="iteration"``), else ``bot.data``.

        Example:
            >>> import functools, trio, trio_bots
            >>> async def worker(bot):
            ...     async for it in bot.iterations():
            ...         print(bot.id, it.index, it.data)
            >>> run = functools.partial(trio_bots.swarm, worker, 1, iterations=3,
            ...                         data=["a", "b", "c"], data_per="iteration")
            >>> _ = trio.run(run)
            0 0 a
            0 1 b
            0 2 c
        """
        feeder = self._runtime.data
        if feeder is not None and feeder.per_iteration:
            return self._record
        return self._bot.data

    def __enter__(self) -> Iteration:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc_type is not None and issubclass(exc_type, Exception):
            bot = self._bot
            self._runtime.recorder.record_failure("iteration", exc_type.__name__, str(exc), bot.id)
            bot.log.debug("iteration %d failed: %s: %s", self.index, exc_type.__name__, exc)
            return True
        return False


class Iterations:
    """The async iterator `Bot.iterations` returns (a class, not an async generator,
    so that no cleanup depends on the async-generator finaliser).

    Example:
        >>> import functools, trio, trio_bots
        >>> async def worker(bot):
        ...     async for it in bot.iterations():
        ...         print("iteration", it.index, it.started)
        >>> run = functools.partial(trio_bots.swarm, worker, 1, iterations=3, pace=1.5)
        >>> _ = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
        iteration 0 0.0
        iteration 1 1.5
        iteration 2 3.0
    """

    __slots__ = (
        "_bot",
        "_count",
        "_last_start",
        "_limit",
        "_open",
        "_pace",
        "_runtime",
        "_state",
        "_think",
    )

    #: With no think time or pace, yield to the scheduler on every Nth iteration only;
    #: the others just check for cancellation. The body's own I/O yields anyway.
    YIELD_EVERY = 16

    def __init__(self, bot: Bot, state: BotState, runtime: Runtime) -> None:
        self._bot = bot
        self._state = state
        self._runtime = runtime
        self._count = 0
        self._last_start: float | None = None
        options = runtime.options
        self._limit: int | None = options["iterations"]
        self._pace: float | None = options["pace"]
        self._think: float | tuple[float, float] | None = options["think_time"]
        load = runtime.load
        self._open: OpenModel | None = load if isinstance(load, OpenModel) else None

    def __aiter__(self) -> Iterations:
        return self

    async def __anext__(self) -> Iteration:
        bot = self._bot
        runtime = self._runtime
        count = self._count
        if self._limit is not None and count >= self._limit:
            raise StopAsyncIteration
        if self._open is not None:
            intended = await self._open.next_arrival(bot)
            if intended is None:
                raise StopAsyncIteration
            now = runtime.clock()
            self._state.lateness = max(0.0, now - intended)
        else:
            if bot.stopping.is_set():
                raise StopAsyncIteration
            if count and (self._pace is not None or self._think is not None):
                await self._wait_between(bot)
                if bot.stopping.is_set():
                    raise StopAsyncIteration
            elif count % self.YIELD_EVERY:
                await runtime.backend.checkpoint_if_cancelled()
            else:
                await runtime.backend.checkpoint()
            now = intended = runtime.clock()
        self._last_start = now
        self._count = count + 1
        feeder = runtime.data
        if feeder is not None and feeder.per_iteration:
            return Iteration(bot, runtime, count, intended, now, feeder.take(bot, index=count))
        return Iteration(bot, runtime, count, intended, now)

    async def _wait_between(self, bot: Bot) -> None:
        runtime = self._runtime
        think = self._think
        if self._pace is not None and self._last_start is not None:
            deadline = self._last_start + self._pace
        elif think is not None:
            wait = bot.random.uniform(*think) if isinstance(think, tuple) else think
            deadline = runtime.clock() + wait
        else:
            await runtime.backend.checkpoint()
            return
        with runtime.backend.cancel_scope(deadline=deadline):
            await bot.stopping.wait()


# -- drivers --------------------------------------------------------------------------------


class Driver:
    """Starts the bots of a run over time, through the runtime's `SwarmControl`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def control(self) -> SwarmControl:
        control = self.runtime.control
        assert control is not None, "the swarm gives the runtime its control before the load runs"
        return control

    async def run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def bot_ended(self, bot: BotState) -> None:
        """A bot ended, however."""

    def stopping(self) -> None:
        """A graceful stop of the whole swarm began."""


class ClosedModel(Driver):
    """``spawn_rate`` ramps and linear ``stages``; ramp-down retires the newest bots.

    `set_target` steers it live: the stages (or the ramp) are abandoned, and the
    bot count goes to the new target, up at ``spawn_rate`` (or at once), down by
    retiring the newest bots first.
    """

    def __init__(self, runtime: Runtime, *, steerable: bool = True) -> None:
        super().__init__(runtime)
        options = runtime.options
        self.stages: list[tuple[float, float]] | None = options["stages"]
        self.spawn_rate: float | None = options["spawn_rate"]
        #: Whether `set_target` may change the bot count (not with one bot per awaitable).
        self.steerable = steerable
        #: True when `size` bots start at once and nothing else is scheduled.
        self.at_once = self.stages is None and self.spawn_rate is None
        # Ramp-down stops bots one by one: each gets its own stopping event and scope.
        # A cancel scope costs ~700 bytes a bot, so a run without stages pays for them
        # only from its first set_target on (bots started before it have none).
        runtime.per_bot_stops = self.stages is not None
        self._warned_unscoped = False
        #: Live bots not retiring, oldest first.
        self.active: list[BotState] = []
        #: Bots told to stop, in the order they were (a dict: a set would iterate by address).
        self.retiring: dict[BotState, None] = {}
        #: Set by the first `set_target`: the run is steered from then on.
        self.steered = False
        self._pending = 0  # bots still to start towards the target
        self._scope: Any = None  # the scope of the stages / ramp, cancelled when steered
        self._wake: Any = None  # the steering task's event

    def bot_ended(self, bot: BotState) -> None:
        if bot in self.retiring:
            del self.retiring[bot]
        else:
            self.active.remove(bot)

    def stopping(self) -> None:
        for bot in (*self.active, *self.retiring):
            if bot.stopping is not None:
                bot.stopping.set()
        self._pending = 0
        if self.steered:
            self.control.no_more_bots()  # a steered run holds the feed open until its stop

    def spawn_all(self) -> None:
        """Start `size` bots now (the whole run's load, when `at_once`)."""
        for _ in range(self.runtime.size):
            self._spawn()

    def set_target(self, bots: int) -> None:
        """Go to `bots` live bots (this shard's share of them), from now on; in the loop.

        Raises:
            ConfigError: when the run's bots are fixed (the seed's awaitables), or past the
                open-file hard limit.
        """
        runtime = self.runtime
        if not self.steerable:
            raise ConfigError(
                "set_target() cannot change a run with one bot per awaitable (the seed's "
                "factory= or run_tasks): start the swarm from a worker function instead"
            )
        if runtime.stopping.is_set():
            return  # the run is ending: nothing more to steer
        target = runtime.shard.split(bots)
        preflight_fds(target, {**runtime.options, "stages": None, "max_bots": None})
        runtime.bots_target = target
        if not self.steered:
            self.steered = True
            runtime.per_bot_stops = True  # the bots started from now on can be retired
            self.control.more_bots()
            if self._scope is not None:
                self._scope.cancel()  # abandon the stages or the ramp
            self._wake = runtime.backend.event()
            self.control.start_soon(self._steer, name="trio_bots steer")
        count = len(self.active)
        self._pending = max(0, target - count)
        for _ in range(count - target):
            self._retire()
        self._wake.set()

    async def _steer(self) -> None:
        runtime = self.runtime
        clock = runtime.clock
        rate = self.spawn_rate
        last: float | None = None
        while not runtime.stopping.is_set():
            if not self._pending:
                await self._wake.wait()
                self._wake = runtime.backend.event()
                continue
            if rate is not None and last is not None and last + 1 / rate > clock():
                with runtime.backend.cancel_scope(deadline=last + 1 / rate):
                    await self._wake.wait()  # a new target may come before the next bot
                if self._wake.is_set():
                    self._wake = runtime.backend.event()
                    continue
            if self._pending and not runtime.stopping.is_set():
                self._pending -= 1
                last = clock()
                self._spawn()

    def _spawn(self) -> None:
        self.active.append(self.control.spawn())

    def _retire(self) -> None:
        bot = self.active.pop()
        self.retiring[bot] = None
        self.runtime.stopping_event(bot).set()
        self.control.start_soon(self._cancel_after_grace, bot, name="trio_bots retire")

    async def _cancel_after_grace(self, bot: BotState) -> None:
        await anyio.sleep(self.runtime.options["stop_grace"])
        if bot.scope is not None:
            bot.scope.cancel()
        elif bot in self.retiring and not self._warned_unscoped:
            self._warned_unscoped = True
            self.runtime.warn(
                f"set_target() retired bot {bot.id}, which started before the first "
                f"set_target() and so has no cancel scope of its own: it got bot.stopping "
                f"but still runs after stop_grace; give stages= to make every bot "
                f"cancellable, or let the worker check bot.stopping"
            )

    async def run(self) -> None:
        try:
            with self.runtime.backend.cancel_scope() as self._scope:
                await self._run_shape()
        finally:
            self._scope = None
            if not self.steered:
                self.control.no_more_bots()

    async def _run_shape(self) -> None:
        runtime = self.runtime
        stopping = runtime.stopping
        clock = runtime.clock
        start = runtime.start_time
        size = runtime.size
        shard = runtime.shard
        if self.stages is None:
            rate = self.spawn_rate
            for index in range(size):
                # the ramp keeps its timing over the whole run: bot i starts at i / rate
                order = shard.first_bot + index
                if rate is not None and order:
                    await anyio.sleep_until(start + order / rate)
                    if stopping.is_set():
                        return
                self._spawn()
            return
        for _ in range(size):
            self._spawn()
        stage_start = start
        level = float(size)
        for seconds, stage_target in self.stages:
            # whole bots, or the ramp would oscillate; this shard's share of them
            target = shard.split(round(stage_target))
            stage_end = stage_start + seconds
            runtime.bots_target = target
            while True:
                count = len(self.active)
                if count < target:
                    at = _crossing(stage_start, stage_end, level, target, count + 1)
                elif count > target:
                    at = _crossing(stage_start, stage_end, level, target, count - 1)
                else:
                    break
                if at > clock():
                    await anyio.sleep_until(at)
                if stopping.is_set():
                    return
                if count < target:
                    self._spawn()
                else:
                    self._retire()
            await anyio.sleep_until(stage_end)
            if stopping.is_set():
                return
            stage_start, level = stage_end, target
        self.control.begin_stop()  # the stages are over: this is the run's natural end


def _crossing(t0: float, t1: float, a: float, b: float, value: float) -> float:
    """When the line from (t0, a) to (t1, b) reaches `value` (t1 for a step)."""
    if t1 <= t0 or a == b:
        return t1
    fraction = (value - a) / (b - a)
    return t0 + min(max(fraction, 0.0), 1.0) * (t1 - t0)


class _Waiter:
    __slots__ = ("event", "intended")

    def __init__(self, event: Any) -> None:
        self.event = event
        self.intended: float | None = None


class OpenModel(Driver):
    """Arrivals at a fixed rate (or rate stages), handed to idle bots, queued or dropped.

    The k-th arrival's intended time is computed from k alone, so no drift
    builds up over long runs.
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        options = runtime.options
        rate = options["rate"]
        self.stages: list[tuple[float, float]] = (
            rate if isinstance(rate, list) else [(math.inf, float(rate))]
        )
        peak_rate = max(r for _, r in self.stages)
        shard = runtime.shard
        max_bots = options["max_bots"]
        #: This shard's share of max_bots (of every bot started up front, by default).
        self.max_bots: int = runtime.size if max_bots is None else shard.split(max_bots)
        if self.max_bots < 1:  # the options allow it, but a factory gave no awaitables
            raise ConfigError(
                "the open model needs at least one bot, and the factory gave none: give "
                "max_bots >= 1, or make the factory give awaitables"
            )
        max_queue = options["max_queue"]
        self.max_queue: int = shard.split(math.ceil(peak_rate) if max_queue is None else max_queue)
        self.queue: collections.deque[float] = collections.deque()
        self.idle: collections.deque[_Waiter] = collections.deque()
        self.alive = 0
        self.done = False
        #: Set by the first `set_rate`: the rate stages are abandoned.
        self.steered = False
        self._change: tuple[float, float, float] | None = None  # (at, rate, N(at))
        self._segment: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
        self._scope: Any = None
        #: Dispatch lateness (seconds after the intended time), for benchmarks.
        self.arrivals = 0
        self.lateness_sum = 0.0
        self.lateness_max = 0.0
        self.lateness = SecondsHistogram()  # for its p99

    # bots

    def _spawn(self) -> None:
        self.alive += 1
        self.control.spawn()

    def bot_ended(self, bot: BotState) -> None:
        self.alive -= 1

    async def next_arrival(self, bot: Bot) -> float | None:
        """Wait for this bot's next arrival; None when the run is over."""
        if self.queue:
            intended = self.queue.popleft()
            await self.runtime.backend.checkpoint()
            return intended
        if self.done:
            return None
        waiter = _Waiter(self.runtime.backend.event())
        self.idle.append(waiter)
        try:
            await waiter.event.wait()
        finally:
            if waiter.intended is None:
                try:
                    self.idle.remove(waiter)
                except ValueError:
                    pass
        return waiter.intended

    # the scheduler

    def _dispatch(self, intended: float) -> None:
        late = self.runtime.clock() - intended
        self.arrivals += 1
        self.lateness_sum += late
        self.lateness.record(late)
        if late > self.lateness_max:
            self.lateness_max = late
        if self.idle:
            waiter = self.idle.popleft()
            waiter.intended = intended
            waiter.event.set()
        elif self.alive < self.max_bots:
            self.queue.append(intended)  # the new bot takes it on its first iteration
            self._spawn()
        elif len(self.queue) < self.max_queue:
            self.queue.append(intended)
        else:
            self.runtime.dropped_arrivals += 1

    def stopping(self) -> None:
        self._finish()
        if self._scope is not None:
            self._scope.cancel()  # a steered run may be waiting for its duration

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.runtime.dropped_arrivals += len(self.queue)
        self.queue.clear()
        while self.idle:
            self.idle.popleft().event.set()

    def set_rate(self, rate: float, *, at: float | None = None) -> None:
        """Go to `rate` arrivals/s (over every shard) from swarm-clock time `at` (now),
        abandoning the rate stages; 0 pauses the arrivals. In the loop.

        The arrival count goes on from where the schedule was at the change, so the
        k-th arrival after it comes exactly at ``at + (k - N(at)) / rate``.
        """
        if self.done:
            return
        now = self.runtime.clock() if at is None else at
        self.steered = True
        self._change = (now, float(rate), self._due_at(now))
        if self._scope is not None:
            self._scope.cancel()

    def _due_at(self, t: float) -> float:
        """N(t): the arrivals due since the run's start by time `t`, on the current segment."""
        t0, t1, r0, r1, due = self._segment
        if t <= t0:
            return due
        span = t1 - t0
        s = min(t, t1) - t0
        slope = 0.0 if math.isinf(span) or span <= 0 else (r1 - r0) / span
        return due + r0 * s + slope * s * s / 2

    async def _follow(self, t0: float, t1: float, r0: float, r1: float, due: float) -> None:
        """Dispatch the arrivals of one segment of the schedule (this shard's)."""
        clock = self.runtime.clock
        shard = self.runtime.shard
        self._segment = (t0, t1, r0, r1, due)
        for arrival, intended in _ArrivalTimes(t0, t1, r0, r1, due):
            if not shard.takes_arrival(arrival):
                continue  # another shard's
            if intended > clock():
                await anyio.sleep_until(intended)
            if self.done:
                return
            self._dispatch(intended)

    async def run(self) -> None:
        runtime = self.runtime
        start = runtime.start_time
        duration = runtime.options["duration"]
        end = math.inf if duration is None else start + duration
        try:
            for _ in range(min(runtime.size, self.max_bots)):
                self._spawn()
            runtime.bots_target = self.max_bots
            with runtime.backend.cancel_scope() as self._scope:
                await self._run_stages(end)
            while self._change is not None and not self.done:
                at, rate, due = self._change
                self._change = None
                with runtime.backend.cancel_scope() as self._scope:
                    await self._follow(at, end, rate, rate, due)
                    await anyio.sleep_until(end)  # a steered run ends at duration or stop
        finally:
            self._scope = None
            self._finish()
            self.control.no_more_bots()

    async def _run_stages(self, end: float) -> None:
        stage_start = stage_end = self.runtime.start_time
        # A constant rate starts at full speed; rate stages ramp up from 0.
        level = self.stages[0][1] if len(self.stages) == 1 else 0.0
        due = 0.0  # the arrivals due before this stage: one count across every stage
        for seconds, target in self.stages:
            stage_end = min(stage_start + seconds, end)
            await self._follow(stage_start, stage_end, level, target, due)
            if self.done:
                return
            if stage_end >= end:
                break
            due += (level + target) / 2 * seconds
            stage_start, level = stage_end, target
        await anyio.sleep_until(stage_end)
        self.control.begin_stop()  # the rate stages (or the duration) are over


class _ArrivalTimes:
    """Arrival numbers and intended times for a rate that goes linearly from r0 to r1
    over [t0, t1), `due` arrivals having been due before t0.

    Arrival k comes when N(t) = k exactly, with N the integral of the rate since the
    run's start: one count across every stage, so that shard i of K can take the
    arrivals where k ≡ i (mod K) and the shards together make exactly the rate.
    """

    def __init__(self, t0: float, t1: float, r0: float, r1: float, due: float = 0.0) -> None:
        self.t0, self.t1, self.r0, self.r1, self.due = t0, t1, r0, r1, due

    def __iter__(self) -> Any:
        t0, t1, r0, r1 = self.t0, self.t1, self.r0, self.r1
        span = t1 - t0
        slope = 0.0 if math.isinf(span) or span <= 0 else (r1 - r0) / span
        due = self.due
        k = max(0, math.ceil(due - 1e-9))  # a whole count due so far is not lost to rounding
        while True:
            n = max(0.0, k - due)  # arrivals into this stage
            if slope == 0.0:
                if r0 <= 0:
                    return
                s = n / r0
            else:
                # r0*s + slope*s^2/2 = n
                disc = r0 * r0 + 2 * slope * n
                if disc < 0:
                    return
                s = (math.sqrt(disc) - r0) / slope
            at = t0 + s
            if at >= t1:
                return
            yield k, at
            k += 1


def make_load(runtime: Runtime, *, steerable: bool = True) -> Driver:
    """The load driver for the run's options: the open model with ``rate=``, else the
    closed model (which starts `size` bots at once when it has no ramp nor stages).

    `steerable` is False when the run has one bot per awaitable (the seed's API): then
    `ClosedModel.set_target` refuses, and bots need no stop scopes of their own. The
    options were checked together before (`options.check_combinations`).
    """
    options = runtime.options
    if options["rate"] is not None:
        return OpenModel(runtime)
    return ClosedModel(runtime, steerable=steerable)
