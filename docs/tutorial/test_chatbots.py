"""The tutorial's pytest file: run it with ``pytest docs/tutorial/test_chatbots.py``."""

import chatbots
import pytest
import trio

from trio_bots.testing import Network


@pytest.mark.trio
async def test_the_rooms_chat(swarm_runner):
    async with trio.open_nursery() as nursery:
        port = await nursery.start(chatbots.serve)  # the example chat server, on a free port
        with trio.fail_after(30):
            result = await swarm_runner(
                chatbots.worker,
                10,
                host=f"127.0.0.1:{port}",
                iterations=5,
                thresholds=["failure_rate == 0", "count(say) == 50"],
            )
        nursery.cancel_scope.cancel()
    assert result.stats["join"].count == 10


@pytest.mark.trio
async def test_an_hour_of_chat_in_virtual_time(autojump_clock, swarm_runner):
    net = Network(latency=0.05)
    with trio.fail_after(7200):  # virtual seconds: it stops a hang without waiting for it
        async with net.serve(chatbots.handler, "chat.test", 7777):
            result = await swarm_runner(
                chatbots.worker,
                10,
                host="chat.test:7777",
                network=net,
                think_time=60,
                iterations=61,
            )
    assert result.stats["say"].count == 610
    assert round(result.stats["say"].min, 3) == 0.1  # a round trip is two latencies
