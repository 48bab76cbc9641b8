"""The seed's ``system.py`` example on trio_bots: 4 bots in 2 groups.

Bots 0 and 1 join group 0, bots 2 and 3 join group 1. After a step (the
seed's ``yield``), bots 0 and 2 send "Hello" to their group and report the
receivers; bots 1 and 3 print the message and its sender. It prints:

    process 0: sent "Hello" to process 1
    process 2: sent "Hello" to process 3
    process 1: received "Hello" from process 0
    process 3: received "Hello" from process 2

(in an order trio chooses, except that each receipt follows its send).
"""

import trio

import trio_bots


async def example(bot: trio_bots.Bot) -> None:
    my_group = bot.id // 2
    bot.join(my_group)
    # Necessary to let all bots join the groups before the next step.
    await bot.step()
    if bot.id % 2 == 0:
        # send_nowait is synchronous, like the seed's send: nothing runs in between.
        for receiver in bot.send_nowait(trio_bots.send_group(my_group), "Hello"):
            print(f'process {bot.id}: sent "Hello" to process {receiver}')
    else:
        while not bot.has_message(trio_bots.recv_all()):
            await bot.step()
        for msg in bot.recv(trio_bots.recv_all()):
            print(f'process {bot.id}: received "{msg.data}" from process {msg.sender}')


if __name__ == "__main__":
    trio.run(trio_bots.swarm, example, 4)
