"""The swarm: one nursery that runs N bots, the failure policy, and the result.

Example:
    >>> import trio, trio_bots
    >>> async def worker(bot):
    ...     await bot.step()
    >>> result = trio.run(trio_bots.swarm, worker, 100)
    >>> result.bots_finished
    100
"""

from __future__ import annotations

import inspect
import signal
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from .. import metrics as _metrics
from .._errors import ConfigError, SwarmAborted
from .backend import Backend, current_backend
from .bot import Bot, _current_bot
from .messaging import Groups
from .options import preflight_fds, validate_options

Worker = Callable[[Bot], Awaitable[Any]]

_BOT_TASK_NAME = "trio_bots.bot"


@dataclass(frozen=True)
class BotFailure:
    """An exception that escaped a worker and ended its bot.

    Example:
        >>> BotFailure(3, ValueError("boom"))
        BotFailure(bot_id=3, exception=ValueError('boom'))
    """

    bot_id: int
    exception: BaseException


@dataclass(frozen=True)
class SwarmStatistics:
    """A frozen snapshot of a running swarm, from `Swarm.statistics`.

    Times are seconds on the swarm clock; `metrics` is a plain-data metrics
    snapshot (see `trio_bots.metrics`).

    Example:
        >>> async def watch(swarm):
        ...     stats = swarm.statistics()
        ...     print(stats.bots_running, stats.elapsed)
    """

    elapsed: float
    duration: float | None
    bots_running: int
    bots_target: int
    bots_started: int
    bots_finished: int
    dropped_messages: int
    dropped_arrivals: int
    stopping: bool
    metrics: dict[str, Any] = field(repr=False)


@dataclass
class SwarmResult:
    """What a swarm measured and how its bots ended.

    Attributes:
        stats: a `StatsMap`: ``stats[name]`` and ``stats.total``.
        failures: the request failures, grouped by (type, message).
        timeline: one bucket per second.
        bot_failures: every `BotFailure`.
        bots_started, bots_finished: bot counts.
        dropped_messages: messages dropped under ``on_full="drop"``.
        dropped_arrivals: open-model arrivals dropped (queue full, or queued at the stop).
        duration: seconds from the start to the end of the run.
        interrupted: True only when SIGINT/SIGTERM or `Swarm.stop` ended the run.
        aborted: True when the failure policy ended the run.

    Example:
        >>> import trio, trio_bots
        >>> async def worker(bot):
        ...     async with bot.measure("noop"):
        ...         pass
        >>> result = trio.run(trio_bots.swarm, worker, 10)
        >>> result.stats["noop"].count, result.stats.total.failure_count
        (10, 0)
    """

    stats: _metrics.StatsMap
    failures: list[_metrics.FailureGroup]
    timeline: list[_metrics.TimelineBucket]
    bot_failures: list[BotFailure]
    bots_started: int
    bots_finished: int
    dropped_messages: int
    dropped_arrivals: int
    duration: float
    interrupted: bool
    aborted: bool
    size: int
    started_wall: float
    options: Mapping[str, Any] = field(repr=False)
    metrics: dict[str, Any] = field(repr=False)
    signal: int | None = None

    def check(self, *thresholds: str) -> list[Any]:
        """Evaluate threshold expressions such as ``"p99(login) < 50ms"``.

        Returns a `ThresholdResult` per expression.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     async with bot.measure("login"):
            ...         await trio.sleep(0)
            >>> result = trio.run(trio_bots.swarm, worker, 5)
            >>> [r.passed for r in result.check("failure_rate < 1%", "count(login) >= 5")]
            [True, True]
        """
        from ..metrics._thresholds import check_thresholds

        return list(check_thresholds(self.stats, thresholds))

    def assert_thresholds(self, *thresholds: str) -> list[Any]:
        """Like `check`, but raise `ThresholdError` listing each failed threshold.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     async with bot.measure("login"):
            ...         await trio.sleep(0)
            >>> result = trio.run(trio_bots.swarm, worker, 5)
            >>> _ = result.assert_thresholds("p99(login) < 1s", "failure_rate == 0")
        """
        from ..metrics._thresholds import assert_thresholds

        return list(assert_thresholds(self.stats, thresholds))

    def to_dict(self, thresholds: list[Any] | None = None) -> dict[str, Any]:
        """The run as plain data, schema ``trio-bots/1``: what the reporters read.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     await bot.step()
            >>> result = trio.run(trio_bots.swarm, worker, 2)
            >>> result.to_dict()["schema"]
            'trio-bots/1'
        """
        return {
            "schema": "trio-bots/1",
            "time_unit": "s",
            "run": {
                "started_wall": self.started_wall,
                "duration": self.duration,
                "size": self.size,
                "bots_started": self.bots_started,
                "bots_finished": self.bots_finished,
                "interrupted": self.interrupted,
                "aborted": self.aborted,
                "dropped_messages": self.dropped_messages,
                "dropped_arrivals": self.dropped_arrivals,
                "options": {k: _plain(v) for k, v in self.options.items()},
                "bot_failures": [
                    {
                        "bot_id": f.bot_id,
                        "type": type(f.exception).__name__,
                        "message": str(f.exception),
                    }
                    for f in self.bot_failures
                ],
            },
            "metrics": self.metrics,
            "thresholds": [
                {
                    "expression": t.expression,
                    "passed": t.passed,
                    "measured": t.measured,
                    "required": t.required,
                }
                for t in (thresholds or [])
            ],
        }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return repr(value)


def _weighted_cycle(weights: Mapping[Worker, int]) -> list[Worker]:
    """Smooth weighted round-robin (as nginx does): {a: 3, b: 1} -> a a b a."""
    current = dict.fromkeys(weights, 0)
    total = sum(weights.values())
    cycle = []
    for _ in range(total):
        for worker, weight in weights.items():
            current[worker] += weight
        best = max(current, key=lambda w: current[w])
        current[best] -= total
        cycle.append(best)
    return cycle


def _worker_picker(worker: Any) -> Callable[[int], Worker]:
    if isinstance(worker, Mapping):
        if not worker:
            raise ConfigError("the worker mapping is empty; give {worker_a: 3, worker_b: 1}")
        for fn, weight in worker.items():
            if not callable(fn):
                raise ConfigError(f"worker mapping keys must be async functions, got {fn!r}")
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
                raise ConfigError(f"worker weights must be ints >= 1, got {weight!r} for {fn!r}")
        cycle = _weighted_cycle(worker)
        return lambda index: cycle[index % len(cycle)]
    if not callable(worker):
        raise ConfigError(f"worker must be an async function worker(bot), got {worker!r}")
    return lambda index: worker


class Swarm:
    """A running swarm; `open_swarm` gives one, and so does ``bot.swarm``.

    Attributes:
        host: the ``host`` option as given, or None.
        size: the number of bots started up front.
        options: a read-only mapping of the swarm's keyword options.
        result: the `SwarmResult`, once the ``async with open_swarm`` block has ended.

    Example:
        >>> import trio, trio_bots
        >>> async def main():
        ...     async def worker(bot):
        ...         await bot.stopping.wait()
        ...     async with trio_bots.open_swarm(worker, 5) as swarm:
        ...         await trio.sleep(1)
        ...         swarm.stop()
        ...     return swarm.result.interrupted
        >>> trio.run(main)
        True
    """

    def __init__(self, worker: Any, size: int, options: dict[str, Any], backend: Backend) -> None:
        self.size = size
        self.options: Mapping[str, Any] = types.MappingProxyType(options)
        self.host: str | None = options["host"]
        self.result: SwarmResult | None = None
        self._backend = backend
        self._clock = backend.bound_clock()
        self._pick_worker = _worker_picker(worker)
        self._request_timeout: float | None = options["request_timeout"]
        self._max_failures: int | None = options["max_failures"]
        self._start_time = self._clock()
        self._started_wall = time.time()
        self._recorder = _metrics.Recorder(self._start_time)
        self._groups = Groups(
            backend,
            self._recorder,
            clock=self._clock,
            inbox_size=options["inbox_size"],
            on_full=options["on_full"],
            fanout=options["fanout"],
        )
        self._stopping = backend.event()
        self._done = backend.event()
        self._task_group: Any = None
        self._next_id = 0
        self._running = 0
        self._bots_finished = 0
        self._bot_failures: list[BotFailure] = []
        self._feeding = True  # False once no more bots will be started
        self._aborted = False
        self._interrupted = False
        self._signal: int | None = None
        self._end_time: float | None = None
        self._first_bot_at: float | None = None
        self._last_bot_end: float | None = None
        self.bots_target = size
        self.dropped_arrivals = 0
        self._load: Any = None

    def __repr__(self) -> str:
        return f"<Swarm size={self.size} running={self._running}>"

    # -- public

    def statistics(self) -> SwarmStatistics:
        """A frozen snapshot of the run so far, for live views.

        Example:
            >>> import trio, trio_bots
            >>> async def idle(bot):
            ...     await bot.stopping.wait()
            >>> async def main():
            ...     async with trio_bots.open_swarm(idle, 3, duration=1) as swarm:
            ...         await trio.sleep(0)
            ...         return swarm.statistics().bots_running
            >>> trio.run(main)
            3
        """
        now = self._clock()
        return SwarmStatistics(
            elapsed=now - self._start_time,
            duration=self.options["duration"],
            bots_running=self._running,
            bots_target=self.bots_target,
            bots_started=self._next_id,
            bots_finished=self._bots_finished,
            dropped_messages=self._groups.dropped_messages,
            dropped_arrivals=self.dropped_arrivals,
            stopping=self._stopping.is_set(),
            metrics=self._recorder.snapshot(
                _just_before(now),
                bots_running=self._running,
                active_seconds=self._active_seconds(now),
            ),
        )

    def stop(self) -> None:
        """Begin a graceful stop: set ``bot.stopping``, then cancel after ``stop_grace``.

        The run's result is marked ``interrupted``. Calling it again does nothing.

        Example:
            >>> import trio, trio_bots
            >>> async def idle(bot):
            ...     await trio.sleep_forever()
            >>> async def main():
            ...     async with trio_bots.open_swarm(idle, 3, stop_grace=0) as swarm:
            ...         swarm.stop()
            ...     return swarm.result.interrupted
            >>> trio.run(main)
            True
        """
        self._interrupted = True
        self._begin_stop()

    # -- bots

    def _spawn(self, worker: Worker | None = None) -> Bot:
        """Start one more bot now; ids are given in start order."""
        bot = Bot(self, self._next_id)
        self._next_id += 1
        if worker is None:
            worker = self._pick_worker(bot.id)
        self._running += 1
        self._groups.add(bot)
        if self._first_bot_at is None:
            self._first_bot_at = self._clock()
        # One shared name: trio would build a string per task (~60 bytes a bot).
        self._task_group.start_soon(self._run_bot, bot, worker, name=_BOT_TASK_NAME)
        return bot

    async def _run_bot(self, bot: Bot, worker: Worker) -> None:
        if not self._backend.is_trio:
            _current_bot.set(bot)  # on trio, current_bot() finds this frame instead
        try:
            if self._load is not None and self._load.scoped:
                with self._backend.cancel_scope() as bot._scope:
                    await worker(bot)
            else:
                await worker(bot)
        except* Exception as group:
            exc = group.exceptions[0] if len(group.exceptions) == 1 else group
            self._bot_failed(bot, exc)
        finally:
            await bot._close_owned()
            self._bot_ended(bot)

    def _bot_failed(self, bot: Bot, exc: BaseException) -> None:
        self._bot_failures.append(BotFailure(bot.id, exc))
        bot.log.debug("failed: %s: %s", type(exc).__name__, exc)
        if self._max_failures is not None and len(self._bot_failures) > self._max_failures:
            if not self._aborted:
                self._aborted = True
                self._task_group.cancel_scope.cancel()

    def _bot_ended(self, bot: Bot) -> None:
        self._groups.remove(bot)
        self._running -= 1
        self._bots_finished += 1
        self._last_bot_end = self._clock()
        if self._load is not None:
            self._load.bot_ended(bot)
        self._check_done()

    def _check_done(self) -> None:
        if self._running == 0 and not self._feeding:
            self._done.set()

    def _active_seconds(self, now: float) -> float:
        if self._first_bot_at is None:
            return 0.0
        end = now if self._running or self._last_bot_end is None else self._last_bot_end
        return max(0.0, end - self._first_bot_at)

    # -- stopping

    def _begin_stop(self) -> None:
        if self._stopping.is_set() or self._task_group is None or self.result is not None:
            return
        self._stopping.set()
        if self._load is not None:
            self._load.stopping()
        self._task_group.start_soon(self._cancel_after_grace, name="trio_bots grace")

    async def _cancel_after_grace(self) -> None:
        await anyio.sleep(self.options["stop_grace"])
        self._task_group.cancel_scope.cancel()

    async def _stop_after_duration(self, duration: float) -> None:
        await anyio.sleep_until(self._start_time + duration)
        self._begin_stop()

    async def _tick(self) -> None:
        recorder = self._recorder
        next_tick = self._start_time
        while True:
            next_tick += 1.0
            await anyio.sleep_until(next_tick)
            recorder.tick(_just_before(next_tick), self._running)

    async def _handle_signals(self) -> None:
        handled = (signal.SIGINT, signal.SIGTERM)
        # anyio's receiver on asyncio resets the handlers to the defaults on exit:
        # put back whatever was installed before the swarm.
        previous = {signum: signal.getsignal(signum) for signum in handled}
        try:
            with anyio.open_signal_receiver(*handled) as signals:
                async for signum in signals:
                    if self._signal is not None:
                        self._task_group.cancel_scope.cancel()  # a second signal: stop now
                        return
                    self._signal = int(signum)
                    self.stop()
        finally:
            for signum, handler in previous.items():
                if handler is not None and signal.getsignal(signum) is not handler:
                    signal.signal(signum, handler)

    # -- lifecycle

    def _begin(self, task_group: Any) -> None:
        self._task_group = task_group
        task_group.start_soon(self._tick, name="trio_bots ticker")
        if self.options["handle_sigint"]:
            task_group.start_soon(self._handle_signals, name="trio_bots signals")
        if self.options["duration"] is not None:
            task_group.start_soon(
                self._stop_after_duration, self.options["duration"], name="trio_bots duration"
            )
        if self._load is not None:
            task_group.start_soon(self._load.run, name="trio_bots load")
        else:
            for _ in range(self.size):
                self._spawn()
            self._feeding = False
            self._check_done()

    def _no_more_bots(self) -> None:
        """Called by the load driver when it will start no more bots."""
        self._feeding = False
        self._check_done()

    def _finish(self) -> SwarmResult:
        now = self._clock()
        self._end_time = now
        snapshot = self._recorder.snapshot(
            _just_before(now), bots_running=self._running, active_seconds=self._active_seconds(now)
        )
        self.result = SwarmResult(
            stats=_metrics.stats_from_snapshot(snapshot),
            failures=_metrics.failures_from_snapshot(snapshot),
            timeline=_metrics.timeline_from_snapshot(snapshot),
            bot_failures=list(self._bot_failures),
            bots_started=self._next_id,
            bots_finished=self._bots_finished,
            dropped_messages=self._groups.dropped_messages,
            dropped_arrivals=self.dropped_arrivals,
            duration=now - self._start_time,
            interrupted=self._interrupted,
            aborted=self._aborted,
            size=self.size,
            started_wall=self._started_wall,
            options=self.options,
            metrics=snapshot,
            signal=self._signal,
        )
        return self.result


def _just_before(now: float) -> float:
    """The recorder files what is pending under the second of the time it is given: give it
    the last moment that can hold data, so that a flush on a whole second k files [k-1, k)
    under k-1, and not under the second that is only beginning."""
    return now - 1e-6


def _abort_error(swarm: Swarm, result: SwarmResult) -> SwarmAborted:
    failures = result.bot_failures
    first = failures[0]
    message = f"bot {first.bot_id} failed: {type(first.exception).__name__}: {first.exception}"
    if len(failures) > 1:
        message += f" (and {len(failures) - 1} more bot failures)"
    limit = swarm._max_failures
    message += f"; max_failures={limit} was exceeded, so the swarm was aborted"
    error = SwarmAborted(message, failures=list(failures), result=result)
    error.__cause__ = first.exception
    return error


def _awaitables_from_factory(factory: Any, worker: Any, size: int) -> list[Any]:
    """The seed's ``factory(worker, size=N)``: an iterable of awaitables, one per bot."""
    awaitables = list(factory(worker, size=size))
    for index, awaitable in enumerate(awaitables):
        if not inspect.isawaitable(awaitable):
            _close_unstarted(awaitables)
            raise ConfigError(
                f"factory(worker, size={size}) must give awaitables such as worker(i), but "
                f"item {index} is {awaitable!r}"
            )
    return awaitables


def _await_own_awaitable(awaitables: list[Any]) -> Worker:
    async def run_awaitable(bot: Bot) -> None:
        awaitable, awaitables[bot.id] = awaitables[bot.id], None
        await awaitable

    return run_awaitable


def _close_unstarted(awaitables: list[Any]) -> None:
    """Close awaitables that never ran (the swarm ended first): no "never awaited" warning."""
    for awaitable in awaitables:
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()


def _unwrap(group: BaseExceptionGroup[Any]) -> BaseException:
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    return leaves[0] if len(leaves) == 1 else group


@asynccontextmanager
async def open_swarm(worker: Any, size: int, **options: Any) -> AsyncIterator[Swarm]:
    """Start a swarm of `size` bots running `worker`, and give the live `Swarm`.

    The block's end waits for the swarm to finish; ``swarm.result`` then holds
    the `SwarmResult`. An exception in the block cancels every bot.

    Args:
        worker: ``async def worker(bot)``, or a mapping ``{worker_a: 3, worker_b: 1}``
            of weighted worker types.
        size: how many bots to start up front.
        **options: keyword options, see the docs (``duration``, ``max_failures``, ...).

    Raises:
        ConfigError: on an unknown option or bad value, before any bot starts.
        SwarmAborted: when more than ``max_failures`` bots failed.

    Example:
        >>> import trio, trio_bots
        >>> async def worker(bot):
        ...     await bot.stopping.wait()
        >>> async def main():
        ...     async with trio_bots.open_swarm(worker, 10, duration=2, stop_grace=1) as s:
        ...         pass
        ...     return s.result.bots_finished
        >>> trio.run(main)
        10
    """
    validated = validate_options(size, options)
    awaitables: list[Any] = []
    if validated["factory"] is not None:
        awaitables = _awaitables_from_factory(validated["factory"], worker, size)
        worker, size = _await_own_awaitable(awaitables), len(awaitables)
    from .load import make_load

    try:
        preflight_fds(size, validated)
        swarm = Swarm(worker, size, validated, current_backend())
        swarm._load = make_load(swarm)
    except BaseException:
        _close_unstarted(awaitables)
        raise
    error: BaseException | None = None
    try:
        async with swarm._backend.open_task_group() as task_group:
            swarm._begin(task_group)
            yield swarm
            await swarm._done.wait()
            task_group.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        error = _unwrap(group)
        if error is group:
            raise
    finally:
        result = swarm._finish()
        _close_unstarted(awaitables)
    if error is not None:
        raise error  # outside the except block, so its own __context__ is kept
    if swarm._aborted and result.bot_failures:
        raise _abort_error(swarm, result)


async def swarm(worker: Any, size: int, **options: Any) -> SwarmResult:
    """Run a swarm to the end and return its `SwarmResult`.

    Works as ``trio.run(trio_bots.swarm, worker, 100)`` and as
    ``anyio.run(trio_bots.swarm, worker, 100, backend="asyncio")``.

    Example:
        >>> import anyio, trio_bots
        >>> async def worker(bot):
        ...     bot.join("all")
        ...     await bot.barrier("ready", group="all")
        >>> anyio.run(trio_bots.swarm, worker, 10, backend="asyncio").bots_finished
        10
    """
    async with open_swarm(worker, size, **options) as running:
        pass
    assert running.result is not None
    return running.result
