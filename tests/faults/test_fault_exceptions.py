"""Exceptions of every kind inside a bot: each cancels the swarm, leaves swarm() as itself
(never inside a group), and leaves nothing the bots owned open."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from _faults import PYTHON, Entered, check_reports, child_env
from _leaks import open_fds

import trio_bots

SCENARIOS = Path(__file__).parent / "scenarios"


class Custom(BaseException):
    """Neither an Exception nor one of Python's own BaseExceptions."""


KINDS: dict[str, Any] = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": lambda: SystemExit(7),
    "GeneratorExit": GeneratorExit,
    "Custom": Custom,
}


class Owned:
    def __init__(self, closed: list[int], bot_id: int) -> None:
        self.closed, self.bot_id = closed, bot_id

    async def aclose(self) -> None:
        self.closed.append(self.bot_id)


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("raisers", [1, 2], ids=["one-bot", "two-bots-at-once"])
def test_a_bot_base_exception_leaves_swarm_as_itself(kind: str, backend: str, raisers: int) -> None:
    entered = Entered()
    closed: list[int] = []
    fds = open_fds()

    async def worker(bot: trio_bots.Bot) -> None:
        bot.own(Owned(closed, bot.id))
        listener = await bot.open_tcp_listener()
        await bot.connect_tcp("127.0.0.1", listener.socket.getsockname()[1])
        await bot.barrier("connected")
        if bot.id < raisers:
            await anyio.sleep(0.05)  # the others are inside measure() by now
            raise KINDS[kind]()
        while True:
            async with entered.measure(bot, "tick"):
                await anyio.sleep(0.01)

    swarms: list[trio_bots.Swarm] = []

    async def main() -> None:
        with anyio.fail_after(10):
            async with trio_bots.open_swarm(worker, 8) as running:
                swarms.append(running)

    with pytest.raises(BaseException) as caught:
        anyio.run(main, backend=backend)
    assert type(caught.value) is type(KINDS[kind]())  # itself, not a group
    assert sorted(closed) == list(range(8))
    assert open_fds() == fds  # every listener and stream the bots opened is closed
    result = swarms[0].result
    assert result is not None and result.bots_finished == 8
    # each bot that did not raise was inside one measure() when the swarm was cancelled
    assert entered.check(result)["tick"][3] == 8 - raisers


@pytest.mark.parametrize(
    ("kind", "code"),
    [("KeyboardInterrupt", 130), ("SystemExit", 7), ("GeneratorExit", 3), ("Custom", 3)],
)
def test_the_cli_maps_a_bots_base_exception_to_its_exit_code(
    tmp_path: Path, kind: str, code: int
) -> None:
    json_path = tmp_path / "run.json"
    proc = subprocess.run(
        [PYTHON, "-m", "trio_bots.cli", "run", "raises.py", "-q", "--json", str(json_path)],
        capture_output=True,
        text=True,
        cwd=SCENARIOS,
        env=child_env(FAULT_RAISE=kind),
        timeout=60,
    )
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"a bot raised {kind}" in proc.stderr
    doc = check_reports(json_path)
    tick = doc["stats"]["tick"]
    assert tick["count"] > 0 and tick["failure_count"] == 0
    assert tick["cancelled"] == 5  # the five other bots were each inside one measure()
    assert json.loads(json_path.read_text())["run"]["bots_finished"] == 6
