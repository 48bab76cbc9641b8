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
            self._runtime.recorder.record_failure(
                "iteration", exc_type.__name__, str(exc), bot.id
            )
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
    """``spawn_rate`` ramps and linear ``stages``; ramp-down retires the newest bots."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        options = runtime.options
        self.stages: list[tuple[float, float]] | None = options["stages"]
        self.spawn_rate: float | None = options["spawn_rate"]
        # Ramp-down stops bots one by one: each gets its own stopping event and scope.
        runtime.per_bot_stops = self.stages is not None
        #: Live bots not retiring, oldest first.
        self.active: list[BotState] = []
        #: Bots told to stop, in the order they were (a dict: a set would iterate by address).
        self.retiring: dict[BotState, None] = {}

    def bot_ended(self, bot: BotState) -> None:
        if bot in self.retiring:
            del self.retiring[bot]
        else:
            self.active.remove(bot)

    def stopping(self) -> None:
        for bot in (*self.active, *self.retiring):
            if bot.stopping is not None:
                bot.stopping.set()

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

    async def run(self) -> None:
        runtime = self.runtime
        stopping = runtime.stopping
        clock = runtime.clock
        start = runtime.start_time
        size = runtime.size
        shard = runtime.shard
        try:
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
        finally:
            self.control.no_more_bots()


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
        self.max_queue: int = shard.split(
            math.ceil(peak_rate) if max_queue is None else max_queue
        )
        self.queue: collections.deque[float] = collections.deque()
        self.idle: collections.deque[_Waiter] = collections.deque()
        self.alive = 0
        self.done = False
        #: Dispatch lateness (seconds after the intended time), for benchmarks.
        self.arrivals = 0
        self.lateness_sum = 0.0
        self.lateness_max = 0.0

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

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.runtime.dropped_arrivals += len(self.queue)
        self.queue.clear()
        while self.idle:
            self.idle.popleft().event.set()

    async def run(self) -> None:
        runtime = self.runtime
        clock = runtime.clock
        start = runtime.start_time
        duration = runtime.options["duration"]
        end = math.inf if duration is None else start + duration
        try:
            for _ in range(min(runtime.size, self.max_bots)):
                self._spawn()
            runtime.bots_target = self.max_bots
            shard = runtime.shard
            stage_start = stage_end = start
            # A constant rate starts at full speed; rate stages ramp up from 0.
            level = self.stages[0][1] if len(self.stages) == 1 else 0.0
            due = 0.0  # the arrivals due before this stage: one count across every stage
            for seconds, target in self.stages:
                stage_end = min(stage_start + seconds, end)
                for arrival, intended in _ArrivalTimes(stage_start, stage_end, level, target, due):
                    if not shard.takes_arrival(arrival):
                        continue  # another shard's
                    if intended > clock():
                        await anyio.sleep_until(intended)
                    if self.done:
                        return
                    self._dispatch(intended)
                if stage_end >= end:
                    break
                due += (level + target) / 2 * seconds
                stage_start, level = stage_end, target
            if not self.done:
                await anyio.sleep_until(stage_end)
                self.control.begin_stop()  # the rate stages (or the duration) are over
        finally:
            self._finish()
            self.control.no_more_bots()


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


def make_load(runtime: Runtime) -> Driver | None:
    """The load driver for the run's options, or None to start `size` bots at once.

    The options were checked together before (`options.check_combinations`).
    """
    options = runtime.options
    if options["rate"] is not None:
        return OpenModel(runtime)
    if options["stages"] is not None or options["spawn_rate"] is not None:
        return ClosedModel(runtime)
    return None
