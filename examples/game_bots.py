"""Bots play tic-tac-toe against each other through a game server, in rounds.

Run it::

    python examples/game_bots.py                       # 20 bots, 10 rounds, its own server
    python examples/game_server.py --port 7778 &       # or against a running server
    python examples/game_bots.py --host 127.0.0.1:7778 --bots 100

The protocol is binary, with length-prefixed frames (see game_server.py). Each
round, every bot:

1. waits at ``bot.step()``, so that the whole swarm enters the lobby together
   and the lobby can pair everyone (with an odd number of bots, the last one
   sits out);
2. sends FIND and waits for a match, measured as ``match``; at the end of the
   run it sends CANCEL instead of waiting for an opponent who stopped;
3. plays random legal moves; each move is measured as ``move``, from sending
   it to the server's MOVED;
4. checks the server's verdict against its own board, then swaps its record
   of the game with its opponent, bot to bot through trio_bots, and checks
   that both saw the same game (``check``).

It exits with 0 when every request and check passed, 1 otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

import trio
from _support import Report, address, cli, counter, run_swarm
from game_server import (
    CANCEL,
    CANCELLED,
    FIND,
    FIND_FORMAT,
    HEADER,
    MAX_FRAME,
    MOVE,
    MOVED,
    OVER,
    START,
    START_FORMAT,
    serve,
    winner,
)

import trio_bots
from trio_bots.protocols import framing

DURATION = 5.0  # seconds
BOTS = 20
ROUNDS = 10
THINK_TIME = (0.01, 0.05)  # seconds before each move

# The defaults of `trio-bots run` (its flags win); `size` is the number of bots.
options: dict[str, Any] = {"size": BOTS, "duration": DURATION, "stop_grace": 5.0}


async def worker(bot: trio_bots.Bot) -> None:
    """One player; see the module docstring."""
    host, port = address(
        bot.swarm.host, "game_bots", "start one: python examples/game_server.py --port 7778"
    )
    if bot.swarm.size % 2 and bot.id == bot.swarm.size - 1:
        return  # the odd one out; the step barrier does not wait for ended bots
    stream = await bot.connect_tcp(host, port)
    frames = framing.LengthPrefixed(stream, header=HEADER, max_size=MAX_FRAME)
    for _ in range(ROUNDS):
        await bot.step()
        if bot.stopping.is_set():
            break
        start = await find_match(bot, frames)
        if start is None:
            break  # the run ended while we waited in the lobby
        await play(bot, frames, *start)


async def find_match(
    bot: trio_bots.Bot, frames: framing.LengthPrefixed
) -> tuple[int, int, int] | None:
    """Enter the lobby; return (game id, my mark, opponent id), or None if cancelled."""
    await frames.send(FIND_FORMAT.pack(FIND, bot.id))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancel_at_stop, bot, frames)
        async with bot.measure("match"):  # the wait in the lobby
            frame = await frames.receive()
            started = frame[:1] == bytes([START]) and len(frame) == START_FORMAT.size
            if not started and frame != bytes([CANCELLED]):
                raise trio_bots.ProtocolError(
                    f"expected START or CANCELLED, got {frame[:12].hex()}"
                )
        nursery.cancel_scope.cancel()
    if not started:
        return None
    _, game_id, mark, opponent = START_FORMAT.unpack(frame)
    return game_id, mark, opponent


async def cancel_at_stop(bot: trio_bots.Bot, frames: framing.LengthPrefixed) -> None:
    await bot.stopping.wait()
    await frames.send(bytes([CANCEL]))


async def play(
    bot: trio_bots.Bot, frames: framing.LengthPrefixed, game_id: int, mark: int, opponent: int
) -> None:
    """Play one game to its end, then compare notes with the opponent."""
    board, moves, turn = [0] * 9, [], 1
    result = None
    while result is None:
        if turn == mark:
            await trio.sleep(bot.random.uniform(*THINK_TIME))
            cell = bot.random.choice([i for i in range(9) if not board[i]])
            async with bot.measure("move"):
                await frames.send(bytes([MOVE, cell]))
                frame = await frames.receive()
                if frame != bytes([MOVED, mark, cell]):
                    raise trio_bots.ProtocolError(
                        f"expected MOVED {mark} {cell}, got {frame.hex()}"
                    )
        else:
            frame = await frames.receive()
            if frame[:1] == bytes([OVER]):  # the opponent left the game
                raise trio_bots.ProtocolError(f"game {game_id}: bot {opponent} left the game")
            if len(frame) != 3 or frame[:2] != bytes([MOVED, turn]) or board[frame[2]]:
                raise trio_bots.ProtocolError(f"expected the opponent's MOVED, got {frame.hex()}")
            cell = frame[2]
        board[cell] = turn
        moves.append(cell)
        turn = 3 - turn
        result = winner(board)
    over = await frames.receive()
    bot.count("games played")
    bot.count("moves", len([c for c in moves if board[c] == mark]))
    # Compare notes: the server's verdict, then the opponent's record of the game.
    mine = (game_id, moves, result)
    await bot.send(trio_bots.send_bots([opponent]), mine)
    async with bot.measure("check") as m:
        if over != bytes([OVER, result, 0]):
            m.fail(f"the server's verdict {over.hex()} does not match the board")
        theirs = (await bot.receive(trio_bots.recv_from(opponent))).data
        if theirs != mine:
            m.fail("the two players saw different games")
    if result == mark:
        bot.count("wins")
    elif result == 0:
        bot.count("draws")


async def run(
    *,
    bots: int = BOTS,
    duration: float | None = DURATION,
    host: str | None = None,
    seed: str | None = None,
    handle_sigint: bool = False,
) -> Report:
    """Run the game swarm, with its own game server unless ``host`` is given.

    Example:
        >>> report = trio.run(lambda: run(bots=4, duration=2))
        >>> report.ok
        True
    """
    result, host = await run_swarm(
        worker,
        options,
        serve,
        bots=bots,
        minimum=2,
        duration=duration,
        host=host,
        seed=seed,
        handle_sigint=handle_sigint,
    )
    players = bots - bots % 2
    played = counter(result, "games played")  # each game counts twice: one per player
    wins, draws = counter(result, "wins"), counter(result, "draws")
    report = Report(
        f"game_bots: {bots} bots, up to {ROUNDS} rounds of tic-tac-toe, against {host}",
        result,
        ["match", "move", "check"],
        [
            (
                "games",
                f"{played // 2} in {played // players} rounds: {wins} won, {draws // 2} drawn",
            ),
            ("moves", f"{counter(result, 'moves')} in all"),
        ],
    )
    if played == 0:
        report.problems.append("no game was played")
    if played % 2 or wins + draws // 2 != played // 2:
        report.problems.append("the players' games do not add up")
    return report


if __name__ == "__main__":
    sys.exit(cli(run, options, __doc__))
