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

import functools
import inspect
import signal
import threading
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from contextlib import asynccontextmanager, nullcontext
from typing import Any

import anyio

from .._errors import ConfigError, SwarmAborted
from ..metrics import failures_from_snapshot, stats_from_snapshot, timeline_from_snapshot
from .backend import LoopCaller, current_backend
from .bot import Bot, enter_bot_task
from .data import feeder_for_run
from .load import ClosedModel, OpenModel, make_load
from .messaging import Messaging
from .monitor import Monitor
from .options import check_backend, preflight_fds, validate_options
from .result import BotFailure, SwarmResult, SwarmStatistics
from .runtime import BotState, Runtime, Tick
from .scheduler import seeded_scheduler
from .shard import WHOLE_RUN, Shard
from .trace import TracedBot, tracer_for_run

Worker = Callable[[Bot], Awaitable[Any]]

_BOT_TASK_NAME = "trio_bots.bot"


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
            check_worker(fn)
        cycle = _weighted_cycle(worker)
        return lambda index: cycle[index % len(cycle)]
    if not callable(worker):
        raise ConfigError(f"worker must be an async function worker(bot), got {worker!r}")
    check_worker(worker)
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

    def __init__(self, worker: Any, runtime: Runtime, *, fixed_bots: bool = False) -> None:
        options = runtime.options
        self.size = runtime.size
        self.options: Mapping[str, Any] = types.MappingProxyType(dict(options))
        self.host: str | None = options["host"]
        self.result: SwarmResult | None = None
        self._runtime = runtime
        self._backend = runtime.backend
        self._messaging = Messaging(runtime)
        self._pick_worker = _worker_picker(worker)
        self._max_failures: int | None = options["max_failures"]
        self._done = runtime.backend.event()
        self._task_group: Any = None
        self._loop = LoopCaller()  # bound at the start: calls from other threads
        self._bot_failures: list[BotFailure] = []
        self._feeding = True  # False once no more bots will be started
        self._aborted = False
        self._interrupted = False
        self._timed_out = False
        self._bots_cancelled = 0
        self._cut_at = float("inf")  # when the graceful stop cancels what still runs
        self._signal: int | None = None
        self._escaped: BaseException | None = None  # a bot's BaseException, raised at the end
        self._load = runtime.load = make_load(runtime, steerable=not fixed_bots)
        runtime.control = _Control(self)
        # thresholds= and hdr_log= follow the run's seconds; the log's file opens here
        self._monitor: Monitor | None = None
        if Monitor.wanted(options):
            self._monitor = Monitor(
                options,
                size=self.size,
                started_wall=runtime.started_wall,
                statistics=functools.partial(self.statistics, metrics=False),
                begin_stop=self._begin_stop,
            )
            runtime.on_tick(self._monitor.tick)

    def __repr__(self) -> str:
        return f"<Swarm size={self.size} running={self._runtime.bots_running}>"

    # -- public

    def statistics(self, *, metrics: bool = True) -> SwarmStatistics:
        """A frozen snapshot of the run so far, for live views. It changes nothing.

        With ``metrics=False`` its ``metrics`` is an empty dict: the counters only,
        for views that follow the per-second figures through `on_tick` instead of
        re-reading every histogram.

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
        runtime = self._runtime
        load = self._load
        arrivals = getattr(load, "arrivals", 0)
        return SwarmStatistics(
            elapsed=runtime.clock() - runtime.start_time,
            duration=self.options["duration"],
            bots_running=runtime.bots_running,
            bots_target=runtime.bots_target,
            bots_started=runtime.bots_started,
            bots_finished=runtime.bots_finished,
            dropped_messages=self._messaging.dropped_messages,
            dropped_arrivals=runtime.dropped_arrivals,
            stopping=runtime.stopping.is_set(),
            metrics=runtime.snapshot() if metrics else {},
            arrivals=arrivals,
            arrival_lateness_mean=getattr(load, "lateness_sum", 0.0) / max(arrivals, 1),
            arrival_lateness_max=getattr(load, "lateness_max", 0.0),
            arrival_lateness_p99=(
                load.lateness.percentile(99) if isinstance(load, OpenModel) and arrivals else 0.0
            ),
            thresholds=() if self._monitor is None else self._monitor.states(),
        )

    def group_sizes(self) -> dict[Hashable, int]:
        """How many live bots each group has now (``bot.join``), by group name.

        A group whose last member left or ended is not listed. It is counted
        when asked, not kept up to date on the hot path: for live views (the web
        dashboard polls it), not for every send. It changes nothing.

        Example:
            >>> import trio, trio_bots
            >>> async def seated(bot):
            ...     bot.join(f"table-{bot.id % 2}")
            ...     await bot.stopping.wait()
            >>> async def main():
            ...     async with trio_bots.open_swarm(seated, 5, duration=1) as swarm:
            ...         await trio.sleep(0.5)
            ...         return swarm.group_sizes()
            >>> sizes = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
            >>> sorted(sizes.items())  # the bots join in trio's order, which varies
            [('table-0', 3), ('table-1', 2)]
        """
        return self._messaging.group_sizes()

    def stop(self, *, grace: float | None = None) -> None:
        """Begin a graceful stop: set ``bot.stopping``, then cancel after ``stop_grace``.

        ``grace`` overrides ``stop_grace`` for this stop; ``stop(grace=0)`` is stop-now:
        every bot is cancelled at once (a later, shorter grace also cuts a stop short).
        The run's result is marked ``interrupted`` (exit 0 in the CLI, not an abort).
        It may be called from any thread; calling it again with no shorter grace does
        nothing.

        Example:
            >>> import trio, trio_bots
            >>> async def idle(bot):
            ...     await trio.sleep_forever()
            >>> async def main():
            ...     async with trio_bots.open_swarm(idle, 3, stop_grace=30) as swarm:
            ...         swarm.stop(grace=0)
            ...     return swarm.result.interrupted, swarm.result.duration
            >>> trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
            (True, 0.0)
        """
        if grace is not None and (
            isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0
        ):
            raise ConfigError(f"stop(grace=) takes seconds >= 0, got {grace!r}")
        self._in_loop(self._stop, grace)

    def _stop(self, grace: float | None) -> None:
        self._interrupted = True
        self._begin_stop(grace)

    def stop_threadsafe(self) -> None:
        """`stop`, kept for callers written before `stop` itself was thread-safe.

        Example:
            >>> import threading, trio, trio_bots
            >>> async def idle(bot):
            ...     await bot.stopping.wait()
            >>> async def main():
            ...     async with trio_bots.open_swarm(idle, 2) as swarm:
            ...         await trio.sleep(0.1)
            ...         threading.Thread(target=swarm.stop_threadsafe).start()
            ...     return swarm.result.interrupted
            >>> trio.run(main)
            True
        """
        self.stop()

    def set_target(self, bots: int) -> None:
        """Steer a closed-model run to `bots` live bots, from now on; from any thread.

        New bots start at ``spawn_rate`` (or all at once); extra ones retire newest
        first, each with ``bot.stopping`` and ``stop_grace``, as stages do. The
        remaining stages (or ramp) are abandoned, so the run ends at ``duration`` or
        `stop`, even with no bot left; bots that end on their own are not replaced.
        Once the run is stopping it does nothing.

        Raises:
            ConfigError: in the open model (use `set_rate`), with the seed's fixed
                awaitables, for a count that is not an int >= 0, or when the bots'
                sockets would pass the open-file hard limit.

        Example:
            >>> import trio, trio_bots
            >>> async def idle(bot):
            ...     await bot.stopping.wait()
            >>> async def main():
            ...     async with trio_bots.open_swarm(idle, 2, duration=10) as swarm:
            ...         await trio.sleep(1)
            ...         swarm.set_target(5)
            ...         await trio.sleep(1)
            ...         return swarm.statistics(metrics=False).bots_running
            >>> trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
            5
        """
        if isinstance(bots, bool) or not isinstance(bots, int) or bots < 0:
            raise ConfigError(f"set_target() takes a bot count, an int >= 0; got {bots!r}")
        if not isinstance(self._load, ClosedModel):
            raise ConfigError(
                "set_target() steers the closed model (bots that loop), but this run is the "
                "open model (rate=): call set_rate(arrivals_per_second) instead"
            )
        self._in_loop(self._load.set_target, bots)

    def set_rate(self, rate: float, *, at: float | None = None) -> None:
        """Steer an open-model run to `rate` arrivals per second, from now on; from any
        thread. 0 pauses the arrivals.

        ``at`` is the second of the run (since its start) the change counts from, now
        by default: the scale-out driver gives every shard the same one.

        The rate stages are abandoned, so the run ends at ``duration`` or `stop`. The
        arrival schedule stays exact from the change on: the k-th arrival after it is
        due k / rate seconds after it, whatever the loop's lateness.

        Raises:
            ConfigError: in the closed model (use `set_target`), or for a rate that is
                not a number >= 0.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     async for it in bot.iterations():
            ...         pass
            >>> async def main():
            ...     async with trio_bots.open_swarm(worker, 1, rate=10, duration=3) as swarm:
            ...         await trio.sleep(1.05)  # arrivals at 0, 0.1, ..., 1.0
            ...         swarm.set_rate(0)
            ...     return swarm.statistics(metrics=False).arrivals
            >>> trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
            11
        """
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not 0 <= rate < float("inf")
        ):
            raise ConfigError(f"set_rate() takes arrivals per second, a number >= 0; got {rate!r}")
        if not isinstance(self._load, OpenModel):
            raise ConfigError(
                "set_rate() steers the open model (rate=), but this run is the closed model: "
                "call set_target(bots) instead, or start the run with rate="
            )
        at_time = None if at is None else self._runtime.start_time + at
        self._in_loop(functools.partial(self._load.set_rate, rate, at=at_time))

    def _in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn(*args)`` in the swarm's event loop, from its thread or another."""
        if self.result is not None:
            return  # the swarm is over
        self._loop.call(fn, *args)

    def on_tick(self, fn: Callable[[Tick], None]) -> Callable[[], None]:
        """Call ``fn(tick)`` in the loop once per second of the run, with what that
        second added (a `Tick`); returns a function that removes the hook.

        Each second comes exactly once and in order, however late the loop is;
        the last, partial second comes with ``tick.final`` set.

        Example:
            >>> import trio, trio_bots
            >>> async def worker(bot):
            ...     async with bot.measure("work"):
            ...         await trio.sleep(1.5)
            >>> async def main():
            ...     counts = []
            ...     async with trio_bots.open_swarm(worker, 2) as swarm:
            ...         swarm.on_tick(lambda t: counts.append((t.second, t.bucket["count"])))
            ...     return counts
            >>> trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
            [(0, 0), (1, 2)]
        """
        return self._runtime.on_tick(fn)

    # -- bots

    def _spawn(self) -> BotState:
        """Start one more bot now; ids are given in start order."""
        runtime = self._runtime
        state = runtime.new_bot()
        tracer = runtime.tracer
        trace = None if tracer is None else tracer.for_bot(state.id)
        if trace is None:
            bot = Bot(self, state, runtime, self._messaging)
        else:
            bot = TracedBot(self, state, runtime, self._messaging, trace)
        self._messaging.add(state)
        # One shared name: trio would build a string per task (~60 bytes a bot).
        self._task_group.start_soon(
            self._run_bot, bot, state, self._pick_worker(state.id), name=_BOT_TASK_NAME
        )
        return state

    async def _run_bot(self, bot: Bot, state: BotState, worker: Worker) -> None:
        # One coroutine per bot, with the worker's awaitable awaited right here: every idle
        # bot keeps this frame for its whole life, so no helper coroutine sits in between.
        enter_bot_task(bot)
        runtime = self._runtime
        runtime.bot_began(state)
        try:
            try:
                if runtime.per_bot_stops:
                    with self._backend.cancel_scope() as state.scope:
                        awaitable = worker(bot)
                        if not hasattr(awaitable, "__await__"):
                            raise _not_awaitable(worker, awaitable)
                        await awaitable
                else:
                    awaitable = worker(bot)
                    if not hasattr(awaitable, "__await__"):
                        raise _not_awaitable(worker, awaitable)
                    await awaitable
            except* Exception as group:
                exc = group.exceptions[0] if len(group.exceptions) == 1 else group
                self._bot_failed(bot, exc)
        except BaseException as exc:
            # A KeyboardInterrupt, SystemExit, GeneratorExit or other BaseException (not a
            # cancellation): cancel the swarm, and raise it from swarm() once every bot has
            # closed what it owns. asyncio would otherwise let KeyboardInterrupt and
            # SystemExit skip the other bots' cleanup.
            if isinstance(exc, anyio.get_cancelled_exc_class()) or isinstance(
                exc, BaseExceptionGroup
            ):
                raise
            if self._escaped is None:
                self._escaped = exc
            self._task_group.cancel_scope.cancel()
        finally:
            await bot.close_owned()
            self._bot_ended(state)

    def _bot_failed(self, bot: Bot, exc: BaseException) -> None:
        self._bot_failures.append(BotFailure(bot.id, exc))
        if self._runtime.tracer is not None:
            self._runtime.tracer.bot_failed(bot.id, exc)
        bot.log.debug("failed: %s: %s", type(exc).__name__, exc)
        link = self._runtime.shard.link
        if link is not None:
            link.bot_failed(bot.id, exc)
        if self._max_failures is not None and len(self._bot_failures) > self._max_failures:
            if not self._aborted:
                self._aborted = True
                self._task_group.cancel_scope.cancel()

    def _bot_ended(self, state: BotState) -> None:
        self._messaging.remove(state)
        self._runtime.bot_ended(state)
        self._load.bot_ended(state)
        self._check_done()

    def _check_done(self) -> None:
        if self._runtime.bots_running == 0 and not self._feeding:
            self._done.set()

    # -- stopping

    def _begin_stop(self, grace: float | None = None) -> None:
        runtime = self._runtime
        if self._task_group is None or self.result is not None:
            return
        grace = self.options["stop_grace"] if grace is None else grace
        if runtime.stopping.is_set():
            if grace < self._grace_left():
                self._cut_at = runtime.clock() + grace  # a shorter grace cuts the stop short
                self._start_grace(grace)
            return
        runtime.stopping.set()
        self._cut_at = runtime.clock() + grace
        self._load.stopping()
        self._start_grace(grace)

    def _grace_left(self) -> float:
        return self._cut_at - self._runtime.clock()

    def _start_grace(self, grace: float) -> None:
        if grace <= 0:
            self._task_group.cancel_scope.cancel()
        else:
            self._task_group.start_soon(self._cancel_after_grace, grace, name="trio_bots grace")

    async def _cancel_after_grace(self, grace: float) -> None:
        await anyio.sleep(grace)
        self._task_group.cancel_scope.cancel()

    async def _stop_after_duration(self, duration: float) -> None:
        await anyio.sleep_until(self._runtime.start_time + duration)
        self._begin_stop()

    async def _cancel_at(self, seconds: float) -> None:
        """The seed's ``timeout=``: cancel whatever still runs, with no grace and no error."""
        await anyio.sleep_until(self._runtime.start_time + seconds)
        self._timed_out = True
        self._bots_cancelled = self._runtime.bots_running
        self._task_group.cancel_scope.cancel()

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

    def _begin(self, task_group: Any, cancel_after: float | None) -> None:
        self._task_group = task_group
        self._loop.bind()
        task_group.start_soon(self._runtime.run_ticker, name="trio_bots ticker")
        if self.options["handle_sigint"]:
            task_group.start_soon(self._handle_signals, name="trio_bots signals")
        if self.options["duration"] is not None:
            task_group.start_soon(
                self._stop_after_duration, self.options["duration"], name="trio_bots duration"
            )
        if cancel_after is not None:
            task_group.start_soon(self._cancel_at, cancel_after, name="trio_bots timeout")
        load = self._load
        if isinstance(load, ClosedModel) and load.at_once:
            load.spawn_all()
            self._no_more_bots()
        else:
            task_group.start_soon(load.run, name="trio_bots load")

    def _no_more_bots(self) -> None:
        self._feeding = False
        self._check_done()

    def _more_bots(self) -> None:
        self._feeding = True

    def _finish(self) -> SwarmResult:
        runtime = self._runtime
        runtime.final_tick()
        now = runtime.clock()
        snapshot = runtime.snapshot()
        self.result = SwarmResult(
            stats=stats_from_snapshot(snapshot),
            failures=failures_from_snapshot(snapshot),
            timeline=timeline_from_snapshot(snapshot),
            bot_failures=list(self._bot_failures),
            bots_started=runtime.bots_started,
            bots_finished=runtime.bots_finished,
            dropped_messages=self._messaging.dropped_messages,
            cross_shard_skipped=runtime.cross_shard_skipped,
            dropped_arrivals=runtime.dropped_arrivals,
            duration=now - runtime.start_time,
            interrupted=self._interrupted,
            aborted=self._aborted,
            size=self.size,
            started_wall=runtime.started_wall,
            options=self.options,
            metrics=snapshot,
            signal=self._signal,
            timed_out=self._timed_out,
            bots_cancelled=self._bots_cancelled,
            warnings=list(runtime.warnings),
        )
        if self._monitor is not None:
            self._monitor.finish(self.result)
        return self.result


class _Control:
    """The `SwarmControl` that the swarm gives its runtime: what the load driver and the
    messaging registry may ask of it."""

    __slots__ = ("_swarm",)

    def __init__(self, swarm: Swarm) -> None:
        self._swarm = swarm

    def spawn(self) -> BotState:
        return self._swarm._spawn()

    def begin_stop(self) -> None:
        self._swarm._begin_stop()

    def no_more_bots(self) -> None:
        self._swarm._no_more_bots()

    def more_bots(self) -> None:
        self._swarm._more_bots()

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str) -> None:
        self._swarm._task_group.start_soon(fn, *args, name=name)


def _not_awaitable(worker: Any, returned: Any) -> TypeError:
    name = getattr(worker, "__qualname__", None) or repr(worker)
    return TypeError(
        f"the worker {name} returned {returned!r}, not an awaitable; "
        f"write it as `async def worker(bot): ...`"
    )


def check_worker(fn: Any) -> None:
    """Refuse a plain ``def`` worker before any bot starts: it would run its side effects in
    every bot, and only then fail on the ``await``. Lambdas and other callables that return
    an awaitable stay allowed; `_call_worker` checks what they return."""
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target)) and not isinstance(
        target, type
    ):
        call = type(target).__dict__.get("__call__")
        if inspect.isfunction(call):
            target = call
    target = inspect.unwrap(getattr(target, "__func__", target))
    if not inspect.isfunction(target) or target.__name__ == "<lambda>":
        return
    if inspect.iscoroutinefunction(target):
        return
    kind = "an async generator" if inspect.isasyncgenfunction(target) else "a plain `def`"
    raise ConfigError(
        f"the worker {target.__qualname__} is {kind} function; a worker must be a coroutine "
        f"function: write `async def {target.__name__}(bot): ...`"
    )


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


def awaitables_from_factory(factory: Any, worker: Any, size: int) -> list[Any]:
    """The seed's ``factory(worker, size=N)``: an iterable of awaitables, one per bot."""
    awaitables = list(factory(worker, size=size))
    for index, awaitable in enumerate(awaitables):
        if not inspect.isawaitable(awaitable):
            close_unstarted(awaitables)
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


def close_unstarted(awaitables: list[Any]) -> None:
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
    if len(leaves) == 1:
        return leaves[0]
    # Several bots raised a KeyboardInterrupt, SystemExit, ... at once: the first of them
    # leaves swarm() as itself, never inside a group.
    return next((leaf for leaf in leaves if not isinstance(leaf, Exception)), group)


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
        ConfigError: on an unknown option or bad value, or a plain ``def`` worker,
            before any bot starts.
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
    _refuse_scale_out(validated)
    awaitables: list[Any] = []
    if validated["factory"] is not None:
        awaitables = awaitables_from_factory(validated["factory"], worker, size)
        worker, size = _await_own_awaitable(awaitables), len(awaitables)
    async with _open(worker, size, validated, awaitables, cancel_after=None) as running:
        yield running


def _refuse_scale_out(options: Mapping[str, Any]) -> None:
    for name in ("processes", "ray"):
        if options[name] is not None:
            raise ConfigError(
                f"{name}= runs the swarm over several processes, which the engine's own "
                f"open_swarm does not do: call trio_bots.swarm or trio_bots.open_swarm"
            )


@asynccontextmanager
async def open_shard(worker: Any, shard: Shard, **options: Any) -> AsyncIterator[Swarm]:
    """Run one shard of a larger run: `open_swarm` for the bots `shard` says are its own.

    The options are the whole run's (``max_bots`` and stage targets over every shard);
    the shard takes its share of each, and of the arrivals, and gives its bots global
    ids. With a seed ``factory``, it calls the factory for the whole run and closes the
    awaitables that are not its own. With ``shard.start_wall`` it starts at that instant.
    ``trio_bots.distributed`` runs one per process.

    Example:
        >>> import trio
        >>> ids = []
        >>> async def worker(bot):
        ...     ids.append(bot.id)
        >>> async def second_of_two():
        ...     async with open_shard(worker, Shard(index=1, count=2, size=5)) as running:
        ...         pass
        ...     return running.result.bots_started
        >>> trio.run(second_of_two), sorted(ids)
        (2, [3, 4])
    """
    validated = validate_options(shard.size, options)
    _refuse_scale_out(validated)
    first, local = shard.first_bot, shard.local_size
    awaitables: list[Any] = []
    if validated["factory"] is not None:
        awaitables = awaitables_from_factory(validated["factory"], worker, shard.size)
        if len(awaitables) != shard.size:
            close_unstarted(awaitables)
            raise ConfigError(
                f"in a run over several processes, factory(worker, size={shard.size}) must give "
                f"exactly {shard.size} awaitables (one per bot), but it gave {len(awaitables)}"
            )
        others = awaitables[:first] + awaitables[first + local :]
        close_unstarted(others)  # another shard runs these
        for index in (*range(first), *range(first + local, shard.size)):
            awaitables[index] = None
        worker = _await_own_awaitable(awaitables)
    async with _open(
        worker, local, validated, awaitables, cancel_after=None, shard=shard
    ) as running:
        yield running


async def run_awaitables(
    awaitables: list[Any], *, cancel_after: float | None, options: Mapping[str, Any]
) -> SwarmResult:
    """Run one bot per awaitable (the seed's ``run_tasks``): after `cancel_after` seconds,
    cancel every bot still running, with no grace and no error (``result.timed_out``).

    Awaitables that never started are closed, so no "never awaited" warning appears.
    """
    try:
        if cancel_after is not None and (
            isinstance(cancel_after, bool)
            or not isinstance(cancel_after, int | float)
            or not cancel_after > 0
        ):
            raise ConfigError(f"timeout must be a number of seconds > 0, got {cancel_after!r}")
        validated = validate_options(len(awaitables), options)
        if validated["factory"] is not None:
            raise ConfigError("run_tasks() takes the awaitables themselves: give no factory=")
    except BaseException:
        close_unstarted(awaitables)
        raise
    worker = _await_own_awaitable(awaitables)
    size = len(awaitables)
    async with _open(worker, size, validated, awaitables, cancel_after=cancel_after) as running:
        pass
    assert running.result is not None
    return running.result


@asynccontextmanager
async def _open(
    worker: Any,
    size: int,
    options: dict[str, Any],
    awaitables: list[Any],
    *,
    cancel_after: float | None,
    shard: Shard = WHOLE_RUN,
) -> AsyncIterator[Swarm]:
    runtime: Runtime | None = None
    try:
        if options["handle_sigint"] and threading.current_thread() is not threading.main_thread():
            raise ConfigError(
                "handle_sigint=True needs the main thread (Python delivers signals there), but "
                f"this swarm runs in thread {threading.current_thread().name!r}; run the event "
                "loop on the main thread, or leave handle_sigint=False"
            )
        backend = current_backend()
        check_backend(options, backend.name)
        preflight_fds(size, options)
        seed, network = options["seed"], options["network"]
        if network is not None:
            network.reseed(seed)
        if shard.start_wall is not None:
            # every shard starts at the same instant: timeline second t is the same second
            await anyio.sleep(max(0.0, shard.start_wall - time.time()))
        runtime = Runtime(options, backend, size=size, shard=shard)
        runtime.tracer = tracer_for_run(options, runtime)  # opens no file: before the data
        runtime.data = feeder_for_run(size, options, shard=shard.index, shards=shard.count)
        swarm = Swarm(worker, runtime, fixed_bots=bool(awaitables))
    except BaseException:
        close_unstarted(awaitables)
        if runtime is not None and runtime.data is not None:
            runtime.data.close()
        raise
    error: BaseException | None = None
    # A seeded swarm on trio replays the same order of tasks (see `scheduler`).
    replay = seeded_scheduler(seed) if seed is not None and backend.is_trio else nullcontext()
    try:
        with replay:
            async with swarm._backend.open_task_group() as task_group:
                swarm._begin(task_group, cancel_after)
                yield swarm
                await swarm._done.wait()
                task_group.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        error = _unwrap(group)
        if error is group:
            raise
    finally:
        result = swarm._finish()
        close_unstarted(awaitables)
        if runtime.data is not None:
            runtime.data.close()
        if runtime.tracer is not None:
            runtime.tracer.close()
    if error is not None:
        raise error  # outside the except block, so its own __context__ is kept
    if swarm._escaped is not None:
        raise swarm._escaped
    if swarm._aborted and result.bot_failures:
        raise _abort_error(swarm, result)
