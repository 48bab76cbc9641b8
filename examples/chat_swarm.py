"""Bots chat in rooms through a chat server, then check that nothing got lost.

Run it::

    python examples/chat_swarm.py                     # 50 bots, 3 s, its own server
    python examples/chat_swarm.py --bots 200 --duration 10
    python examples/chat_server.py --port 7777 &      # or against a running server
    python examples/chat_swarm.py --host 127.0.0.1:7777

Each bot:

1. joins the trio_bots group of its room (five bots a room), then the same
   room on the server, measured as ``join``;
2. waits at ``bot.barrier("joined", group=room)`` until every roommate is in
   the room, so that nobody talks before everyone listens;
3. chats until the run's duration is over: each ``SAY`` is measured as
   ``say``, from sending it to getting its own copy back from the server;
4. tells its roommates what it said, bot to bot through trio_bots, not the
   server, and checks that it heard exactly that from each of them, in order
   (measured as ``check``).

It prints a summary and exits with 0 when every request and every check
passed, 1 otherwise. The worker and ``options`` are what ``trio-bots run``
uses: ``trio-bots run examples/chat_swarm.py --host 127.0.0.1:7777``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import trio
from _support import Heard, Report, address, check_heard, cli, counter, run_swarm
from chat_server import serve

import trio_bots
from trio_bots.protocols import framing

DURATION = 3.0  # seconds
BOTS = 50
ROOM_SIZE = 5
CHECK_WAIT = 5.0  # seconds a bot waits for a roommate's last message

# The defaults of `trio-bots run` (its flags win); `size` is the number of bots.
# Each bot says one thing per iteration, at most `iterations` things, with a
# random think time between two of them.
options: dict[str, Any] = {
    "size": BOTS,
    "duration": DURATION,
    "stop_grace": 10.0,
    "iterations": 100,
    "think_time": (0.05, 0.25),
}

WORDS = "hello trio bots chat rooms nursery cancel scope channel barrier".split()


def room_of(bot_id: int) -> str:
    """The room of a bot: five bots a room."""
    return f"room-{bot_id // ROOM_SIZE}"


def roommates(bot: trio_bots.Bot) -> list[int]:
    """The ids of the other bots in this bot's room."""
    first = bot.id - bot.id % ROOM_SIZE
    return [i for i in range(first, min(first + ROOM_SIZE, bot.swarm.size)) if i != bot.id]


async def worker(bot: trio_bots.Bot) -> None:
    """One chatting bot; see the module docstring."""
    host, port = address(
        bot.swarm.host, "chat_swarm", "start one: python examples/chat_server.py --port 7777"
    )
    room, me = room_of(bot.id), f"bot{bot.id}"
    # Join the group before the first await: a roommate cannot pass the
    # barrier below without this bot, however the bots are scheduled.
    bot.join(room)
    lines = framing.Lines(await bot.connect_tcp(host, port))
    async with bot.measure("join") as m:
        await lines.send(f"NICK {me}".encode())
        await lines.send(f"JOIN {room}".encode())
        for expected in (f"OK NICK {me}", f"JOINED {room} "):
            reply = (await lines.receive()).decode()
            if not reply.startswith(expected):
                m.fail(f"expected {expected!r}, got {reply[:60]!r}")
    await bot.barrier("joined", group=room)

    heard = Heard()
    echo_send, echo_receive = trio.open_memory_channel[str](1)  # one SAY at a time
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listen, bot, lines, me, heard, echo_send)
        said = await chat(bot, lines, me, echo_receive)
        await bot.send(trio_bots.send_group(room), said)
        for mate in roommates(bot):
            their_said = (await bot.receive(trio_bots.recv_from(mate))).data
            if await check_heard(bot, heard, f"bot{mate}", their_said, wait=CHECK_WAIT):
                bot.count("checks passed")
        nursery.cancel_scope.cancel()


async def listen(
    bot: trio_bots.Bot,
    lines: framing.Lines,
    me: str,
    heard: Heard,
    echoes: trio.MemorySendChannel[str],
) -> None:
    """Read the server's lines: our own messages come back as echoes."""
    async with echoes:  # closed at EOF, so that a waiting `say` fails, not hangs
        async for raw in lines:
            line = raw.decode()
            kind, _, rest = line.partition(" ")
            if kind != "MSG" or rest.count(" ") < 2:
                raise trio_bots.ProtocolError(f"expected 'MSG room sender text', got {line[:60]!r}")
            _room, sender, text = rest.split(" ", 2)
            if sender == me:
                try:
                    echoes.send_nowait(text)
                except trio.WouldBlock:
                    raise trio_bots.ProtocolError(f"unexpected echo of {text[:40]!r}") from None
            else:
                heard.add(sender, text)
                bot.count("messages received")


async def chat(
    bot: trio_bots.Bot, lines: framing.Lines, me: str, echoes: trio.MemoryReceiveChannel[str]
) -> list[str]:
    """Say one thing per iteration until the stop; return what was said."""
    said: list[str] = []
    async for _ in bot.iterations():
        text = f"#{len(said)} from {me}: {' '.join(bot.random.choices(WORDS, k=3))}"
        async with bot.measure("say") as m:
            await lines.send(f"SAY {text}".encode())
            echo = await echoes.receive()
            if echo != text:
                m.fail("the server changed a message")
        said.append(text)
        bot.count("messages sent")
    return said


async def run(
    *,
    bots: int = BOTS,
    duration: float | None = DURATION,
    host: str | None = None,
    seed: str | None = None,
    handle_sigint: bool = False,
) -> Report:
    """Run the chat swarm, with its own chat server unless ``host`` is given.

    Example:
        >>> report = trio.run(lambda: run(bots=10, duration=1))
        >>> report.ok
        True
    """
    result, host = await run_swarm(
        worker,
        options,
        serve,
        bots=bots,
        duration=duration,
        host=host,
        seed=seed,
        handle_sigint=handle_sigint,
    )
    rooms = math.ceil(bots / ROOM_SIZE)
    sizes = [min(ROOM_SIZE, bots - r * ROOM_SIZE) for r in range(rooms)]
    expected_checks = sum(n * (n - 1) for n in sizes)  # each bot checks each roommate
    passed = counter(result, "checks passed")
    sent, received = counter(result, "messages sent"), counter(result, "messages received")
    report = Report(
        f"chat_swarm: {bots} bots in {rooms} rooms of {ROOM_SIZE}, against {host}",
        result,
        ["join", "say", "check"],
        [
            ("messages", f"{sent} sent, {received} received by roommates"),
            ("checks", f"{passed} of {expected_checks} roommates heard in full and in order"),
        ],
    )
    if sent == 0:
        report.problems.append("no message was sent")
    if passed != expected_checks:
        report.problems.append(f"{expected_checks - passed} roommate checks failed or never ran")
    return report


if __name__ == "__main__":
    sys.exit(cli(run, options, __doc__))
