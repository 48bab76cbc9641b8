"""For the signal tests: $FAULT_PHASE says where the test sends its signals.

- "ramp": bots arrive over 20 s; bot 0 says "ready" at once.
- "grace": the bots ignore the graceful stop and keep measuring; "stopping" at the stop.
- "reports": the run ends by itself after 0.5 s; "writing" when the JSON report starts,
  which then takes 1.5 s (write_json is wrapped here), so signals land inside it.

Every measure() block is counted first under the counter "entered:tick".
"""

import os
import sys
import time

import anyio

import trio_bots.report

PHASE = os.environ["FAULT_PHASE"]

options = {
    "ramp": {"size": 0, "stages": [(20, 40)], "stop_grace": 0.5},
    "grace": {"size": 4, "stop_grace": 60},
    "reports": {"size": 4, "duration": 0.5, "stop_grace": 0.5},
}[PHASE]

if PHASE == "reports":
    _write_json = trio_bots.report.write_json

    def _slow_write_json(run, path):
        print("writing", flush=True)
        time.sleep(1.5)
        return _write_json(run, path)

    trio_bots.report.write_json = _slow_write_json


async def worker(bot):
    await anyio.sleep(0.3)  # the swarm's signal task installs its handlers first
    if bot.id == 0:
        print("ready", flush=True)
    said = False
    while PHASE == "grace" or not bot.stopping.is_set():
        if bot.stopping.is_set() and bot.id == 0 and not said:
            print("stopping", flush=True)
            said = True
        bot.count("entered:tick")
        async with bot.measure("tick"):
            await anyio.sleep(0.01)
    sys.stdout.flush()
