"""The swarm engine: lifecycle, worker mapping, options, failure policy and shutdown."""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import signal
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import trio
import trio.lowlevel
import trio.testing
from _leaks import live_task_names, open_fds

import trio_bots
from trio_bots import BotFailure, ConfigError, SwarmAborted


def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


# -- lifecycle ------------------------------------------------------------------------------


async def stepping_worker(seen: list[int], bot: trio_bots.Bot) -> None:
    with trio.fail_after(10):
        await bot.step()
        seen.append(bot.id)


def test_trio_run_runs_every_bot_with_ids_0_to_size() -> None:
    seen: list[int] = []
    worker = functools.partial(stepping_worker, seen)
    result = trio.run(trio_bots.swarm, worker, 100)
    assert sorted(seen) == list(range(100))
    assert result.bots_started == result.bots_finished == 100
    assert result.bot_failures == []
    assert not result.interrupted and not result.aborted
    assert result.size == 100


def test_anyio_run_on_asyncio_runs_every_bot() -> None:
    seen: list[int] = []

    async def worker(bot: trio_bots.Bot) -> None:
        with anyio.fail_after(10):
            await bot.step()
            seen.append(bot.id)

    result = anyio.run(trio_bots.swarm, worker, 100, backend="asyncio")
    assert sorted(seen) == list(range(100))
    assert result.bots_started == result.bots_finished == 100
    assert result.bot_failures == []


@pytest.mark.trio
async def test_bot_ids_are_unique_and_current_bot_is_the_bot() -> None:
    bots: dict[int, trio_bots.Bot] = {}

    async def worker(bot: trio_bots.Bot) -> None:
        assert trio_bots.current_bot() is bot
        assert bot.id not in bots
        bots[bot.id] = bot
        await trio.lowlevel.checkpoint()
        assert trio_bots.current_bot() is bot
        assert bot.swarm.size == 7

    with trio.fail_after(10):
        await trio_bots.swarm(worker, 7)
    assert sorted(bots) == list(range(7))
    assert len({id(b) for b in bots.values()}) == 7


def test_current_bot_outside_a_bot_raises() -> None:
    with pytest.raises(RuntimeError, match="outside a bot"):
        trio_bots.current_bot()


@pytest.mark.trio
async def test_weighted_worker_mapping_gives_3_to_1_counts() -> None:
    kinds: dict[int, str] = {}

    async def a(bot: trio_bots.Bot) -> None:
        kinds[bot.id] = "a"

    async def b(bot: trio_bots.Bot) -> None:
        kinds[bot.id] = "b"

    with trio.fail_after(10):
        result = await trio_bots.swarm({a: 3, b: 1}, 100)
    assert Counter(kinds.values()) == {"a": 75, "b": 25}
    assert result.bots_finished == 100
    # Smoothly interleaved, not 75 a's then 25 b's: every window of 4 bots holds one b.
    for start in range(0, 100, 4):
        assert [kinds[i] for i in range(start, start + 4)].count("b") == 1


@pytest.mark.trio
async def test_size_zero_runs_nothing_and_ends() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        raise AssertionError("no bot should run")

    with trio.fail_after(10):
        result = await trio_bots.swarm(worker, 0)
    assert result.bots_started == 0


# -- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"durration": 5}, "unknown swarm option 'durration'; did you mean 'duration'"),
        ({"max_failure": 1}, "did you mean 'max_failures'"),
        ({"max_failures": -1}, "max_failures must be >= 0"),
        ({"max_failures": 1.5}, "max_failures must be an integer"),
        ({"duration": 0}, "duration must be > 0"),
        ({"duration": "10s"}, "duration must be a number"),
        ({"stop_grace": -1}, "stop_grace must be >= 0"),
        ({"inbox_size": 0}, "inbox_size must be >= 1"),
        ({"on_full": "wait"}, "on_full must be one of 'block', 'drop', 'error'"),
        ({"fanout": "groups"}, "fanout must be one of"),
        ({"host": 8080}, "host must be a string"),
        ({"sockets_per_bot": -1}, "sockets_per_bot must be >= 0"),
        ({"request_timeout": 0}, "request_timeout must be > 0"),
        ({"factory": 3}, "factory must be callable"),
    ],
)
@pytest.mark.trio
async def test_bad_options_raise_config_error_before_any_bot(
    options: dict[str, Any], match: str
) -> None:
    started: list[int] = []

    async def worker(bot: trio_bots.Bot) -> None:
        started.append(bot.id)

    with trio.fail_after(10):
        with pytest.raises(ConfigError, match=match) as info:
            await trio_bots.swarm(worker, 3, **options)
    assert started == []
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("worker", "size", "match"),
    [
        ({}, 2, "worker mapping is empty"),
        ("worker", 2, "worker must be an async function"),
        (None, -1, "size must be >= 0"),
        (None, 2.0, "size must be an integer"),
    ],
)
@pytest.mark.trio
async def test_bad_worker_or_size_raise_config_error(worker: Any, size: Any, match: str) -> None:
    with trio.fail_after(10):
        with pytest.raises(ConfigError, match=match):
            await trio_bots.swarm(worker if worker is not None else trio.sleep, size)


@pytest.mark.parametrize("weight", [0, -1, 1.5, True])
@pytest.mark.trio
async def test_bad_worker_weight_raises_config_error(weight: Any) -> None:
    async def a(bot: trio_bots.Bot) -> None:
        raise AssertionError("no bot should run")

    with trio.fail_after(10):
        with pytest.raises(ConfigError, match="worker weights must be ints >= 1"):
            await trio_bots.swarm({a: weight}, 2)


@pytest.mark.trio
async def test_swarm_attributes_host_size_and_read_only_options() -> None:
    seen: list[trio_bots.Swarm] = []

    async def worker(bot: trio_bots.Bot) -> None:
        seen.append(bot.swarm)

    with trio.fail_after(10):
        async with trio_bots.open_swarm(worker, 2, host="127.0.0.1:9", inbox_size=7) as s:
            pass
    assert seen == [s, s]
    assert s.host == "127.0.0.1:9"
    assert s.size == 2
    assert s.options["inbox_size"] == 7
    assert s.options["on_full"] == "block"
    with pytest.raises(TypeError):
        s.options["inbox_size"] = 3  # type: ignore[index]


# -- failure policy -------------------------------------------------------------------------


class Tracker:
    """Records when each bot ended and how."""

    def __init__(self) -> None:
        self.ended: dict[int, tuple[str, float]] = {}

    def mark(self, bot: trio_bots.Bot, how: str) -> None:
        self.ended[bot.id] = (how, trio.current_time())


@pytest.mark.trio
async def test_fail_fast_aborts_with_swarm_aborted(autojump_clock: trio.testing.MockClock) -> None:
    tracker = Tracker()
    boom = ValueError("boom")

    async def worker(bot: trio_bots.Bot) -> None:
        async with bot.measure("before"):
            pass
        try:
            await trio.sleep(bot.id)
            if bot.id == 3:
                raise boom
            await trio.sleep_forever()
        except trio.Cancelled:
            tracker.mark(bot, "cancelled")
            raise

    start = trio.current_time()
    with trio.fail_after(60):
        with pytest.raises(SwarmAborted) as info:
            await trio_bots.swarm(worker, 6)
    err = info.value
    assert str(err).startswith("bot 3 failed: ValueError: boom")
    assert err.failures == [BotFailure(3, boom)]
    assert err.__cause__ is boom
    result = err.result
    assert isinstance(result, trio_bots.SwarmResult)
    assert result.aborted and not result.interrupted
    assert result.bot_failures == err.failures
    assert result.bots_started == result.bots_finished == 6
    assert result.stats["before"].count == 6
    assert result.duration == pytest.approx(3.0)
    # Every other bot was cancelled at the moment bot 3 failed.
    assert sorted(tracker.ended) == [0, 1, 2, 4, 5]
    assert {t - start for _, t in tracker.ended.values()} == {3.0}


@pytest.mark.trio
async def test_max_failures_tolerates_n(autojump_clock: trio.testing.MockClock) -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        await trio.sleep(bot.id)
        if bot.id in (1, 4):
            raise KeyError(bot.id)

    with trio.fail_after(60):
        result = await trio_bots.swarm(worker, 6, max_failures=2)
    assert [f.bot_id for f in result.bot_failures] == [1, 4]
    assert all(isinstance(f.exception, KeyError) for f in result.bot_failures)
    assert not result.aborted
    assert result.bots_finished == 6
    assert result.duration == pytest.approx(5.0)


@pytest.mark.trio
async def test_one_failure_over_the_budget_aborts(autojump_clock: trio.testing.MockClock) -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        await trio.sleep(bot.id)
        if bot.id < 3:
            raise RuntimeError(f"bot {bot.id} gives up")
        await trio.sleep_forever()

    with trio.fail_after(60):
        with pytest.raises(SwarmAborted, match=r"^bot 0 failed: RuntimeError: bot 0 gives") as info:
            await trio_bots.swarm(worker, 5, max_failures=2)
    assert [f.bot_id for f in info.value.failures] == [0, 1, 2]
    assert "max_failures=2" in str(info.value)
    assert info.value.result is not None and info.value.result.duration == pytest.approx(2.0)


@pytest.mark.trio
async def test_max_failures_none_is_unlimited() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        raise ValueError(bot.id)

    with trio.fail_after(10):
        result = await trio_bots.swarm(worker, 20, max_failures=None)
    assert sorted(f.bot_id for f in result.bot_failures) == list(range(20))
    assert not result.aborted


@pytest.mark.trio
async def test_request_failures_do_not_count_against_the_budget() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        async with bot.measure("req") as m:
            m.fail("bad reply")
        with pytest.raises(ValueError):
            async with bot.measure("req"):
                raise ValueError("caught by the worker")

    with trio.fail_after(10):
        result = await trio_bots.swarm(worker, 5)
    assert result.bot_failures == []
    assert result.stats["req"].failure_count == 10


@pytest.mark.trio
async def test_a_worker_nursery_with_two_errors_is_one_swarm_aborted() -> None:
    async def boom(n: int) -> None:
        raise ValueError(f"boom {n}")

    async def worker(bot: trio_bots.Bot) -> None:
        if bot.id == 0:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(boom, 1)
                nursery.start_soon(boom, 2)
        await trio.sleep_forever()

    with trio.fail_after(10):
        with pytest.raises(SwarmAborted, match=r"^bot 0 failed: ExceptionGroup") as info:
            await trio_bots.swarm(worker, 3)
    cause = info.value.__cause__
    assert isinstance(cause, ExceptionGroup)
    assert sorted(str(e) for e in cause.exceptions) == ["boom 1", "boom 2"]
    assert info.value.result is not None and info.value.result.bots_finished == 3


@pytest.mark.trio
async def test_an_exception_in_the_open_swarm_body_comes_out_bare() -> None:
    ended: list[int] = []

    async def worker(bot: trio_bots.Bot) -> None:
        try:
            await trio.sleep_forever()
        finally:
            ended.append(bot.id)

    with trio.fail_after(10):
        with pytest.raises(KeyError, match="from the body"):
            async with trio_bots.open_swarm(worker, 4) as s:
                await trio.lowlevel.checkpoint()
                raise KeyError("from the body")
    assert sorted(ended) == [0, 1, 2, 3]
    assert s.result is not None and s.result.bots_finished == 4


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio", "asyncio"])
async def test_an_exception_in_the_body_comes_out_bare_on_both_backends(
    anyio_backend: str,
) -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        with pytest.raises(OSError, match="body failed"):
            async with trio_bots.open_swarm(worker, 3):
                await anyio.lowlevel.checkpoint()
                raise OSError("body failed")


@pytest.mark.trio
async def test_a_bot_failure_while_the_body_waits_raises_swarm_aborted() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        await trio.lowlevel.checkpoint()
        if bot.id == 1:
            raise ValueError("boom")
        await trio.sleep_forever()

    with trio.fail_after(10):
        with pytest.raises(SwarmAborted, match=r"^bot 1 failed: ValueError: boom"):
            async with trio_bots.open_swarm(worker, 3):
                await trio.sleep_forever()


# -- graceful stop --------------------------------------------------------------------------


def stop_workers(tracker: Tracker) -> Any:
    """Even bots end when told to stop; odd bots ignore it and are cancelled."""

    async def worker(bot: trio_bots.Bot) -> None:
        try:
            if bot.id % 2 == 0:
                await bot.stopping.wait()
                tracker.mark(bot, "stopped")
            else:
                await trio.sleep_forever()
        except trio.Cancelled:
            assert bot.stopping.is_set()
            tracker.mark(bot, "cancelled")
            raise

    return worker


@pytest.mark.trio
async def test_duration_stops_gracefully_then_cancels_after_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    start = trio.current_time()
    with trio.fail_after(60):
        result = await trio_bots.swarm(stop_workers(tracker), 6, duration=10, stop_grace=2)
    assert {i: (how, t - start) for i, (how, t) in tracker.ended.items()} == {
        0: ("stopped", 10.0),
        2: ("stopped", 10.0),
        4: ("stopped", 10.0),
        1: ("cancelled", 12.0),
        3: ("cancelled", 12.0),
        5: ("cancelled", 12.0),
    }
    assert result.duration == pytest.approx(12.0)
    assert result.bots_finished == 6
    assert result.bot_failures == []
    assert not result.interrupted and not result.aborted


@pytest.mark.trio
async def test_duration_ends_as_soon_as_every_bot_has_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        await bot.stopping.wait()

    with trio.fail_after(60):
        result = await trio_bots.swarm(worker, 4, duration=10, stop_grace=30)
    assert result.duration == pytest.approx(10.0)
    assert not result.interrupted


@pytest.mark.trio
async def test_swarm_stop_is_graceful_and_marks_interrupted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = Tracker()
    start = trio.current_time()
    with trio.fail_after(60):
        async with trio_bots.open_swarm(stop_workers(tracker), 4, stop_grace=3) as s:
            await trio.sleep(5)
            assert not s.statistics().stopping
            s.stop()
            s.stop()  # a second call does nothing
            assert s.statistics().stopping
    ends = {i: (how, t - start) for i, (how, t) in tracker.ended.items()}
    assert ends == {
        0: ("stopped", 5.0),
        2: ("stopped", 5.0),
        1: ("cancelled", 8.0),
        3: ("cancelled", 8.0),
    }
    assert s.result is not None
    assert s.result.interrupted and not s.result.aborted
    assert s.result.signal is None
    assert s.result.duration == pytest.approx(8.0)


@pytest.mark.trio
async def test_statistics_is_a_frozen_snapshot(autojump_clock: trio.testing.MockClock) -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        await trio.sleep(1 + bot.id)

    with trio.fail_after(60):
        async with trio_bots.open_swarm(worker, 3) as s:
            await trio.sleep(1.5)
            stats = s.statistics()
            await trio.sleep(10)
    assert (stats.bots_running, stats.bots_started, stats.bots_finished) == (2, 3, 1)
    assert stats.elapsed == pytest.approx(1.5)
    with pytest.raises(AttributeError):
        stats.bots_running = 0  # type: ignore[misc]


# -- cancellation from outside ---------------------------------------------------------------


@pytest.mark.trio
@pytest.mark.parametrize("how", ["cancelled from outside", "aborted"])
async def test_no_task_and_no_fd_outlive_the_swarm(how: str) -> None:
    size = 20
    connected = trio.Event()
    all_closed = trio.Event()
    count = closed = 0

    async def serve_until_eof(stream: trio.SocketStream) -> None:
        nonlocal closed
        async with stream:
            while await stream.receive_some():
                pass
        closed += 1
        if closed == size:
            all_closed.set()

    async def worker(bot: trio_bots.Bot) -> None:
        nonlocal count
        stream = await bot.connect_tcp("127.0.0.1", port)
        await stream.send_all(b"hi")
        count += 1
        if count == size:
            connected.set()
        if how == "aborted" and bot.id == 0:
            await connected.wait()
            raise ValueError("boom")
        await trio.sleep_forever()

    with trio.fail_after(20):
        fds_before = open_fds()
        tasks_before = sorted(live_task_names())
        async with trio.open_nursery() as server:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            await server.start(trio.serve_listeners, serve_until_eof, listeners)

            if how == "aborted":
                with pytest.raises(SwarmAborted):
                    await trio_bots.swarm(worker, size)
            else:
                with pytest.raises(trio.TooSlowError):
                    with trio.fail_after(3600) as scope:  # the deadline moves in when connected

                        async def cancel_when_connected() -> None:
                            await connected.wait()
                            scope.deadline = trio.current_time()

                        server.start_soon(cancel_when_connected)
                        await trio_bots.swarm(worker, size)
            # The bots' sockets are closed: the server sees EOF on every connection.
            await all_closed.wait()
            assert not [n for n in live_task_names() if "bot" in n]
            server.cancel_scope.cancel()
        assert sorted(live_task_names()) == tasks_before
        assert open_fds() == fds_before


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_cancel_from_outside_on_asyncio_closes_every_socket(anyio_backend: str) -> None:
    import asyncio

    size = 10
    connected = anyio.Event()
    count = 0
    streams: list[Any] = []

    async def worker(bot: trio_bots.Bot) -> None:
        nonlocal count
        stream = await bot.connect_tcp("127.0.0.1", port)
        streams.append(stream)
        count += 1
        if count == size:
            connected.set()
        await anyio.sleep_forever()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                while await stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    with anyio.fail_after(20):
        fds_before = open_fds()
        tasks_before = len(asyncio.all_tasks())
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as server:
            server.start_soon(listener.serve, handle)
            with anyio.CancelScope() as scope:

                async def cancel_when_connected() -> None:
                    await connected.wait()
                    scope.cancel()

                server.start_soon(cancel_when_connected)
                await trio_bots.swarm(worker, size)
            assert scope.cancelled_caught
            assert len(streams) == size
            for stream in streams:
                with pytest.raises(trio.ClosedResourceError):
                    await stream.send_all(b"x")
            server.cancel_scope.cancel()
        assert len(asyncio.all_tasks()) == tasks_before
        assert open_fds() == fds_before


# -- the fd preflight ------------------------------------------------------------------------


class FakeLimits:
    def __init__(self, soft: int, hard: int) -> None:
        self.soft, self.hard = soft, hard
        self.set_calls: list[tuple[int, int]] = []

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return (self.soft, self.hard)

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        self.set_calls.append(limits)
        self.soft, self.hard = limits


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLimits]:
    fake = FakeLimits(1024, 4096)
    monkeypatch.setattr(resource, "getrlimit", fake.getrlimit)
    monkeypatch.setattr(resource, "setrlimit", fake.setrlimit)
    yield fake


async def noop(bot: trio_bots.Bot) -> None:
    pass


@pytest.mark.trio
async def test_preflight_raises_the_soft_limit_only_as_far_as_needed(limits: FakeLimits) -> None:
    from trio_bots._core.options import FD_HEADROOM

    with trio.fail_after(10):
        await trio_bots.swarm(noop, 2000)
    assert limits.set_calls == [(2000 + FD_HEADROOM, 4096)]


@pytest.mark.trio
async def test_preflight_counts_sockets_per_bot(limits: FakeLimits) -> None:
    from trio_bots._core.options import FD_HEADROOM

    with trio.fail_after(10):
        await trio_bots.swarm(noop, 1000, sockets_per_bot=3)
    assert limits.set_calls == [(3000 + FD_HEADROOM, 4096)]


@pytest.mark.trio
async def test_preflight_leaves_a_sufficient_limit_alone(limits: FakeLimits) -> None:
    with trio.fail_after(10):
        await trio_bots.swarm(noop, 100)
        await trio_bots.swarm(noop, 5000, sockets_per_bot=0)  # 0 disables the check
    assert limits.set_calls == []


@pytest.mark.trio
async def test_preflight_with_an_infinite_hard_limit(limits: FakeLimits) -> None:
    limits.hard = resource.RLIM_INFINITY
    with trio.fail_after(10):
        await trio_bots.swarm(noop, 5000)
    assert limits.set_calls == [(5064, resource.RLIM_INFINITY)]


@pytest.mark.trio
async def test_preflight_over_the_hard_limit_is_a_config_error(limits: FakeLimits) -> None:
    started: list[int] = []

    async def worker(bot: trio_bots.Bot) -> None:
        started.append(bot.id)

    with trio.fail_after(10):
        with pytest.raises(ConfigError) as info:
            await trio_bots.swarm(worker, 5000)
    message = str(info.value)
    assert "1024" in message and "4096" in message and "ulimit -n" in message
    assert "\n" not in message
    assert started == [] and limits.set_calls == []


@pytest.mark.trio
async def test_preflight_counts_the_peak_of_the_stages(limits: FakeLimits) -> None:
    with trio.fail_after(10):
        with pytest.raises(ConfigError, match="ulimit -n"):
            await trio_bots.swarm(noop, 10, stages=[(1, 10), (1, 5000), (1, 0)])
    assert limits.set_calls == []


# -- SIGINT ----------------------------------------------------------------------------------

GUARDED = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signal_guard() -> Iterator[list[int]]:
    """Install signal handlers of our own around a run, and restore the old ones.

    If trio_bots' handler were not active when the signal arrives, ours
    records it instead of a KeyboardInterrupt (or SIGTERM) tearing the
    test run down.
    """
    stray: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in GUARDED}
    for sig in GUARDED:
        signal.signal(sig, lambda signum, frame: stray.append(signum))
    try:
        yield stray
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_starts_a_graceful_stop(signum: int) -> None:
    stopped: list[float] = []

    async def worker(bot: trio_bots.Bot) -> None:
        if bot.id == 0:
            await trio.sleep(2)  # every task, the signal handler too, is running by now
            os.kill(os.getpid(), signum)
        await bot.stopping.wait()
        stopped.append(trio.current_time())

    async def main() -> trio_bots.SwarmResult:
        with trio.fail_after(60):
            return await trio_bots.swarm(worker, 4, handle_sigint=True, stop_grace=30)

    with signal_guard() as stray:
        ours = signal.getsignal(signal.SIGINT)
        result = trio.run(main, clock=mock_clock())
        assert signal.getsignal(signal.SIGINT) is ours  # put back as it was
    assert stray == []
    assert result.interrupted and not result.aborted
    assert result.signal == signum
    assert len(stopped) == 4 and result.bots_finished == 4
    assert result.duration < 30  # they stopped when asked, not at the end of the grace


def test_a_second_sigint_stops_at_once() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        if bot.id == 0:
            await trio.sleep(2)
            os.kill(os.getpid(), signal.SIGINT)
            await trio.sleep(1)
            os.kill(os.getpid(), signal.SIGINT)
        await trio.sleep_forever()

    async def main() -> trio_bots.SwarmResult:
        with trio.fail_after(60):
            return await trio_bots.swarm(worker, 2, handle_sigint=True, stop_grace=100)

    with signal_guard() as stray:
        result = trio.run(main, clock=mock_clock())
    assert stray == []
    assert result.interrupted and result.signal == signal.SIGINT
    assert result.duration == pytest.approx(3.0)


def test_without_handle_sigint_signals_are_left_alone() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await trio.sleep(1)

    with signal_guard() as stray:
        result = trio.run(trio_bots.swarm, worker, 1, clock=mock_clock())
    assert stray == [signal.SIGINT]
    assert not result.interrupted and result.signal is None


def test_sigint_on_asyncio_starts_a_graceful_stop() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        if bot.id == 0:
            await anyio.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)
        await bot.stopping.wait()

    async def main() -> trio_bots.SwarmResult:
        with anyio.fail_after(30):
            return await trio_bots.swarm(worker, 3, handle_sigint=True)

    with signal_guard() as stray:
        result = anyio.run(main, backend="asyncio")
    assert stray == []
    assert result.interrupted and result.signal == signal.SIGINT
    assert result.bots_finished == 3


def test_handle_sigint_on_asyncio_puts_the_old_handler_back() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        pass

    with signal_guard():
        ours = signal.getsignal(signal.SIGINT)
        anyio.run(
            functools.partial(trio_bots.swarm, worker, 1, handle_sigint=True), backend="asyncio"
        )
        assert signal.getsignal(signal.SIGINT) is ours


@pytest.mark.trio
async def test_stop_after_the_run_does_nothing() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        pass

    with trio.fail_after(10):
        async with trio_bots.open_swarm(worker, 2) as s:
            pass
    s.stop()
    assert s.result is not None and not s.result.interrupted
