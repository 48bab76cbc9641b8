"""A tic-tac-toe lobby on trio, over a length-prefixed binary protocol.

Every message is one frame: a 2-byte big-endian length, then the payload,
whose first byte says what it is (`trio_bots.protocols.framing.LengthPrefixed`
with ``header="!H"`` reads and writes them). Numbers are big-endian.

=========  ====  ======================================  ====================================
message    byte  then                                    meaning
=========  ====  ======================================  ====================================
FIND       0x01  u32 player id                           client: put me in the lobby
MOVE       0x02  u8 cell (0-8, row by row)               client: my move
CANCEL     0x03                                          client: leave the lobby
START      0x81  u32 game id, u8 mark, u32 opponent id   matched: mark 1 (X) moves first, 2 (O)
MOVED      0x82  u8 mark, u8 cell                        a move, sent to both players
OVER       0x83  u8 winner (0 draw, 1 X, 2 O), u8 how    how: 0 on the board, 1 opponent left
CANCELLED  0x84                                          out of the lobby, not matched
ERROR      0x85  UTF-8 text                              a bad message; the connection stays
=========  ====  ======================================  ====================================

The lobby matches players two by two, in the order they sent FIND. A CANCEL
from a player who was already matched does nothing: the START is on its way.

Run it on its own, or embed it in a trio program:

    python examples/game_server.py --port 7778

    >>> import trio
    >>> async def main():
    ...     async with trio.open_nursery() as nursery:
    ...         port = await nursery.start(serve)
    ...         print(port > 0)
    ...         nursery.cancel_scope.cancel()
    >>> trio.run(main)
    True
"""

from __future__ import annotations

import itertools
import struct
import sys

import trio
from _support import ServerScript

from trio_bots import ProtocolError
from trio_bots.protocols import framing

HEADER = "!H"  # the frame length: 2 bytes, big endian
MAX_FRAME = 256

FIND, MOVE, CANCEL = 0x01, 0x02, 0x03
START, MOVED, OVER, CANCELLED, ERROR = 0x81, 0x82, 0x83, 0x84, 0x85
START_FORMAT = struct.Struct("!BIBI")  # START, game id, mark, opponent id
FIND_FORMAT = struct.Struct("!BI")  # FIND, player id

LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


def winner(board: list[int]) -> int | None:
    """The winner's mark (1 or 2), 0 for a draw, None while the game goes on.

    Example:
        >>> winner([1, 1, 1, 2, 2, 0, 0, 0, 0]), winner([0] * 9)
        (1, None)
    """
    for a, b, c in LINES:
        if board[a] and board[a] == board[b] == board[c]:
            return board[a]
    return None if 0 in board else 0


class _Player:
    __slots__ = ("frames", "game", "id", "lock", "mark")

    def __init__(self, frames: framing.LengthPrefixed) -> None:
        self.frames = frames
        self.lock = trio.Lock()  # two games' handlers may write to one player
        self.id = 0
        self.game: _Game | None = None
        self.mark = 0

    async def send(self, frame: bytes) -> None:
        try:
            async with self.lock:
                await self.frames.send(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # its own handler notices and cleans up


class _Game:
    __slots__ = ("board", "id", "players", "turn")

    def __init__(self, game_id: int, x: _Player, o: _Player) -> None:
        self.id = game_id
        self.players = (x, o)
        self.board = [0] * 9
        self.turn = 1


class GameServer:
    """The lobby and the games; `serve` runs one on a TCP port.

    Attributes:
        games: how many games started.
        finished: how many games ended, on the board or by a forfeit.

    Example:
        >>> server = GameServer()
        >>> server.games, server.finished
        (0, 0)
    """

    def __init__(self) -> None:
        self.games = 0
        self.finished = 0
        self._waiting: _Player | None = None
        self._ids = itertools.count(1)

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until the player leaves.

        Example:
            >>> import trio.testing
            >>> async def main():
            ...     player, stream = trio.testing.memory_stream_pair()
            ...     frames = framing.LengthPrefixed(player, header=HEADER)
            ...     await frames.send(bytes([MOVE, 4]))
            ...     await player.send_eof()  # the player leaves after its move
            ...     await GameServer().handle(stream)  # returns when the player left
            ...     print(await frames.receive())
            >>> trio.run(main)
            b'\\x85not in a game; send FIND first'
        """
        player = _Player(framing.LengthPrefixed(stream, header=HEADER, max_size=MAX_FRAME))
        try:
            async for frame in player.frames:
                await self._dispatch(player, frame)
        except (ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # a frame too long or cut off, or a vanished player: drop the connection
        finally:
            with trio.CancelScope(shield=True):
                await self._gone(player)
                await trio.aclose_forcefully(stream)

    async def _dispatch(self, player: _Player, frame: bytes) -> None:
        kind = frame[0] if frame else None
        if kind == FIND and len(frame) == FIND_FORMAT.size:
            await self._find(player, FIND_FORMAT.unpack(frame)[1])
        elif kind == MOVE and len(frame) == 2:
            await self._move(player, frame[1])
        elif kind == CANCEL and len(frame) == 1:
            if self._waiting is player:
                self._waiting = None
                await player.send(bytes([CANCELLED]))
        else:
            await player.send(_error(f"unknown or malformed message {frame[:8].hex()!r}"))

    async def _find(self, player: _Player, player_id: int) -> None:
        if player.game is not None or self._waiting is player:
            await player.send(_error("already in the lobby or in a game"))
            return
        player.id = player_id
        opponent, self._waiting = self._waiting, None
        if opponent is None:
            self._waiting = player
            return
        self.games += 1
        game = _Game(next(self._ids), opponent, player)
        for mark, (me, them) in enumerate(((opponent, player), (player, opponent)), start=1):
            me.game, me.mark = game, mark
            await me.send(START_FORMAT.pack(START, game.id, mark, them.id))

    async def _move(self, player: _Player, cell: int) -> None:
        game = player.game
        if game is None:
            await player.send(_error("not in a game; send FIND first"))
        elif game.turn != player.mark:
            await player.send(_error("not your turn; wait for your opponent's MOVED"))
        elif cell > 8 or game.board[cell]:
            await player.send(_error(f"cell {cell} is not free; cells are 0 to 8"))
        else:
            game.board[cell] = player.mark
            game.turn = 3 - player.mark
            for p in game.players:
                await p.send(bytes([MOVED, player.mark, cell]))
            result = winner(game.board)
            if result is not None:
                await self._end(game, result, how=0)

    async def _end(self, game: _Game, result: int, *, how: int) -> None:
        self.finished += 1
        for p in game.players:
            if p.game is game:
                p.game = None
                await p.send(bytes([OVER, result, how]))

    async def _gone(self, player: _Player) -> None:
        if self._waiting is player:
            self._waiting = None
        game = player.game
        if game is not None:
            player.game = None
            await self._end(game, 3 - player.mark, how=1)


def _error(text: str) -> bytes:
    return bytes([ERROR]) + text.encode()


script = ServerScript(GameServer, "A tic-tac-toe lobby, binary protocol.", 7778)
serve = script.serve  # serve(port=0, host="127.0.0.1", *, server=None, task_status=...)


if __name__ == "__main__":
    sys.exit(script.main())
