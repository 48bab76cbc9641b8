"""The seed's API (start, create, @start, factory=) and the seed examples, run as scripts."""

from __future__ import annotations

import functools
import gc
import inspect
import re
import resource
import subprocess
import sys
import warnings
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import trio_bots
from trio_bots import ConfigError, SwarmAborted, SwarmResult

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


# -- the examples ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["seed_start.py", "seed_create.py", "seed_decorator.py"])
def test_hello_world_examples(name: str) -> None:
    assert run_example(name) == ["Hello World !", "Hello World !"]


def test_factory_example() -> None:
    lines = run_example("seed_factory.py")
    assert sorted(lines) == ["worker 0: Hello World !", "worker 1: Hello World !"]


def test_groups_example() -> None:
    lines = run_example("seed_groups.py")
    sent_0 = 'process 0: sent "Hello" to process 1'
    sent_2 = 'process 2: sent "Hello" to process 3'
    got_1 = 'process 1: received "Hello" from process 0'
    got_3 = 'process 3: received "Hello" from process 2'
    assert sorted(lines) == sorted([sent_0, sent_2, got_1, got_3])
    assert lines.index(sent_0) < lines.index(got_1)
    assert lines.index(sent_2) < lines.index(got_3)


def test_server_example() -> None:
    lines = run_example("seed_server.py")
    assert len(lines) == 4, lines
    listening = re.fullmatch(r"process 0: listening on port (\d+)", lines[0])
    assert listening is not None
    port = listening.group(1)
    assert f"process 1: connected on port {port}" in lines
    connection = r"process 0: connection from \('127\.0\.0\.1', \d+\)"
    assert any(re.fullmatch(connection, line) for line in lines)
    assert lines[-1] == 'process 1: received "hello"'


# -- start / create / @start -----------------------------------------------------------------


async def hello() -> None:
    print("Hello World !")


def test_start_runs_the_worker_with_no_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    result = trio_bots.start(hello, size=3)
    assert isinstance(result, SwarmResult) and result.bots_finished == 3
    assert capsys.readouterr().out.splitlines() == ["Hello World !"] * 3


def test_create_is_a_coroutine_for_trio_run(capsys: pytest.CaptureFixture[str]) -> None:
    coro = trio_bots.create(hello, size=2)
    assert inspect.iscoroutine(coro)
    coro.close()
    result = trio.run(functools.partial(trio_bots.create, hello, size=2))
    assert result.bots_finished == 2
    assert capsys.readouterr().out.splitlines() == ["Hello World !"] * 2


def test_start_as_a_decorator(capsys: pytest.CaptureFixture[str]) -> None:
    @trio_bots.start(size=2)
    async def worker() -> None:
        print("Hello World !")

    assert worker.__name__ == "worker"
    assert capsys.readouterr().out == ""  # decorating runs nothing
    result = worker()
    assert result.bots_finished == 2
    assert capsys.readouterr().out.splitlines() == ["Hello World !"] * 2


def create_workers(coro: Any, *, size: int) -> Iterator[Any]:
    return (coro(i) for i in range(size))


def test_a_factory_gives_ids_and_current_bot_is_at_hand() -> None:
    seen: dict[int, int] = {}

    @trio_bots.start(factory=create_workers, size=4)
    async def worker(i: int) -> None:
        bot = trio_bots.current_bot()
        seen[i] = bot.id
        await bot.step()  # the whole group system is still there

    result = worker()
    assert seen == {0: 0, 1: 1, 2: 2, 3: 3}
    assert result.bots_finished == 4


def test_current_bot_in_a_plain_seed_worker() -> None:
    ids: list[int] = []

    async def worker() -> None:
        bot = trio_bots.current_bot()
        bot.join("all")
        await bot.barrier("met", group="all")
        ids.append(bot.id)

    trio_bots.start(worker, size=3)
    assert sorted(ids) == [0, 1, 2]


def test_options_pass_through_the_seed_api() -> None:
    async def worker() -> None:
        await trio_bots.current_bot().stopping.wait()

    result = trio.run(
        functools.partial(trio_bots.create, worker, size=2, duration=5),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert result.duration == pytest.approx(5.0)


def test_a_factory_giving_something_else_is_a_config_error() -> None:
    made: list[Coroutine[Any, Any, None]] = []

    def factory(coro: Any, *, size: int) -> list[Any]:
        made.append(coro(0))
        return [made[0], "not awaitable"]

    async def worker(i: int) -> None:
        raise AssertionError("never runs")

    with pytest.raises(ConfigError, match="item 1 is 'not awaitable'"):
        trio_bots.start(worker, size=2, factory=factory)
    assert inspect.getcoroutinestate(made[0]) == inspect.CORO_CLOSED


def test_awaitables_that_never_started_are_closed() -> None:
    made: list[Coroutine[Any, Any, None]] = []

    def factory(coro: Any, *, size: int) -> Iterator[Any]:
        for i in range(size):
            made.append(coro(i))
            yield made[-1]

    async def worker(i: int) -> None:
        if i == 0:
            raise ValueError("boom")
        await trio.sleep_forever()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SwarmAborted, match="bot 0 failed: ValueError: boom") as info:
            # One bot a second: bot 0 fails before the others are started.
            trio.run(
                functools.partial(trio_bots.create, worker, size=5, factory=factory, spawn_rate=1),
                clock=trio.testing.MockClock(autojump_threshold=0),
            )
        gc.collect()
    assert info.value.result is not None
    assert info.value.result.bots_started < 5
    assert len(made) == 5
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in made)
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_factory_option_of_swarm_itself() -> None:
    seen: list[Any] = []

    async def worker(i: Any) -> None:
        seen.append(i)

    trio.run(functools.partial(trio_bots.swarm, worker, 2, factory=create_workers))
    assert sorted(seen) == [0, 1]


@pytest.mark.parametrize(
    ("options", "made_before_the_error"),
    [
        ({"max_queue": 5}, 0),  # the option checks run before the factory is called
        ({"sockets_per_bot": 1000}, 3),  # the fd preflight runs after it
    ],
)
def test_a_config_error_after_the_factory_closes_its_awaitables(
    options: dict[str, Any], made_before_the_error: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 2048))
    made: list[Coroutine[Any, Any, None]] = []

    def factory(coro: Any, *, size: int) -> Iterator[Any]:
        for i in range(size):
            made.append(coro(i))
            yield made[-1]

    async def worker(i: int) -> None:
        raise AssertionError("never runs")

    with pytest.raises(ConfigError):
        trio.run(functools.partial(trio_bots.swarm, worker, 3, factory=factory, **options))
    try:
        states = [inspect.getcoroutinestate(c) for c in made]
    finally:
        for c in made:
            c.close()  # so that a failure here does not also warn in a later test
    # Nothing the factory made is left unawaited.
    assert states == [inspect.CORO_CLOSED] * made_before_the_error


def test_current_bot_from_a_task_the_worker_spawned() -> None:
    found: list[int] = []

    async def child() -> None:
        found.append(trio_bots.current_bot().id)

    async def worker(bot: trio_bots.Bot) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)

    trio.run(trio_bots.swarm, worker, 3)
    assert sorted(found) == [0, 1, 2]


# -- the seed's pool options: no size, main=, run_tasks(timeout=) -------------------------


def test_start_without_size_runs_one_worker() -> None:
    calls: list[int] = []

    async def worker() -> None:
        calls.append(trio_bots.current_bot().id)

    result = trio_bots.start(worker)
    assert calls == [0] and result.bots_finished == 1

    @trio_bots.start()
    async def decorated() -> None:
        calls.append(trio_bots.current_bot().id)

    assert decorated().bots_finished == 1 and calls == [0, 0]


def test_create_runs_through_main_with_exactly_the_kwargs_given() -> None:
    seen: list[Any] = []

    async def worker() -> None:
        seen.append("worker")

    async def main(awaitables: list[Any], **kwargs: Any) -> str:
        seen.append(("before", len(awaitables), kwargs))
        result = await trio_bots.run_tasks(awaitables, **kwargs)
        seen.append(("after", result.bots_finished))
        return "main's own value"

    returned = trio.run(
        functools.partial(trio_bots.create, worker, size=3, main=main, seed=7, stop_grace=1)
    )
    assert returned == "main's own value"
    assert seen == [
        ("before", 3, {"seed": 7, "stop_grace": 1}),
        "worker",
        "worker",
        "worker",
        ("after", 3),
    ]


def test_create_without_size_gives_main_one_awaitable() -> None:
    counts: list[int] = []

    async def worker() -> None:
        pass

    async def main(awaitables: list[Any]) -> None:
        counts.append(len(awaitables))
        await trio_bots.run_tasks(awaitables)

    trio.run(functools.partial(trio_bots.create, worker, main=main))
    assert counts == [1]


def test_timeout_cancels_what_still_runs_with_no_grace_and_no_error() -> None:
    saw_stopping: list[bool] = []

    async def worker(seconds: float) -> None:
        bot = trio_bots.current_bot()
        try:
            await trio.sleep(seconds)
        finally:
            saw_stopping.append(bot.stopping.is_set())

    def factory(coro: Any, *, size: int) -> Iterator[Any]:
        return (coro(1 if i == 0 else 100) for i in range(size))

    result = trio.run(
        functools.partial(
            trio_bots.create, worker, size=3, factory=factory, timeout=5, stop_grace=60
        ),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert result.timed_out and result.bots_cancelled == 2
    assert not result.interrupted and not result.aborted and result.bot_failures == []
    assert result.duration == 5
    assert saw_stopping == [False, False, False]  # cancelled, never asked to stop
    data = result.to_dict()["run"]
    assert data["timed_out"] is True and data["bots_cancelled"] == 2


def test_run_tasks_checks_its_timeout_and_closes_the_awaitables() -> None:
    async def worker() -> None:
        raise AssertionError("never runs")

    made = [worker(), worker()]
    with pytest.raises(ConfigError, match="timeout must be a number of seconds > 0"):
        trio.run(functools.partial(trio_bots.run_tasks, made, timeout=-1))
    assert [inspect.getcoroutinestate(c) for c in made] == [inspect.CORO_CLOSED] * 2


def test_a_timeout_that_never_fires_leaves_the_result_plain() -> None:
    async def worker() -> None:
        await trio.sleep(0.01)

    result = trio_bots.start(worker, size=2, timeout=60)
    assert not result.timed_out and result.bots_cancelled == 0 and result.bots_finished == 2
