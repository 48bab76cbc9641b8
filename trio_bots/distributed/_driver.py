"""The driver of a sharded run: the shards' merged view, whatever carries their messages.

`ShardedSwarm` is the live, merged view of a run over K shards (``statistics()``,
``on_tick``, ``stop()``, and ``result`` at the end); `drive` runs it over any
`ShardChannel`: a child process's socket (`trio_bots.distributed._local`) or a
Ray actor (`trio_bots.distributed._ray`). Both share everything here: the
merging of per-second deltas, the global barriers, the split-group watch,
lost shards, signals and the final result.

The driver alone handles signals: the first stops every shard gracefully; a
second cancels them all and kills any that is still silent 2 s later. A shard
is lost when its channel ends before its result (killed, or an actor that
died), or when it sends no snapshot for `HEARTBEAT` seconds.

Example:
    >>> round(HEARTBEAT), round(KILL_AFTER)
    (5, 2)
"""

from __future__ import annotations

import functools
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio

from .._core.backend import LoopCaller
from .._core.monitor import Monitor
from .._core.options import preflight_fds
from .._core.result import BotFailure, SwarmResult, SwarmStatistics
from .._core.runtime import Tick
from .._core.shard import Shard
from .._errors import ConfigError, SwarmAborted
from ..metrics import (
    Recorder,
    failures_from_snapshot,
    merge,
    stats_from_snapshot,
    timeline_from_snapshot,
)
from ..metrics._recorder import merge_raw

#: Seconds without a snapshot after which a shard counts as lost (it ticks every second).
HEARTBEAT = 5.0
#: Seconds a shard gets, after a second signal or at the end, before it is SIGKILLed.
KILL_AFTER = 2.0
#: Seconds a shard process may take to import its worker and report ready.
READY_TIMEOUT = 30.0

#: The options that the driver handles itself, and the shards never see.
DRIVER_ONLY = (
    "processes",
    "ray",
    "shard_align",
    "strict_groups",
    "handle_sigint",
    "factory",
    # judged and written on the merged seconds, by the driver's own monitor
    "thresholds",
    "abort_on_fail",
    "abort_delay",
    "hdr_log",
)


class ShardChannel(Protocol):
    """How the driver talks to one shard: what a transport (processes, Ray) provides.

    Attributes:
        pid: the shard's process id, for messages and ``shards[k].pid``.
    """

    pid: int

    async def send(self, message: Any) -> None:
        """Send a message to the shard; silently nothing if it is gone."""

    async def receive(self) -> Any:
        """The shard's next message, or None once it has ended (or died)."""

    async def ended(self) -> str:
        """After `receive` gave None without a result: why the shard was lost."""

    def kill(self) -> None:
        """End the shard at once (a heartbeat loss, or a second signal)."""

    async def aclose(self, *, graceful: bool) -> None:
        """Release the shard: with `graceful`, it gets `KILL_AFTER` to exit on its own."""


def _empty() -> dict[str, Any]:
    return Recorder(0.0).snapshot(0.0, bots_running=0, active_seconds=0.0)


def _merge_all(snapshots: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return functools.reduce(merge, snapshots, _empty())


class _ShardState:
    """What the driver knows of one shard."""

    def __init__(self, shard: Shard, channel: ShardChannel) -> None:
        self.index = shard.index
        self.first_bot = shard.first_bot
        self.local_size = shard.local_size
        self.channel = channel
        self.pid: int = channel.pid
        self.ready = False
        self.buckets: dict[int, Mapping[str, Any]] = {}
        #: the open model's raw histograms of the seconds not merged yet, by name
        self.raw: dict[int, list[Mapping[str, str]]] = {}
        self.failures: list[dict[str, Any]] = []
        self.counters: dict[str, Any] = {}
        #: the shard's custom counters and gauges (``bot.count``, ``bot.gauge``) so far
        self.custom_counters: dict[str, Any] = {}
        self.custom_gauges: dict[str, Any] = {}
        self.summary: dict[str, Any] | None = None
        self.error: str | None = None
        self.lost: str | None = None
        self.finished = anyio.Event()
        #: the requests and failures of the seconds it sent, kept as they come
        self.requests = 0
        self.failure_count = 0

    def add_second(self, second: int, bucket: Mapping[str, Any]) -> None:
        """Keep one second's bucket (a final tick may send a second again, whole)."""
        old = self.buckets.get(second)
        if old is not None:
            self.requests -= old["count"] + old["failures"]
            self.failure_count -= old["failures"]
        self.buckets[second] = bucket
        self.requests += bucket["count"] + bucket["failures"]
        self.failure_count += bucket["failures"]

    def row(self) -> dict[str, Any]:
        """What the live views show of it (see `trio_bots.SwarmStatistics.shards`)."""
        if self.lost is not None:
            state = "lost"
        elif self.error is not None:
            state = "error"
        elif self.summary is not None or self.finished.is_set():
            state = "done"
        else:
            state = "running" if self.ready else "starting"
        running = 0 if state in ("lost", "done", "error") else self.count("bots_running")
        return {
            "index": self.index,
            "pid": self.pid,
            "first_bot": self.first_bot if self.local_size else None,
            "last_bot": self.first_bot + self.local_size - 1 if self.local_size else None,
            "state": state,
            "bots_running": running,
            "bots_started": self.count("bots_started"),
            "requests": self.requests,
            "failure_count": self.failure_count,
            "cpu_seconds": round(float(self.counters.get("cpu_seconds", 0.0)), 3),
            "lost": self.lost,
        }

    def snapshot(self) -> dict[str, Any]:
        """Its final snapshot, or one rebuilt from the delta buckets it sent."""
        if self.summary is not None:
            return self.summary["metrics"]  # type: ignore[no-any-return]
        parts = []
        for bucket in self.buckets.values():
            names = {
                name: {
                    "kind": entry.get("kind", "request"),
                    "count": entry["count"],
                    "failure_count": entry["failures"],
                    "hist": entry["hist"],
                    "raw_hist": None,
                    "bytes_sent": 0,
                    "bytes_received": 0,
                    "min": entry["min"],
                    "max": entry["max"],
                }
                for name, entry in bucket["names"].items()
            }
            parts.append({**_empty(), "names": names, "timeline": [bucket]})
        elapsed = float(self.counters.get("elapsed", 0.0))
        parts.append(
            {
                **_empty(),
                "failures": list(self.failures),
                "now": elapsed,
                "active_seconds": elapsed,
                "bots_running": 0 if self.lost else self.counters.get("bots_running", 0),
            }
        )
        return _merge_all(parts)

    def count(self, name: str) -> int:
        if self.summary is not None and name in self.summary:
            return int(self.summary[name])
        return int(self.counters.get(name, 0))


class ShardedSwarm:
    """A run over several shard processes, as one swarm: `open_swarm` gives one when
    ``processes=`` is set.

    Attributes:
        size: the bots started up front, over every shard.
        host: the ``host`` option, or None.
        options: the run's options.
        result: the merged `SwarmResult`, once the run has ended.

    Example:
        >>> ShardedSwarm(10, {"host": None, "duration": 1}).size
        10
    """

    def __init__(self, size: int, options: Mapping[str, Any]) -> None:
        self.size = size
        self.options = options
        self.host: str | None = options.get("host")
        self.result: SwarmResult | None = None
        self.shards: list[_ShardState] = []
        self.start_wall = time.time()
        self._hooks: list[Callable[[Tick], None]] = []
        self._emitted = -1
        self._stopping = False
        self._interrupted = False
        self._signal: int | None = None
        self._waiting: dict[Hashable, set[int]] = {}
        self._groups: dict[Hashable, set[int]] = {}
        self.split_groups: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.failed: list[tuple[int, int, str, str]] = []  # (shard, bot id, type, text)
        self.abort: str | None = None
        self.abort_cause: BaseException | None = None
        self.error: str | None = None
        self.task_group: Any = None  # the driver's, set by `drive`
        self._loop = LoopCaller()  # the driver loop, bound by `drive`: calls from other threads
        self._monitor: Monitor | None = None

    def watch(self) -> None:
        """Follow the merged seconds with a `Monitor` (``thresholds=``, ``hdr_log=``), once
        ``start_wall`` is known. Raises `ConfigError` when the HDR log cannot be written."""
        if Monitor.wanted(self.options):
            self._monitor = Monitor(
                self.options,
                size=self.size,
                started_wall=self.start_wall,
                statistics=functools.partial(self.statistics, metrics=False),
                begin_stop=self._stop_all,
            )
            self.on_tick(self._monitor.tick)

    # -- the swarm's face

    def statistics(self, *, metrics: bool = True) -> SwarmStatistics:
        """The merged figures so far (see `trio_bots.Swarm.statistics`)."""
        shards = self.shards

        def total(name: str) -> int:
            return sum(int(s.counters.get(name, 0)) for s in shards)

        return SwarmStatistics(
            elapsed=max(0.0, time.time() - self.start_wall),
            duration=self.options.get("duration"),
            bots_running=sum(int(s.counters.get("bots_running", 0)) for s in shards if not s.lost),
            bots_target=total("bots_target"),
            bots_started=total("bots_started"),
            bots_finished=total("bots_finished"),
            dropped_messages=total("dropped_messages"),
            dropped_arrivals=total("dropped_arrivals"),
            stopping=self._stopping,
            metrics=self.snapshot() if metrics else {},
            arrivals=total("arrivals"),
            thresholds=() if self._monitor is None else self._monitor.states(),
            shards=tuple(s.row() for s in shards),
        )

    def group_sizes(self) -> dict[Hashable, int]:
        """Each group's live members over every shard, as of each shard's last second
        (see `trio_bots.Swarm.group_sizes`); a lost shard's bots are not counted.

        Example:
            >>> ShardedSwarm(4, {"host": None}).group_sizes()
            {}
        """
        sizes: dict[Hashable, int] = {}
        for state in self.shards:
            if state.lost is not None or state.summary is not None:
                continue
            for group, members in state.counters.get("groups", {}).items():
                sizes[group] = sizes.get(group, 0) + members
        return sizes

    def snapshot(self) -> dict[str, Any]:
        """Every shard's metrics, merged."""
        return _merge_all([s.snapshot() for s in self.shards])

    def stop(self, *, grace: float | None = None) -> None:
        """Begin a graceful stop of every shard (``grace=0``: stop now); the result is
        marked interrupted. From any thread (see `trio_bots.Swarm.stop`)."""
        if grace is not None and (
            isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0
        ):
            raise ConfigError(f"stop(grace=) takes seconds >= 0, got {grace!r}")
        self._in_loop(self._stop, grace)

    def stop_threadsafe(self) -> None:
        """`stop`, kept for callers written before `stop` was thread-safe."""
        self.stop()

    def _stop(self, grace: float | None) -> None:
        self._interrupted = True
        if grace is not None:
            self._stopping = True
            for state in self.shards:
                self._send_soon(state, ("stop", grace))
        self._stop_all()

    def set_target(self, bots: int) -> None:
        """Steer every shard's closed model to its share of `bots` (see
        `trio_bots.Swarm.set_target`); from any thread."""
        if isinstance(bots, bool) or not isinstance(bots, int) or bots < 0:
            raise ConfigError(f"set_target() takes a bot count, an int >= 0; got {bots!r}")
        if self.options.get("rate") is not None:
            raise ConfigError(
                "set_target() steers the closed model (bots that loop), but this run is the "
                "open model (rate=): call set_rate(arrivals_per_second) instead"
            )
        count = max(len(self.shards), 1)
        preflight_fds(-(-bots // count), {**self.options, "stages": None, "max_bots": None})
        self._in_loop(self._send_all, ("target", bots))

    def set_rate(self, rate: float) -> None:
        """Steer every shard's open model to `rate` arrivals/s in all (see
        `trio_bots.Swarm.set_rate`), from the same instant of the run; from any thread."""
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1e300:
            raise ConfigError(f"set_rate() takes arrivals per second, a number >= 0; got {rate!r}")
        if self.options.get("rate") is None:
            raise ConfigError(
                "set_rate() steers the open model (rate=), but this run is the closed model: "
                "call set_target(bots) instead, or start the run with rate="
            )
        at = max(0.0, time.time() - self.start_wall)  # the same instant for every shard
        self._in_loop(self._send_all, ("rate", float(rate), at))

    def _send_all(self, message: Any) -> None:
        if self._stopping or self.task_group is None:
            return
        for state in self.shards:
            self._send_soon(state, message)

    def _in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        self._loop.call(fn, *args)

    def on_tick(self, fn: Callable[[Tick], None]) -> Callable[[], None]:
        """Call ``fn(tick)`` once per second of the run, with the merged second."""
        self._hooks.append(fn)

        def remove() -> None:
            if fn in self._hooks:
                self._hooks.remove(fn)

        return remove

    # -- talking to the shards

    def _send_soon(self, state: _ShardState, message: Any) -> None:
        if state.finished.is_set():
            return
        self.task_group.start_soon(self._send, state, message)

    async def _send(self, state: _ShardState, message: Any) -> None:
        await state.channel.send(message)  # if it is gone, its reader notices

    def _stop_all(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for state in self.shards:
            self._send_soon(state, ("stop",))

    def _cancel_all(self) -> None:
        self._stopping = True
        for state in self.shards:
            if not state.finished.is_set():
                self._send_soon(state, ("cancel",))

    # -- what the shards say

    def _handle(self, state: _ShardState, message: Any) -> None:
        kind = message[0]
        if kind == "tick":
            _, second, bucket, _final, counters, custom_counters, custom_gauges, raw = message
            state.add_second(second, bucket)
            if raw:
                state.raw.setdefault(second, []).append(raw)  # a second sent again: its rest
            state.counters = counters
            state.custom_counters, state.custom_gauges = custom_counters, custom_gauges
            self._emit()
        elif kind == "ready":
            state.ready = True
        elif kind == "failures":
            state.failures = message[1]
        elif kind == "barrier":
            self._waiting.setdefault(message[1], set()).add(state.index)
            self._check_barriers()
        elif kind == "group":
            self._group(message[1], state.index)
        elif kind == "failed":
            self._bot_failed(state.index, *message[1:])
        elif kind == "done":
            state.summary = message[1]
            if state.summary["aborted"] and self.abort is None:
                self.abort = f"shard {state.index}: {state.summary['abort_message']}"
                self._cancel_all()  # an abort cancels every bot
        elif kind == "error":
            state.error = message[1]
            if self.error is None:
                self.error = f"shard {state.index}: {message[1]}"
            self._cancel_all()

    def _bot_failed(self, index: int, bot_id: int, type_name: str, text: str) -> None:
        """``max_failures`` over every shard: the first failure past it aborts the run."""
        self.failed.append((index, bot_id, type_name, text))
        limit = self.options.get("max_failures")
        if limit is None or len(self.failed) <= limit or self.abort is not None:
            return
        first_index, first_id, first_type, first_text = self.failed[0]
        message = f"shard {first_index}: bot {first_id} failed: {first_type}: {first_text}"
        if len(self.failed) > 1:
            message += f" (and {len(self.failed) - 1} more bot failures)"
        self.abort = message + f"; max_failures={limit} was exceeded, so the swarm was aborted"
        self._cancel_all()  # an abort cancels every bot

    def _group(self, group: Hashable, index: int) -> None:
        shards = self._groups.setdefault(group, set())
        shards.add(index)
        if len(shards) < 2:
            return
        listed = sorted(shards)
        for split in self.split_groups:
            if split["group"] == group:
                split["shards"] = listed
                return
        self.split_groups.append({"group": group, "shards": listed})
        message = (
            f"group {group!r} spans shards {', '.join(map(str, listed))}: messages and "
            f"barriers of a group stay inside each shard; give shard_align= (e.g. the group "
            f"size) so that each group falls in one shard"
        )
        if self.options.get("strict_groups"):
            if self.abort is None:
                self.abort = message + " (strict_groups=True)"
                self._cancel_all()
        else:
            from .._core.runtime import logger

            logger.warning("%s", message)
            self.warnings.append(message)

    def _check_barriers(self) -> None:
        over = {s.index for s in self.shards if s.finished.is_set() or s.summary is not None}
        everyone = {s.index for s in self.shards}
        for name, arrived in list(self._waiting.items()):
            if arrived | over >= everyone:
                del self._waiting[name]
                for state in self.shards:
                    if state.index in arrived:
                        self._send_soon(state, ("release", name))

    def _emit(self, *, final: bool = False) -> None:
        shards = self.shards
        active = [s for s in shards if not s.finished.is_set() and s.summary is None]
        while True:
            second = self._emitted + 1
            present = [s.buckets[second] for s in shards if second in s.buckets]
            if not present:
                return
            if not final and any(max(s.buckets, default=-1) < second for s in active):
                return
            last = final and not any(second + 1 in s.buckets for s in shards)
            if self._hooks:
                bucket = _merge_all(
                    [
                        {
                            **_empty(),
                            "timeline": [s.buckets[second]],
                            "counters": s.custom_counters,
                            "gauges": s.custom_gauges,
                        }
                        for s in shards
                        if second in s.buckets
                    ]
                )
                raw, raw_percentiles = merge_raw(
                    [part for s in shards for part in s.raw.get(second, ())]
                )
                tick = Tick(
                    second,
                    bucket["timeline"][0],
                    sum(int(s.counters.get("bots_running", 0)) for s in active),
                    last,
                    active_seconds=max(0.0, time.time() - self.start_wall),
                    counters=bucket["counters"],
                    gauges=bucket["gauges"],
                    raw=raw,
                    raw_percentiles=raw_percentiles,
                )
                for hook in list(self._hooks):
                    hook(tick)
            for s in shards:
                s.raw.pop(second, None)
            self._emitted = second

    # -- the shards' lives

    async def _read(self, state: _ShardState) -> None:
        try:
            while True:
                wait = HEARTBEAT if state.ready else READY_TIMEOUT
                with anyio.move_on_after(wait) as scope:
                    message = await state.channel.receive()
                if scope.cancelled_caught:
                    self._lose(state, f"sent no snapshot for {wait:g} s (heartbeat); killed")
                    state.channel.kill()
                    return
                if message is None:
                    if state.summary is None and state.error is None:
                        self._lose(state, await state.channel.ended())
                    return
                self._handle(state, message)
        finally:
            state.finished.set()
            self._check_barriers()
            self._emit()

    def _lose(self, state: _ShardState, reason: str) -> None:
        if state.lost is not None:
            return
        state.lost = reason
        if self.abort is None:
            self.abort = f"shard {state.index} (pid {state.pid}) {reason}"
        self._stop_all()  # the others stop gracefully, and the reports are written

    async def _kill_silent_after(self, seconds: float) -> None:
        await anyio.sleep(seconds)
        for state in self.shards:
            if not state.finished.is_set():
                state.channel.kill()

    async def _handle_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self._signal is not None:
                    self._cancel_all()  # a second signal: stop now
                    self.task_group.start_soon(self._kill_silent_after, KILL_AFTER)
                    continue
                self._signal = int(signum)
                self.stop()

    # -- the end

    def _finish(self) -> SwarmResult:
        self._emit(final=True)
        snapshot = self.snapshot()
        failures: list[BotFailure] = []
        rows = []
        for state in self.shards:
            summary = state.summary or {}
            for bot_id, type_name, text, pickled in summary.get("bot_failures", []):
                failures.append(BotFailure(bot_id, _exception(type_name, text, pickled)))
            started = state.count("bots_started")
            shard_stats = stats_from_snapshot(state.snapshot()).total
            rows.append(
                {
                    "index": state.index,
                    "pid": state.pid,
                    "first_bot": state.first_bot if state.local_size else None,
                    "last_bot": state.first_bot + state.local_size - 1
                    if state.local_size
                    else None,
                    "count": started,
                    "requests": shard_stats.count + shard_stats.failure_count,
                    "failure_count": shard_stats.failure_count,
                    "cancelled": shard_stats.cancelled,
                    "cpu_seconds": round(
                        float(summary.get("cpu_seconds", state.counters.get("cpu_seconds", 0.0))),
                        3,
                    ),
                    "lost": state.lost,
                }
            )
        warnings = list(self.warnings)
        for state in self.shards:
            for text in (state.summary or {}).get("warnings", []):
                warnings.append(f"[shard {state.index}] {text}")
        durations = [s.summary["duration"] for s in self.shards if s.summary]
        self.result = SwarmResult(
            stats=stats_from_snapshot(snapshot),
            failures=failures_from_snapshot(snapshot),
            timeline=timeline_from_snapshot(snapshot),
            bot_failures=sorted(failures, key=lambda f: f.bot_id),
            bots_started=sum(s.count("bots_started") for s in self.shards),
            # a lost shard's bots count as ended (not as bot failures)
            bots_finished=sum(
                s.count("bots_started") if s.lost else s.count("bots_finished")
                for s in self.shards
            ),
            dropped_messages=sum(s.count("dropped_messages") for s in self.shards),
            dropped_arrivals=sum(s.count("dropped_arrivals") for s in self.shards),
            duration=max([*durations, time.time() - self.start_wall if not durations else 0.0]),
            interrupted=self._interrupted,
            aborted=self.abort is not None,
            size=self.size,
            started_wall=self.start_wall,
            options=self.options,
            metrics=snapshot,
            signal=self._signal,
            warnings=warnings,
            cross_shard_skipped=sum(s.count("cross_shard_skipped") for s in self.shards),
            shards=rows,
            split_groups=list(self.split_groups),
        )
        if self._monitor is not None:
            self._monitor.finish(self.result)
        return self.result


def _exception(type_name: str, text: str, pickled: bytes | None) -> BaseException:
    """A bot's exception from a shard: itself if it unpickles here, else one of its name."""
    import pickle

    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
            if isinstance(exc, BaseException):
                return exc
        except Exception:
            pass
    kind: type[Exception] = type(type_name, (Exception,), {"__module__": "trio_bots.shard"})
    return kind(text)



@asynccontextmanager
async def drive(
    run: ShardedSwarm, start: Callable[[ShardedSwarm], Awaitable[None]]
) -> AsyncIterator[ShardedSwarm]:
    """Run `run`: `start` appends its shards (a `_ShardState` each, via `add_shard`) inside the
    driver's task group; then the driver reads them, handles signals and yields the live view.

    At the end every channel is closed, the merged result is built, and a shard's
    `ConfigError`, abort or loss is raised (`SwarmAborted` carries the merged result).
    """
    ended = False  # every shard ended on its own: they get KILL_AFTER to exit
    try:
        async with anyio.create_task_group() as task_group:
            run.task_group = task_group
            run._loop.bind()
            await start(run)
            for state in run.shards:
                task_group.start_soon(run._read, state)
            signals = None
            if run.options["handle_sigint"] and (
                threading.current_thread() is threading.main_thread()
            ):
                signals = anyio.CancelScope()
                task_group.start_soon(_in_scope, signals, run._handle_signals)
            yield run
            for state in run.shards:
                await state.finished.wait()
            ended = True
            if signals is not None:
                signals.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            for state in run.shards:
                await state.channel.aclose(graceful=ended)
        result = run._finish()
    if run.error is not None:
        raise ConfigError(run.error)
    if run.abort is not None:
        error = SwarmAborted(run.abort, failures=list(result.bot_failures), result=result)
        if result.bot_failures:
            error.__cause__ = result.bot_failures[0].exception
        raise error


def add_shard(run: ShardedSwarm, shard: Shard, channel: ShardChannel) -> None:
    """Add a started shard to `run`, before `drive` begins reading them."""
    run.shards.append(_ShardState(shard, channel))


async def _in_scope(scope: anyio.CancelScope, fn: Callable[[], Any]) -> None:
    with scope:
        await fn()
