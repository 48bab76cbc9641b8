"""Load shapes on trio_bots: a closed-model ramp, then the open model with CO correction.

An embedded echo server on a free loopback port pauses once for 0.5 s. The
closed model (stages) hides most of that pause: bots simply wait. The open
model (rate=) keeps the arrivals coming on schedule, so the corrected p99
shows the stall while the raw p99 does not.

Run it: ``python examples/load_shapes.py``
"""

from __future__ import annotations

import functools

import trio

import trio_bots


async def echo_server(port_out: list[int], pause_at: float, task_status=trio.TASK_STATUS_IGNORED):
    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            async for data in stream:
                if pause_at <= trio.current_time() < pause_at + 0.5:
                    await trio.sleep_until(pause_at + 0.5)  # the stall
                await stream.send_all(data)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port_out.append(listeners[0].socket.getsockname()[1])
    task_status.started()
    await trio.serve_listeners(handle, listeners)


def make_worker(port: int):
    async def worker(bot: trio_bots.Bot) -> None:
        stream = await bot.connect_tcp("127.0.0.1", port)
        async for it in bot.iterations():
            with it:
                async with bot.measure("echo"):
                    await stream.send_all(b"ping")
                    await stream.receive_some(64)

    return worker


async def main() -> None:
    async with trio.open_nursery() as nursery:
        port: list[int] = []
        await nursery.start(echo_server, port, trio.current_time() + 2.5)
        worker = make_worker(port[0])

        closed = await trio_bots.swarm(
            worker, 0, stages=[(1, 20), (3, 20), (1, 0)], think_time=0.1, stop_grace=1
        )
        print("closed model (stages 0 -> 20 -> 0 bots, 0.1 s think time):")
        show(closed)
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        port = []
        await nursery.start(echo_server, port, trio.current_time() + 2.5)
        run = functools.partial(
            trio_bots.swarm, make_worker(port[0]), 4, rate=200, duration=5, max_bots=8
        )
        open_result = await run()
        print("open model (200 arrivals/s, at most 8 bots):")
        show(open_result)
        nursery.cancel_scope.cancel()


def show(result: trio_bots.SwarmResult) -> None:
    stats = result.stats["echo"]
    print(
        f"  requests {stats.count}, failures {stats.failure_count}, "
        f"dropped arrivals {result.dropped_arrivals}\n"
        f"  p99 corrected {stats.percentile(99) * 1000:.1f} ms, "
        f"raw {stats.raw.percentile(99) * 1000:.1f} ms, max {stats.max * 1000:.1f} ms"
    )


if __name__ == "__main__":
    trio.run(main)
