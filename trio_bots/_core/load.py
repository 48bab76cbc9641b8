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

if TYPE_CHECKING:
    from .bot import Bot
    from .swarm import Swarm


class Iteration:
    """One step of `Bot.iterations`; ``with it:`` makes a failing step non-fatal.

    Attributes:
        index: 0-based count of this bot's iterations.
        intended_start: in the open model, the swarm-clock time this arrival
            was scheduled for; otherwise the actual start.
        started: the swarm-clock time the iteration actually started.

    Example:
        >>> async def worker(bot):
        ...     async for it in bot.iterations():
        ...         with it:  # an Exception here is counted, and the loop goes on
        ...             await do_request(bot)
    """

    __slots__ = ("_bot", "index", "intended_start", "started")

    def __init__(self, bot: Bot, index: int, intended_start: float, started: float) -> None:
        self._bot = bot
        self.index = index
        self.intended_start = intended_start
        self.started = started

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
            bot.swarm._recorder.record_failure("iteration", exc_type.__name__, str(exc), bot.id)
            bot.log.debug("iteration %d failed: %s: %s", self.index, exc_type.__name__, exc)
            return True
        return False


class Iterations:
    """The async iterator `Bot.iterations` returns (a class, not an async generator,
    so that no cleanup depends on the async-generator finaliser).

    Example:
        >>> async def worker(bot):
        ...     async for it in bot.iterations():
        ...         print("iteration", it.index)
    """

    __slots__ = ("_bot", "_count", "_last_start", "_limit", "_open", "_pace", "_think")

    #: With no think time or pace, yield to the scheduler on every Nth iteration only;
    #: the others just check for cancellation. The body's own I/O yields anyway.
    YIELD_EVERY = 16

    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        self._count = 0
        self._last_start: float | None = None
        options = bot.swarm.options
        self._limit: int | None = options["iterations"]
        self._pace: float | None = options["pace"]
        self._think: float | tuple[float, float] | None = options["think_time"]
        load = bot.swarm._load
        self._open: OpenModel | None = load if isinstance(load, OpenModel) else None

    def __aiter__(self) -> Iterations:
        return self

    async def __anext__(self) -> Iteration:
        bot = self._bot
        swarm = bot.swarm
        count = self._count
        if self._limit is not None and count >= self._limit:
            raise StopAsyncIteration
        if self._open is not None:
            intended = await self._open.next_arrival(bot)
            if intended is None:
                raise StopAsyncIteration
            now = swarm._clock()
            bot._lateness = max(0.0, now - intended)
        else:
            if bot.stopping.is_set():
                raise StopAsyncIteration
            if count and (self._pace is not None or self._think is not None):
                await self._wait_between(bot)
                if bot.stopping.is_set():
                    raise StopAsyncIteration
            elif count % self.YIELD_EVERY:
                await swarm._backend.checkpoint_if_cancelled()
            else:
                await swarm._backend.checkpoint()
            now = intended = swarm._clock()
        self._last_start = now
        self._count = count + 1
        return Iteration(bot, count, intended, now)

    async def _wait_between(self, bot: Bot) -> None:
        swarm = bot.swarm
        think = self._think
        if self._pace is not None and self._last_start is not None:
            deadline = self._last_start + self._pace
        elif think is not None:
            wait = bot.random.uniform(*think) if isinstance(think, tuple) else think
            deadline = swarm._clock() + wait
        else:
            await swarm._backend.checkpoint()
            return
        with swarm._backend.cancel_scope(deadline=deadline):
            await bot.stopping.wait()


# -- drivers --------------------------------------------------------------------------------


class _Driver:
    """Starts the bots of a swarm over time. `scoped`: bots get their own cancel scope."""

    scoped = False

    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm

    async def run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def bot_ended(self, bot: Bot) -> None:
        """A bot ended, however."""

    def stopping(self) -> None:
        """A graceful stop of the whole swarm began."""


class ClosedModel(_Driver):
    """``spawn_rate`` ramps and linear ``stages``; ramp-down retires the newest bots."""

    def __init__(self, swarm: Swarm) -> None:
        super().__init__(swarm)
        options = swarm.options
        self.stages: list[tuple[float, float]] | None = options["stages"]
        self.spawn_rate: float | None = options["spawn_rate"]
        self.scoped = self.stages is not None
        #: Live bots not retiring, oldest first.
        self.active: list[Bot] = []
        self.retiring: set[Bot] = set()

    def bot_ended(self, bot: Bot) -> None:
        if bot in self.retiring:
            self.retiring.discard(bot)
        else:
            self.active.remove(bot)

    def stopping(self) -> None:
        for bot in (*self.active, *self.retiring):
            if bot._stopping is not None:
                bot._stopping.set()

    def _spawn(self) -> None:
        self.active.append(self.swarm._spawn())

    def _retire(self) -> None:
        bot = self.active.pop()
        self.retiring.add(bot)
        bot.stopping.set()
        self.swarm._task_group.start_soon(self._cancel_after_grace, bot)

    async def _cancel_after_grace(self, bot: Bot) -> None:
        await anyio.sleep(self.swarm.options["stop_grace"])
        if bot._scope is not None:
            bot._scope.cancel()

    async def run(self) -> None:
        swarm = self.swarm
        clock = swarm._clock
        start = swarm._start_time
        try:
            if self.stages is None:
                rate = self.spawn_rate
                for index in range(swarm.size):
                    if rate is not None and index:
                        await anyio.sleep_until(start + index / rate)
                        if swarm._stopping.is_set():
                            return
                    self._spawn()
                return
            for _ in range(swarm.size):
                self._spawn()
            stage_start = start
            level = float(swarm.size)
            for seconds, stage_target in self.stages:
                target = round(stage_target)  # whole bots, or the ramp would oscillate
                stage_end = stage_start + seconds
                swarm.bots_target = target
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
                    if swarm._stopping.is_set():
                        return
                    if count < target:
                        self._spawn()
                    else:
                        self._retire()
                await anyio.sleep_until(stage_end)
                if swarm._stopping.is_set():
                    return
                stage_start, level = stage_end, target
            swarm._begin_stop()  # the stages are over: this is the run's natural end
        finally:
            swarm._no_more_bots()


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


class OpenModel(_Driver):
    """Arrivals at a fixed rate (or rate stages), handed to idle bots, queued or dropped.

    The k-th arrival's intended time is computed from k alone, so no drift
    builds up over long runs.
    """

    def __init__(self, swarm: Swarm) -> None:
        super().__init__(swarm)
        options = swarm.options
        rate = options["rate"]
        self.stages: list[tuple[float, float]] = (
            rate if isinstance(rate, list) else [(math.inf, float(rate))]
        )
        peak_rate = max(r for _, r in self.stages)
        self.max_bots: int = options["max_bots"] if options["max_bots"] is not None else swarm.size
        if self.max_bots < 1:
            raise ConfigError(
                "the open model needs at least one bot: give size >= 1 (the warm pool) "
                "or max_bots >= 1"
            )
        max_queue = options["max_queue"]
        self.max_queue: int = math.ceil(peak_rate) if max_queue is None else max_queue
        self.queue: collections.deque[float] = collections.deque()
        self.idle: collections.deque[_Waiter] = collections.deque()
        self.alive = 0
        self.done = False
        #: Dispatch lateness (seconds after the intended time), for benchmarks.
        self.arrivals = 0
        self.lateness_sum = 0.0
        self.lateness_max = 0.0

    # bots

    def _spawn(self) -> Bot:
        self.alive += 1
        return self.swarm._spawn()

    def bot_ended(self, bot: Bot) -> None:
        self.alive -= 1

    async def next_arrival(self, bot: Bot) -> float | None:
        """Wait for this bot's next arrival; None when the run is over."""
        if self.queue:
            intended = self.queue.popleft()
            await self.swarm._backend.checkpoint()
            return intended
        if self.done:
            return None
        waiter = _Waiter(self.swarm._backend.event())
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
        swarm = self.swarm
        late = swarm._clock() - intended
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
            swarm.dropped_arrivals += 1

    def stopping(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.swarm.dropped_arrivals += len(self.queue)
        self.queue.clear()
        while self.idle:
            self.idle.popleft().event.set()

    async def run(self) -> None:
        swarm = self.swarm
        clock = swarm._clock
        start = swarm._start_time
        end = math.inf if swarm.options["duration"] is None else start + swarm.options["duration"]
        try:
            for _ in range(min(swarm.size, self.max_bots)):
                self._spawn()
            swarm.bots_target = self.max_bots
            stage_start = stage_end = start
            # A constant rate starts at full speed; rate stages ramp up from 0.
            level = self.stages[0][1] if len(self.stages) == 1 else 0.0
            for seconds, target in self.stages:
                stage_end = min(stage_start + seconds, end)
                for intended in _ArrivalTimes(stage_start, stage_end, level, target):
                    if intended > clock():
                        await anyio.sleep_until(intended)
                    if self.done:
                        return
                    self._dispatch(intended)
                if stage_end >= end:
                    break
                stage_start, level = stage_end, target
            if not self.done:
                await anyio.sleep_until(stage_end)
                swarm._begin_stop()  # the rate stages (or the duration) are over
        finally:
            self._finish()
            swarm._no_more_bots()


class _ArrivalTimes:
    """Intended arrival times for a rate that goes linearly from r0 to r1 over [t0, t1).

    The k-th time solves N(t) = k exactly, with N the integral of the rate.
    """

    def __init__(self, t0: float, t1: float, r0: float, r1: float) -> None:
        self.t0, self.t1, self.r0, self.r1 = t0, t1, r0, r1

    def __iter__(self) -> Any:
        t0, t1, r0, r1 = self.t0, self.t1, self.r0, self.r1
        span = t1 - t0
        slope = 0.0 if math.isinf(span) or span <= 0 else (r1 - r0) / span
        k = 0
        while True:
            if slope == 0.0:
                if r0 <= 0:
                    return
                s = k / r0
            else:
                # r0*s + slope*s^2/2 = k
                disc = r0 * r0 + 2 * slope * k
                if disc < 0:
                    return
                s = (math.sqrt(disc) - r0) / slope
            at = t0 + s
            if at >= t1:
                return
            yield at
            k += 1


def make_load(swarm: Swarm) -> _Driver | None:
    """The load driver for `swarm`'s options, or None to start `size` bots at once."""
    options = swarm.options
    if options["rate"] is not None:
        if options["think_time"] is not None or options["pace"] is not None:
            raise ConfigError(
                "think_time= and pace= belong to the closed model; with rate= the arrivals "
                "set the pace"
            )
        if options["spawn_rate"] is not None:
            raise ConfigError("spawn_rate= belongs to the closed model; rate= starts bots itself")
        return OpenModel(swarm)
    if options["max_queue"] is not None:
        raise ConfigError("max_queue= belongs to the open model: give rate= too")
    if options["stages"] is not None or options["spawn_rate"] is not None:
        return ClosedModel(swarm)
    return None
