"""Groups, messages, inboxes and barriers, on trio and on asyncio."""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trio_bots
from trio_bots import (
    Bot,
    BotGone,
    ConfigError,
    InboxFull,
    Message,
    SwarmResult,
    recv_all,
    recv_from,
    recv_group,
    send_all,
    send_bots,
    send_group,
)

Worker = Callable[[Bot], Awaitable[None]]


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def run(worker: Worker, size: int, **options: Any) -> SwarmResult:
    with anyio.fail_after(10):
        return await trio_bots.swarm(worker, size, **options)


async def checkpoints(n: int = 20) -> None:
    """Let every other runnable task go first, a few times over."""
    for _ in range(n):
        await anyio.lowlevel.checkpoint()


def summary(messages: list[Message]) -> list[tuple[int, Any, Any]]:
    return [(m.sender, m.group, m.data) for m in messages]


# -- send filters ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_send_group_reaches_every_other_member_but_not_the_sender() -> None:
    got: dict[Any, Any] = {}

    async def worker(bot: Bot) -> None:
        bot.join("g" if bot.id < 4 else "h")
        await bot.step()
        if bot.id == 0:
            got["sent"] = await bot.send(send_group("g"), "hi")
            got["nobody"] = await bot.send(send_group("empty"), "hi")
        await bot.step()
        got[bot.id] = summary(bot.recv())

    await run(worker, 6)
    assert sorted(got["sent"]) == [1, 2, 3]
    assert got["nobody"] == []
    assert got[0] == [] and got[4] == [] and got[5] == []
    assert got[1] == got[2] == got[3] == [(0, "g", "hi")]


@pytest.mark.anyio
async def test_send_all_reaches_every_other_live_bot() -> None:
    got: dict[Any, Any] = {}

    async def worker(bot: Bot) -> None:
        if bot.id == 3:
            return  # the step below is released only once this bot has ended
        await bot.step()
        if bot.id == 0:
            got["sent"] = bot.send_nowait(send_all(), "all")
        await bot.step()
        got[bot.id] = summary(bot.recv())

    await run(worker, 4)
    assert sorted(got["sent"]) == [1, 2]
    assert got[0] == []
    assert got[1] == got[2] == [(0, None, "all")]


@pytest.mark.anyio
async def test_send_bots_skips_ended_unknown_and_repeated_ids() -> None:
    got: dict[Any, Any] = {}

    async def worker(bot: Bot) -> None:
        if bot.id == 3:
            return
        await bot.step()
        if bot.id == 0:
            got["sent"] = await bot.send(send_bots([2, 3, 99, 1, 2]), "some")
            got["none"] = await bot.send(send_bots([]), "none")
        await bot.step()
        got[bot.id] = summary(bot.recv())

    await run(worker, 4)
    assert got["sent"] == [2, 1]
    assert got["none"] == []
    assert got[1] == got[2] == [(0, None, "some")]
    assert got[0] == []


@pytest.mark.anyio
async def test_send_takes_only_send_filters() -> None:
    async def worker(bot: Bot) -> None:
        with pytest.raises(ConfigError, match="send filter"):
            await bot.send(recv_all(), "x")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="send filter"):
            bot.send_nowait([1], "x")  # type: ignore[arg-type]

    result = await run(worker, 2)
    assert result.bot_failures == []


def test_group_names_must_be_hashable_and_not_none() -> None:
    with pytest.raises(ConfigError, match="cannot be None"):
        send_group(None)
    with pytest.raises(ConfigError, match="hashable"):
        recv_group([1])  # type: ignore[arg-type]
    assert repr(send_group(1)) == "send_group(1)"
    assert repr(recv_from(2)) == "recv_from(2)"


# -- receiving ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_receive_filters_leave_the_rest_queued_in_order() -> None:
    got: dict[str, Any] = {}

    async def worker(bot: Bot) -> None:
        bot.join("g")
        bot.join("h")
        await bot.step()
        if bot.id == 0:
            await bot.send(send_bots([1]), "a")
            await bot.send(send_group("g"), "b")
            await bot.send(send_group("h"), "c")
            await bot.send(send_bots([1]), "d")
            await bot.send(send_group("g"), "e")
        await bot.step()
        if bot.id == 2:
            await bot.send(send_bots([1]), "f")
        await bot.step()
        if bot.id != 1:
            return
        got["has_h"] = bot.has_message(recv_group("h"))
        got["has_x"] = bot.has_message(recv_group("x"))
        got["has_3"] = bot.has_message(recv_from(3))
        with pytest.raises(trio.WouldBlock):
            bot.receive_nowait(recv_group("x"))
        got["h"] = (await bot.receive(recv_group("h"))).data
        got["from_2"] = (await bot.receive(recv_from(2))).data
        got["oldest"] = bot.receive_nowait().data
        got["g"] = [m.data for m in bot.recv(recv_group("g"))]
        got["g_again"] = bot.recv(recv_group("g"))
        got["rest"] = [m.data for m in bot.recv(recv_all())]
        got["empty"] = bot.recv()
        got["has_any"] = bot.has_message()

    await run(worker, 3)
    assert got == {
        "has_h": True,
        "has_x": False,
        "has_3": False,
        "h": "c",
        "from_2": "f",
        "oldest": "a",
        "g": ["b", "e"],
        "g_again": [],
        "rest": ["d"],
        "empty": [],
        "has_any": False,
    }


@pytest.mark.anyio
async def test_receive_waits_for_a_matching_message() -> None:
    log: list[str] = []

    async def worker(bot: Bot) -> None:
        if bot.id == 0:
            await checkpoints()
            log.append("sending")
            await bot.send(send_bots([1]), "not this")
            await checkpoints()
            await bot.send(send_group("g"), "this")
        else:
            bot.join("g")
            msg = await bot.receive(recv_group("g"))
            log.append(f"got {msg.data}")
            log.append(f"then {bot.receive_nowait().data}")

    await run(worker, 2)
    assert log == ["sending", "got this", "then not this"]


@pytest.mark.anyio
async def test_message_fields_and_data_by_reference() -> None:
    data = {"a": [1, 2]}
    got: list[Message] = []
    times: list[float] = []

    async def worker(bot: Bot) -> None:
        bot.join("g")
        await bot.step()
        if bot.id == 0:
            times.append(anyio.current_time())
            await bot.send(send_group("g"), data)
            await bot.send(send_all(), "all")
            await bot.send(send_bots([1]), "one")
            times.append(anyio.current_time())
        await bot.step()
        if bot.id == 1:
            got.extend(bot.recv())

    await run(worker, 2)
    assert [(m.sender, m.group) for m in got] == [(0, "g"), (0, None), (0, None)]
    assert got[0].data is data
    assert all(times[0] <= m.sent_at <= times[1] for m in got)
    assert Message._fields == ("sender", "group", "data", "sent_at")


@pytest.mark.trio
async def test_sent_at_comes_from_the_swarm_clock(autojump_clock: trio.testing.MockClock) -> None:
    got: list[Message] = []
    start = trio.current_time()

    async def worker(bot: Bot) -> None:
        if bot.id == 0:
            await trio.sleep(5)
            await bot.send(send_bots([1]), "late")
        else:
            got.append(await bot.receive(recv_from(0)))

    with trio.fail_after(60):
        await trio_bots.swarm(worker, 2)
    assert got[0].sent_at - start == 5.0


# -- full inboxes ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_on_full_block_waits_for_room() -> None:
    log: list[str] = []
    got: list[Any] = []

    async def worker(bot: Bot) -> None:
        if bot.id == 0:
            for i in range(4):
                assert await bot.send(send_bots([1]), i) == [1]
                log.append(f"sent {i}")
        else:
            await checkpoints()
            log.append("reading")
            got.append((await bot.receive()).data)
            await checkpoints()
            got.extend(m.data for m in bot.recv())

    await run(worker, 2, inbox_size=2)
    assert log[:3] == ["sent 0", "sent 1", "reading"]
    assert sorted(log) == ["reading", "sent 0", "sent 1", "sent 2", "sent 3"]
    assert got == [0, 1, 2, 3]


@pytest.mark.anyio
async def test_send_nowait_under_block_raises_would_block_and_sends_nothing() -> None:
    got: dict[int, Any] = {}

    async def worker(bot: Bot) -> None:
        if bot.id == 0:
            assert bot.send_nowait(send_bots([1]), "fill") == [1]
            with pytest.raises(trio.WouldBlock):
                bot.send_nowait(send_all(), "blocked")
        await bot.step()
        got[bot.id] = [m.data for m in bot.recv()]

    await run(worker, 3, inbox_size=1)
    assert got == {0: [], 1: ["fill"], 2: []}


@pytest.mark.anyio
async def test_on_full_drop_skips_full_inboxes_and_counts_them() -> None:
    got: dict[Any, Any] = {}

    async def worker(bot: Bot) -> None:
        if bot.id == 0:
            got["sends"] = [
                await bot.send(send_bots([1]), "a"),
                await bot.send(send_bots([1]), "b"),
                await bot.send(send_all(), "c"),
                bot.send_nowait(send_bots([1, 2]), "d"),
            ]
        await bot.step()
        got[bot.id] = [m.data for m in bot.recv()]

    result = await run(worker, 3, inbox_size=2, on_full="drop")
    assert got["sends"] == [[1], [1], [2], [2]]
    assert got[1] == ["a", "b"]
    assert got[2] == ["c", "d"]
    assert result.dropped_messages == 2


@pytest.mark.anyio
async def test_on_full_error_raises_inbox_full_and_delivers_to_nobody() -> None:
    got: dict[Any, Any] = {}

    async def worker(bot: Bot) -> None:
        if bot.id == 0:
            await bot.send(send_bots([2]), "fill")
            with pytest.raises(InboxFull, match="bot 2's inbox is full") as info:
                await bot.send(send_all(), "async")
            got["message"] = str(info.value)
            with pytest.raises(InboxFull):
                bot.send_nowait(send_bots([1, 2, 3]), "nowait")
            got["ok"] = await bot.send(send_bots([1, 3]), "ok")
        await bot.step()
        got[bot.id] = [m.data for m in bot.recv()]

    result = await run(worker, 4, inbox_size=1, on_full="error")
    assert got["ok"] == [1, 3]
    assert got[1] == got[3] == ["ok"]
    assert got[2] == ["fill"]
    assert "inbox_size" in got["message"]
    assert result.dropped_messages == 0


@pytest.mark.anyio
async def test_a_bot_that_ends_wakes_a_sender_blocked_on_it() -> None:
    got: dict[Any, Any] = {}

    async def worker(bot: Bot) -> None:
        bot.join("g")
        await bot.step()
        if bot.id == 0:
            await bot.send(send_bots([1]), "fill")
            got["sent"] = await bot.send(send_group("g"), "x")
            got["sent_to_gone"] = await bot.send(send_bots([1]), "y")
        elif bot.id == 1:
            await checkpoints()
            got["1 ends"] = True  # without reading: the sender must not hang on us
        else:
            got[2] = (await bot.receive(recv_from(0))).data

    await run(worker, 3, inbox_size=1)
    assert got == {"1 ends": True, "sent": [2], "sent_to_gone": [], 2: "x"}


@pytest.mark.anyio
async def test_a_target_that_ends_while_the_sender_waits_is_skipped() -> None:
    # Bot 2 never touched its inbox; it ends while bot 0 is blocked on bot 1.
    got: dict[Any, Any] = {}
    two_ended = anyio.Event()

    async def worker(bot: Bot) -> None:
        await bot.step()
        if bot.id == 0:
            bot.send_nowait(send_bots([1]), "fill")
            got["sent"] = await bot.send(send_bots([1, 2]), "late")
        elif bot.id == 1:
            await two_ended.wait()
            await checkpoints()
            got[1] = [m.data for m in bot.recv()]
        else:
            await checkpoints()
            two_ended.set()  # bot 2 ends right after this, with no checkpoint in between

    await run(worker, 3, inbox_size=1)
    assert got["sent"] == [1]
    assert got[1] == ["fill", "late"]


# -- BotGone ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_recv_from_an_ended_bot_gives_what_is_queued_then_bot_gone() -> None:
    got: dict[Any, Any] = {}

    async def worker(bot: Bot) -> None:
        if bot.id == 0:
            await bot.send(send_bots([1]), "last words")
            return
        await bot.step()  # released once bot 0 has ended
        if bot.id == 1:
            got["first"] = (await bot.receive(recv_from(0))).data
            with pytest.raises(BotGone, match="bot 0 has ended") as info:
                await bot.receive(recv_from(0))
            got["error"] = str(info.value)
            with pytest.raises(BotGone, match="bot 99"):
                await bot.receive(recv_from(99))

    result = await run(worker, 3)
    assert got["first"] == "last words"
    assert "\n" not in got["error"]
    assert result.bot_failures == []


@pytest.mark.anyio
async def test_a_waiting_receive_wakes_with_bot_gone_when_its_sender_ends() -> None:
    got: list[str] = []

    async def worker(bot: Bot) -> None:
        if bot.id == 0:
            await checkpoints()
            got.append("0 ends")
        elif bot.id == 1:
            with pytest.raises(BotGone):
                await bot.receive(recv_from(0))
            got.append("1 woke")
        else:
            await bot.receive(recv_from(1))  # ends with BotGone once bot 1 has ended

    result = await run(worker, 3, max_failures=None)
    assert got == ["0 ends", "1 woke"]
    assert [(f.bot_id, type(f.exception)) for f in result.bot_failures] == [(2, BotGone)]


@pytest.mark.anyio
async def test_receive_raises_bot_gone_when_every_other_bot_has_ended() -> None:
    got: list[str] = []

    async def worker(bot: Bot) -> None:
        if bot.id == 0:
            bot.join("g")
            with pytest.raises(BotGone, match="every other bot has ended"):
                await bot.receive(recv_group("g"))
            got.append("woke")
            with pytest.raises(BotGone):
                await bot.receive()
        else:
            await checkpoints(5 * bot.id)

    await run(worker, 3)
    assert got == ["woke"]


# -- barriers --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_barrier_is_reusable_generation_after_generation() -> None:
    log: list[tuple[int, int]] = []

    async def worker(bot: Bot) -> None:
        for generation in range(5):
            await checkpoints(bot.id)
            await bot.barrier("b")
            log.append((generation, bot.id))

    await run(worker, 4)
    assert [g for g, _ in log] == sorted(g for g, _ in log)
    assert sorted(log) == [(g, i) for g in range(5) for i in range(4)]


@pytest.mark.anyio
async def test_step_moves_the_bots_in_lock_step_and_survives_ended_bots() -> None:
    log: list[tuple[int, int]] = []

    async def worker(bot: Bot) -> None:
        for step in range(4):
            if bot.id == step:
                return  # bot n ends before step n
            await bot.step()
            log.append((step, bot.id))

    await run(worker, 4)
    assert [s for s, _ in log] == sorted(s for s, _ in log)
    assert sorted(log) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


@pytest.mark.anyio
async def test_a_bot_that_ends_never_deadlocks_a_barrier() -> None:
    log: list[str] = []

    async def worker(bot: Bot) -> None:
        bot.join("g")
        await bot.step()
        if bot.id == 2:
            await checkpoints()
            log.append("2 ends")
            return
        await bot.barrier("b", group="g")
        log.append(f"{bot.id} through g")
        await bot.barrier("b")
        log.append(f"{bot.id} through all")

    await run(worker, 3)
    assert log[0] == "2 ends"
    assert sorted(log[1:3]) == ["0 through g", "1 through g"]
    assert sorted(log[3:]) == ["0 through all", "1 through all"]


@pytest.mark.anyio
async def test_a_cancelled_waiter_no_longer_counts_as_arrived() -> None:
    log: list[str] = []

    async def worker(bot: Bot) -> None:
        if bot.id == 0:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await bot.barrier("b")  # gives up at once
            log.append("0 gave up")
            await checkpoints(40)
            log.append("0 back")
        else:
            await checkpoints(5)
        await bot.barrier("b")
        log.append(f"{bot.id} through")

    await run(worker, 3)
    assert log[:2] == ["0 gave up", "0 back"]
    assert sorted(log[2:]) == ["0 through", "1 through", "2 through"]


@pytest.mark.anyio
async def test_a_group_barrier_is_rechecked_when_a_member_leaves() -> None:
    log: list[str] = []

    async def worker(bot: Bot) -> None:
        bot.join("g")
        await bot.step()
        if bot.id == 2:
            await checkpoints()
            log.append("2 leaves")
            bot.leave("g")
            bot.leave("g")  # leaving twice does nothing
            assert bot.groups == frozenset()
            await checkpoints()
            return
        await bot.barrier("b", group="g")
        log.append(f"{bot.id} through")

    await run(worker, 3)
    assert log[0] == "2 leaves"
    assert sorted(log[1:]) == ["0 through", "1 through"]


@pytest.mark.anyio
async def test_a_member_that_joins_is_waited_for() -> None:
    log: list[str] = []
    joined = anyio.Event()

    async def worker(bot: Bot) -> None:
        if bot.id < 2:
            bot.join("g")
        await bot.step()
        if bot.id == 0:
            await bot.barrier("b", group="g")
        elif bot.id == 1:
            await joined.wait()
            await bot.barrier("b", group="g")
        else:
            bot.join("g")
            joined.set()
            await checkpoints()
            log.append("2 arrives")
            await bot.barrier("b", group="g")
        log.append(f"{bot.id} through")

    await run(worker, 3)
    assert log[0] == "2 arrives"
    assert sorted(log[1:]) == ["0 through", "1 through", "2 through"]


@pytest.mark.anyio
async def test_a_group_barrier_by_a_non_member_is_a_config_error() -> None:
    async def worker(bot: Bot) -> None:
        with pytest.raises(ConfigError, match=r"bot\.join\('g'\)"):
            await bot.barrier("b", group="g")
        bot.join("g")
        bot.leave("g")
        with pytest.raises(ConfigError, match="not a member"):
            await bot.barrier("b", group="g")

    result = await run(worker, 2)
    assert result.bot_failures == []


@pytest.mark.anyio
async def test_barriers_with_other_names_or_groups_are_independent() -> None:
    log: list[str] = []

    async def worker(bot: Bot) -> None:
        bot.join("red" if bot.id % 2 else "blue")
        await bot.step()
        group = "red" if bot.id % 2 else "blue"
        await bot.barrier("x", group=group)
        log.append(group)
        await bot.barrier("x")
        log.append("all")

    await run(worker, 4)
    assert sorted(log[:4]) == ["blue", "blue", "red", "red"]
    assert log[4:] == ["all"] * 4


# -- fan-out latency -------------------------------------------------------------------------


async def fanout_worker(bot: Bot, delay: float = 0) -> None:
    bot.join("g")
    await bot.step()
    if bot.id == 0:
        await bot.send(send_group("g"), "group")
        await bot.send(send_bots([1]), "direct")
    else:
        await anyio.sleep(delay)
        await bot.step()
        bot.recv()
        return
    await bot.step()


def fanout_names(result: SwarmResult) -> set[str]:
    return {name for name in result.stats if result.stats[name].kind == "fanout"}


@pytest.mark.anyio
async def test_fanout_group_names_and_direct() -> None:
    result = await run(fanout_worker, 3)
    assert fanout_names(result) == {"group:g", "direct"}
    assert result.stats["group:g"].count == 2
    assert result.stats["direct"].count == 1
    assert result.stats.total.count == 0  # fan-out is not a request


@pytest.mark.anyio
async def test_fanout_total_and_off() -> None:
    total = await run(fanout_worker, 3, fanout="total")
    assert fanout_names(total) == {"fanout"}
    assert total.stats["fanout"].count == 3
    off = await run(fanout_worker, 3, fanout="off")
    assert fanout_names(off) == set()


@pytest.mark.trio
async def test_fanout_latency_is_send_to_take(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        result = await trio_bots.swarm(functools.partial(fanout_worker, delay=2), 2)
    assert result.stats["group:g"].max == pytest.approx(2.0, rel=1e-3)
    assert result.stats["direct"].min == pytest.approx(2.0, rel=1e-3)


@pytest.mark.anyio
async def test_more_than_100_groups_fall_back_to_total(caplog: pytest.LogCaptureFixture) -> None:
    async def worker(bot: Bot) -> None:
        for g in range(105):
            bot.join(g)
        await bot.step()
        if bot.id == 0:
            for g in range(105):
                await bot.send(send_group(g), g)
            await bot.send(send_bots([1]), "direct")
        await bot.step()
        bot.recv()

    with caplog.at_level(logging.WARNING, logger="trio_bots"):
        result = await run(worker, 2)
    names = fanout_names(result)
    assert names == {f"group:{g}" for g in range(100)} | {"fanout"}
    assert result.stats["fanout"].count == 6  # groups 100..104, then the direct message
    warnings = [r for r in caplog.records if "groups carry messages" in r.getMessage()]
    assert len(warnings) == 1


# -- the model test --------------------------------------------------------------------------

GROUPS = ("a", "b", "c")

op_strategy = st.one_of(
    st.tuples(st.just("join"), st.sampled_from(GROUPS)),
    st.tuples(st.just("leave"), st.sampled_from(GROUPS)),
    st.tuples(st.just("send_group"), st.sampled_from(GROUPS)),
    st.tuples(st.just("send_all")),
    st.tuples(st.just("send_bots"), st.lists(st.integers(0, 6), max_size=4)),
    st.tuples(st.just("recv_from"), st.integers(0, 5)),
    st.tuples(st.just("recv_group"), st.sampled_from(GROUPS)),
    st.tuples(st.just("end")),
)


@st.composite
def plans(draw: st.DrawFn) -> tuple[int, list[tuple[int, tuple[Any, ...]]]]:
    size = draw(st.integers(2, 5))
    steps = draw(st.lists(st.tuples(st.integers(0, size - 1), op_strategy), max_size=30))
    return size, steps


class Model:
    """What the plan must do: membership and liveness at each send, in plan order."""

    def __init__(self, size: int) -> None:
        self.live = set(range(size))
        self.members: dict[str, set[int]] = defaultdict(set)
        self.expected: dict[tuple[int, int], list[int]] = {}
        self.group: dict[tuple[int, int], str | None] = {}
        self.seq = [0] * size

    def apply(self, actor: int, op: tuple[Any, ...]) -> None:
        if actor not in self.live:
            return
        kind = op[0]
        if kind == "join":
            self.members[op[1]].add(actor)
        elif kind == "leave":
            self.members[op[1]].discard(actor)
        elif kind == "end":
            self.live.discard(actor)
            for members in self.members.values():
                members.discard(actor)
        elif kind.startswith("send"):
            if kind == "send_group":
                targets = self.members[op[1]] - {actor}
            elif kind == "send_all":
                targets = self.live - {actor}
            else:
                targets = {i for i in op[1] if i in self.live}
            self.expected[(actor, self.seq[actor])] = sorted(targets)
            self.group[(actor, self.seq[actor])] = op[1] if kind == "send_group" else None
            self.seq[actor] += 1


async def run_plan(size: int, plan: list[tuple[int, tuple[Any, ...]]]) -> dict[str, Any]:
    returned: dict[tuple[int, int], list[int]] = {}
    received: dict[int, list[Message]] = defaultdict(list)
    seq = [0] * size

    async def worker(bot: Bot) -> None:
        me = bot.id
        for actor, op in plan:
            await bot.step()  # the previous command has been carried out by now
            if actor != me:
                continue
            kind = op[0]
            if kind == "join":
                bot.join(op[1])
            elif kind == "leave":
                bot.leave(op[1])
            elif kind == "end":
                received[me].extend(bot.recv())
                return
            elif kind == "recv_from":
                received[me].extend(bot.recv(recv_from(op[1])))
            elif kind == "recv_group":
                received[me].extend(bot.recv(recv_group(op[1])))
            else:
                key = (me, seq[me])
                seq[me] += 1
                if kind == "send_group":
                    returned[key] = await bot.send(send_group(op[1]), key)
                elif kind == "send_all":
                    returned[key] = bot.send_nowait(send_all(), key)
                else:
                    returned[key] = await bot.send(send_bots(op[1]), key)
        await bot.step()
        received[me].extend(bot.recv())

    with anyio.fail_after(30):
        result = await trio_bots.swarm(worker, size)
    assert result.bot_failures == []
    return {"returned": returned, "received": received}


def check_plan(size: int, plan: list[tuple[int, tuple[Any, ...]]], outcome: dict[str, Any]) -> None:
    model = Model(size)
    for actor, op in plan:
        model.apply(actor, op)
    returned = outcome["returned"]
    assert set(returned) == set(model.expected)
    for key, ids in returned.items():
        assert len(ids) == len(set(ids)), f"message {key} returned duplicate ids {ids}"
        assert sorted(ids) == model.expected[key], f"message {key}"
    delivered: dict[tuple[int, int], list[int]] = defaultdict(list)
    for receiver, messages in outcome["received"].items():
        last_seq: dict[tuple[int, Any], int] = {}
        for msg in messages:
            sender, n = msg.data
            assert msg.sender == sender
            assert msg.group == model.group[msg.data]
            delivered[msg.data].append(receiver)
            # Per sender (and per group, as recv_group may take a later one first), in order.
            stream = (sender, msg.group)
            assert last_seq.get(stream, -1) < n, f"bot {receiver} got {msg.data} out of order"
            last_seq[stream] = n
    for key, ids in model.expected.items():
        assert sorted(delivered.get(key, [])) == ids, f"message {key} delivered to wrong bots"
    assert set(delivered) <= set(model.expected)


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=plans())
def test_every_message_reaches_exactly_the_bots_named_at_send_time(
    backend: str, case: tuple[int, list[tuple[int, tuple[Any, ...]]]]
) -> None:
    size, plan = case
    outcome = anyio.run(run_plan, size, plan, backend=backend)
    check_plan(size, plan, outcome)


@pytest.mark.trio
async def test_a_cancelled_receive_leaves_the_message_queued() -> None:
    seen: list[str] = []

    async def worker(bot: trio_bots.Bot) -> None:
        if bot.id == 0:
            bot.send_nowait(trio_bots.send_bots([1]), "first")
            bot.send_nowait(trio_bots.send_bots([1]), "second")
            return
        await bot.barrier("sent")  # bot 0 has sent and ended
        with trio.CancelScope() as scope:
            scope.cancel()
            await bot.receive()  # cancelled before it takes anything
        seen.extend(msg.data for msg in bot.recv())

    with trio.fail_after(10):
        await trio_bots.swarm(worker, 2)
    assert seen == ["first", "second"]


@pytest.mark.trio
async def test_a_cancelled_send_delivers_nothing() -> None:
    got: list[Any] = []

    async def worker(bot: trio_bots.Bot) -> None:
        bot.join("g")
        await bot.step()
        if bot.id == 0:
            with trio.CancelScope() as scope:
                scope.cancel()
                await bot.send(trio_bots.send_group("g"), "never")
            await bot.send(trio_bots.send_group("g"), "after")
        else:
            got.append((await bot.receive()).data)

    with trio.fail_after(10):
        await trio_bots.swarm(worker, 2)
    assert got == ["after"]
