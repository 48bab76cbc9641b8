"""Takes its time to import: for Ctrl-C before the swarm starts."""

import time

print("importing", flush=True)
time.sleep(30)


async def worker(bot):
    pass
