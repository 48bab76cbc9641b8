"""A scenario for a loopback line-echo server at --host: each bot measures "x", one line
sent and its echo read, until stopped (tests/test_cli_abort.py)."""

options = {"size": 4, "duration": 60, "stop_grace": 2}


async def worker(bot):
    host, _, port = bot.swarm.host.rpartition(":")
    stream = await bot.connect_tcp(host, int(port))
    while not bot.stopping.is_set():
        async with bot.measure("x"):
            await stream.send_all(b"ping\n")
            if not await stream.receive_some():
                raise ConnectionError("the server closed the connection")
