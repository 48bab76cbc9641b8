"""The tutorial's bots: they chat in rooms of five on the example chat server.

Used by docs/tutorial.md, as a module and as a ``trio-bots run`` scenario.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import trio_bots
from trio_bots.protocols import framing

# The example server lives in examples/, next to docs/.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from chat_server import ChatServer, serve

__all__ = ["ROOM_SIZE", "handler", "options", "room_of", "serve", "worker"]

ROOM_SIZE = 5

# The defaults of `trio-bots run chatbots.py` (its flags win).
options: dict[str, Any] = {"size": 20, "iterations": 5, "think_time": 0.1}


def room_of(bot: trio_bots.Bot) -> str:
    return f"room-{bot.id // ROOM_SIZE}"


async def worker(bot: trio_bots.Bot) -> None:
    """Join a room, wait for every roommate, then say hello a few times."""
    room, me = room_of(bot), f"bot{bot.id}"
    bot.join(room)  # a trio_bots group: this bot's roommates
    host, port = bot.swarm.host.rsplit(":", 1)
    lines = framing.Lines(await bot.connect_tcp(host, int(port)))

    async with bot.measure("join") as m:
        await lines.send(f"NICK {me}".encode())
        await lines.send(f"JOIN {room}".encode())
        replies = [(await lines.receive()).decode() for _ in range(2)]
        if not replies[1].startswith(f"JOINED {room}"):
            m.fail(f"expected JOINED {room}, got {replies[1]!r}")

    # Nobody talks before everyone listens: wait for the whole room.
    await bot.barrier("joined", group=room)

    async for it in bot.iterations():
        with it:  # an exception here fails this iteration, not the bot
            async with bot.measure("say"):
                await lines.send(f"SAY hello {it.index}".encode())
                # The server sends every message to the whole room, the sender
                # included: "say" lasts until our own line comes back.
                while not (await lines.receive()).decode().startswith(f"MSG {room} {me} "):
                    pass


async def handler(stream: Any) -> None:
    """For ``trio-bots run --serve``: one chat server for the whole run."""
    await SERVER.handle(stream)


SERVER = ChatServer()
