"""The game server's unit test in virtual time: 1,000 matches, the game's invariants, a crash.

The server (examples/game_server.py) runs in the test's own trio run, the bots
reach it over a simulated network, and MockClock skips every wait: minutes of
play take seconds. A spy records every frame the server reads and writes, per
connection, so the invariants are checked on what crossed the wire.
"""

from __future__ import annotations

import struct
from collections import Counter, defaultdict
from typing import Any

import pytest
import trio
import trio.testing
from _services import EXAMPLES  # noqa: F401  (puts examples/ on sys.path)

import trio_bots
from trio_bots.protocols import framing
from trio_bots.testing import Network, SimulatedStream

# isort: off
import chat_server
import chat_swarm
import game_server
from game_server import CANCEL, ERROR, FIND, FIND_FORMAT, HEADER, MAX_FRAME, MOVE, MOVED, OVER
from game_server import START, START_FORMAT

# isort: on

HOST, PORT = "game.test", 7778
GAMES_PER_BOT = 10
BOTS = 200  # 200 bots x 10 games / 2 players = 1,000 matches


def frames_of(data: bytes) -> list[bytes]:
    """Split a byte stream into its length-prefixed frames."""
    frames, at = [], 0
    size = struct.calcsize(HEADER)
    while at + size <= len(data):
        (length,) = struct.unpack_from(HEADER, data, at)
        frames.append(data[at + size : at + size + length])
        at += size + length
    return frames


class Spy(trio.abc.HalfCloseableStream):
    """The server's end of a connection, recording both directions."""

    def __init__(self, stream: SimulatedStream) -> None:
        self.stream = stream
        self.read = bytearray()
        self.written = bytearray()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)
        self.written += data

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = await self.stream.receive_some(max_bytes)
        self.read += data
        return data

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


async def player(bot: trio_bots.Bot) -> None:
    """Play GAMES_PER_BOT games; now and then try a move out of turn, which must be refused."""
    host, port = bot.swarm.host.split(":")
    frames = framing.LengthPrefixed(
        await bot.connect_tcp(host, int(port)), header=HEADER, max_size=MAX_FRAME
    )
    try:
        for _ in range(GAMES_PER_BOT):
            await frames.send(FIND_FORMAT.pack(FIND, bot.id))
            async with bot.measure("match"):
                start = await frames.receive()
            assert start[0] == START, start.hex()
            _, _game, mark, _opponent = START_FORMAT.unpack(start)
            await play(bot, frames, mark)
    except trio.BrokenResourceError:
        bot.count("saw the crash")


async def play(bot: trio_bots.Bot, frames: framing.LengthPrefixed, mark: int) -> None:
    """One game. Right after the turn passes to the opponent (who thinks at least 10 ms,
    longer than a frame takes to reach the server), it sometimes sends a move out of
    turn: the server must refuse it with ERROR and announce nothing."""
    board, turn = [0] * 9, 1
    while True:
        if turn == mark:
            await trio.sleep(bot.random.uniform(0.01, 0.05))
            cell = bot.random.choice([i for i in range(9) if not board[i]])
            await frames.send(bytes([MOVE, cell]))
            turn = 0  # until the server's MOVED
        elif turn == 3 - mark and bot.random.random() < 0.2:
            bot.count("moves out of turn")
            await frames.send(bytes([MOVE, board.index(0)]))
            turn = -turn  # one cheat per opponent's turn
        frame = await frames.receive()
        if frame[0] == ERROR:
            assert b"not your turn" in frame, frame
            bot.count("refused out of turn")
            continue
        if frame[0] == OVER:
            raise AssertionError(f"OVER before the board was decided: {frame.hex()}")
        assert frame[0] == MOVED, frame.hex()
        moved, cell = frame[1], frame[2]
        assert not board[cell], "a move on a taken cell was accepted"
        board[cell] = moved
        turn = 3 - moved
        result = game_server.winner(board)
        if result is not None:
            over = await frames.receive()
            while over[0] == ERROR:  # a refused cheat may come before the OVER
                bot.count("refused out of turn")
                over = await frames.receive()
            assert over == bytes([OVER, result, 0]), over.hex()
            bot.count("overs")
            return


def virtual(fn: Any, *args: Any) -> Any:
    async def bounded() -> Any:
        with trio.fail_after(3600):  # virtual seconds: a hang fails, it does not spin
            return await fn(*args)

    return trio.run(bounded, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_thousand_matches_keep_the_games_invariants() -> None:
    server = game_server.GameServer()
    spies: list[Spy] = []

    async def spied(stream: SimulatedStream) -> None:
        spy = Spy(stream)
        spies.append(spy)
        await server.handle(spy)

    async def main() -> trio_bots.SwarmResult:
        net = Network(latency=0.005, jitter=0.002)
        async with net.serve(spied, HOST, PORT):
            return await trio_bots.swarm(
                player, BOTS, network=net, host=f"{HOST}:{PORT}", seed=1, max_failures=0
            )

    result = virtual(main)
    counters = result.metrics["counters"]
    assert result.bot_failures == []
    assert server.games == server.finished == BOTS * GAMES_PER_BOT // 2 == 1000
    assert counters["overs"] == 2000  # every game ended with OVER to both players
    assert counters["refused out of turn"] == counters["moves out of turn"] > 50

    # What crossed the wire, per connection.
    games: dict[int, list[int]] = {}  # game id -> the marks the server announced, in order
    starts = Counter[int]()
    for spy in spies:
        read, written = frames_of(bytes(spy.read)), frames_of(bytes(spy.written))
        finds = [f for f in read if f[0] == FIND]
        got_start = [f for f in written if f[0] == START]
        assert len(finds) == len(got_start) == GAMES_PER_BOT  # every FIND answered by START
        assert not [f for f in read if f[0] == CANCEL]
        assert len([f for f in written if f[0] == OVER]) == GAMES_PER_BOT
        game, mark = None, 0
        for frame in written:
            if frame[0] == START:
                _, game, mark, _ = START_FORMAT.unpack(frame)
                starts[game] += 1
                games.setdefault(game, [])
            elif frame[0] == MOVED and mark == 1:
                assert game is not None
                games[game].append(frame[1])  # X's copy only: each move once
    assert len(starts) == 1000 and set(starts.values()) == {2}  # both players of each game
    for marks in games.values():  # MOVED alternates, X first: no move accepted out of turn
        assert marks == [1, 2] * (len(marks) // 2) + [1] * (len(marks) % 2)
        assert 5 <= len(marks) <= 9


def test_a_crash_mid_run_reaches_every_client_and_nothing_hangs() -> None:
    server = game_server.GameServer()
    bots = 40

    async def main() -> trio_bots.SwarmResult:
        net = Network(latency=0.005)
        async with net.serve(server.handle, HOST, PORT):
            async with trio_bots.open_swarm(
                player, bots, network=net, host=f"{HOST}:{PORT}", seed=2
            ) as swarm:
                await trio.sleep(0.5)  # mid-run: games under way
                assert swarm.statistics().bots_running == bots
                net.crash(HOST, PORT)
            assert net.statistics().open == 0
        assert swarm.result is not None
        return swarm.result

    result = virtual(main)
    assert result.bot_failures == []
    assert result.metrics["counters"]["saw the crash"] == bots  # every client saw the break
    assert 0 < server.games < bots * GAMES_PER_BOT // 2
    # They all ended at the crash, or at their next move after it (think time < 50 ms).
    assert 0.5 <= result.duration <= 0.5 + 0.05 + 0.001


def test_chat_round_trips_show_the_simulated_latency() -> None:
    latency = 0.02

    async def main() -> trio_bots.SwarmResult:
        net = Network(latency=latency)
        options = {k: v for k, v in chat_swarm.options.items() if k != "size"}
        async with net.serve(chat_server.ChatServer().handle, "chat.test", 7777):
            return await trio_bots.swarm(
                chat_swarm.worker,
                50,
                **{**options, "duration": 30.0, "host": "chat.test:7777"},
                network=net,
                seed=3,
            )

    result = virtual(main)
    say = result.stats["say"]
    assert say.count > 1000 and say.failure_count == 0
    assert abs(say.percentile(50) - 2 * latency) < 0.001
    # 100 iterations each with think times: about 20 virtual seconds, in a few real ones.
    assert 10 < result.duration < 30


def test_every_game_replays_from_its_seed() -> None:
    def run(seed: int) -> dict[str, Any]:
        async def main() -> dict[str, Any]:
            net = Network(latency=0.005, jitter=0.003)
            async with net.serve(game_server.GameServer().handle, HOST, PORT):
                result = await trio_bots.swarm(
                    player, 20, network=net, host=f"{HOST}:{PORT}", seed=seed
                )
            data = result.to_dict()
            data["run"].pop("started_wall")
            return data

        return virtual(main)

    by_seed: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for seed in (4, 4, 5):
        by_seed[seed].append(run(seed))
    assert by_seed[4][0] == by_seed[4][1]
    assert by_seed[4][0] != by_seed[5][0]


# The example of docs/testing.md, "With pytest-trio": the same code.
@pytest.mark.trio
async def test_the_docs_pytest_trio_example(autojump_clock: Any, swarm_runner: Any) -> None:
    async def echo(stream: SimulatedStream) -> None:
        async for data in stream:
            await stream.send_all(data)

    async def worker(bot: trio_bots.Bot) -> None:
        stream = await bot.connect_tcp("echo.test", 7)
        for _ in range(10):
            async with bot.measure("echo"):
                await stream.send_all(b"ping")
                assert await stream.receive_some() == b"ping"
            await trio.sleep(60)  # a minute between two pings: virtual, so free

    net = Network(latency=0.05)
    with trio.fail_after(3600):
        async with net.serve(echo, "echo.test", 7):
            result = await swarm_runner(worker, 20, network=net, thresholds=["p99(echo) < 101ms"])
    assert result.stats["echo"].count == 200
    assert result.duration >= 600  # ten virtual minutes
