"""Bots send WebSocket messages to an echo server and check every echo.

Run it::

    python examples/websocket_bots.py                         # 20 bots, 3 s, its own server
    python examples/websocket_bots.py --host 127.0.0.1:8765   # or a running echo server

The server is written with the ``trio-websocket`` package: it echoes every
message on ``/echo`` and rejects other paths with 404. Run it on its own with
``python examples/websocket_bots.py --serve 8765``.

Each bot opens one connection with `trio_bots.protocols.websocket`, then
sends text and binary messages of random sizes until the stop. Each round
trip is measured as ``echo`` and the echo must be the message, byte for byte.
It exits with 0 when every request and check passed, 1 otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

import trio
import trio_websocket
from _support import Report, address, cli, counter, run_swarm, server_main

import trio_bots
from trio_bots.protocols import websocket

DURATION = 3.0  # seconds
BOTS = 20
MAX_SIZE = 4096  # bytes or characters in a message

# The defaults of `trio-bots run` (its flags win); `size` is the number of bots.
# One message per iteration.
options: dict[str, Any] = {
    "size": BOTS,
    "duration": DURATION,
    "stop_grace": 5.0,
    "iterations": 10_000,
    "think_time": (0.0, 0.01),
}


async def echo(request: trio_websocket.WebSocketRequest) -> None:
    """The server's handler: echo every message on /echo, 404 elsewhere."""
    if request.path != "/echo":
        await request.reject(404, body=b"try /echo\n")
        return
    ws = await request.accept()
    try:
        while True:
            await ws.send_message(await ws.get_message())
    except trio_websocket.ConnectionClosed:
        pass


async def serve(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the echo server on (host, port) until cancelled; ``nursery.start`` gives the port.

    Example:
        >>> async def main():
        ...     async with trio.open_nursery() as nursery:
        ...         port = await nursery.start(serve)
        ...         nursery.cancel_scope.cancel()
        >>> trio.run(main)
    """
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: trio_websocket.serve_websocket(
                echo, host, port, None, max_message_size=4 * MAX_SIZE, task_status=task_status
            )
        )
        task_status.started(server.port)


async def worker(bot: trio_bots.Bot) -> None:
    """One bot; see the module docstring."""
    address(
        bot.swarm.host,
        "websocket_bots",
        "start one: python examples/websocket_bots.py --serve --port 8765",
    )
    async with await websocket.connect(bot, f"ws://{bot.swarm.host}/echo") as ws:
        async for it in bot.iterations():
            i = it.index
            size = bot.random.randrange(1, MAX_SIZE)
            message: str | bytes = (
                bot.random.randbytes(size) if i % 2 else f"{bot.id}:{i}:".ljust(size, "é")
            )
            async with bot.measure("echo") as m:
                await ws.send(message)
                reply = await ws.receive()
                if reply != message:
                    m.fail("the echo differs from the message")
                    bot.count("wrong echoes")
            bot.count("messages")


async def run(
    *,
    bots: int = BOTS,
    duration: float | None = DURATION,
    host: str | None = None,
    seed: str | None = None,
    handle_sigint: bool = False,
) -> Report:
    """Run the WebSocket swarm, with its own echo server unless ``host`` is given.

    Example:
        >>> report = trio.run(lambda: run(bots=4, duration=1))
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
    messages = counter(result, "messages")
    report = Report(
        f"websocket_bots: {bots} bots against the echo server at {host}",
        result,
        ["WS connect /echo", "echo"],
        [("messages", f"{messages} echoed, {counter(result, 'wrong echoes')} wrong")],
    )
    if messages == 0:
        report.problems.append("no message was echoed")
    return report


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:  # python examples/websocket_bots.py --serve [--port P]
        sys.exit(server_main("A WebSocket echo server on /echo.", serve, 8765, sys.argv[2:]))
    sys.exit(cli(run, options, __doc__))
