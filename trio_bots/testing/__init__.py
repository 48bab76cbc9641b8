"""Simulation mode: bots against an in-process server over a simulated network.

When the server under test is a trio program, run it in the same event loop
as the bots, connect them over a `Network`, and drive it all with
``trio.testing.MockClock(autojump_threshold=0)``: minutes of a run take
seconds, and a seeded run replays exactly. See docs/testing.md.

A leaf: it imports nothing of the engine; the swarm reaches a `Network`
through its ``network=`` option.

Example:
    >>> import trio, trio_bots
    >>> from trio_bots.testing import Network
    >>> async def greet(stream):
    ...     await stream.send_all(b"hello")
    >>> async def worker(bot):
    ...     stream = await bot.connect_tcp("server.test", 1234)
    ...     print(await stream.receive_some())
    >>> async def main():
    ...     net = Network(latency=0.05)
    ...     async with net.serve(greet, "server.test", 1234):
    ...         await trio_bots.swarm(worker, 1, network=net)
    >>> trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    b'hello'
"""

from ._network import Network as Network
from ._network import NetworkStatistics as NetworkStatistics
from ._stream import BUFFER as BUFFER
from ._stream import SimulatedStream as SimulatedStream

for _name in ("Network", "NetworkStatistics", "SimulatedStream"):
    globals()[_name].__module__ = __name__
del _name

__all__ = ["BUFFER", "Network", "NetworkStatistics", "SimulatedStream"]
