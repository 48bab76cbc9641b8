"""The seed's ``server.py`` example on trio_bots: bot 0 serves, bot 1 connects.

Bot 0 listens on a free loopback port and tells bot 1 the port with a
message (the seed hard-coded 1234); bot 1 connects and receives "hello".
Both sockets are owned by their bots and closed when the bots end. It prints:

    process 0: listening on port <port>
    process 1: connected on port <port>
    process 0: connection from ('127.0.0.1', <client port>)
    process 1: received "hello"
"""

import trio

import trio_bots


async def example(bot: trio_bots.Bot) -> None:
    if bot.id == 0:
        listener = await bot.open_tcp_listener(0, "127.0.0.1")
        port = listener.socket.getsockname()[1]
        print(f"process 0: listening on port {port}")
        await bot.send(trio_bots.send_bots([1]), port)
        conn = bot.own(await listener.accept())
        print(f"process 0: connection from {conn.socket.getpeername()}")
        await conn.send_all(b"hello")
    else:
        port = (await bot.receive(trio_bots.recv_from(0))).data
        stream = await bot.connect_tcp("127.0.0.1", port)
        print(f"process 1: connected on port {port}")
        data = b""
        while len(data) < 5:
            chunk = await stream.receive_some()
            if not chunk:
                break
            data += chunk
        print(f'process 1: received "{data.decode()}"')


if __name__ == "__main__":
    trio.run(trio_bots.swarm, example, 2)
