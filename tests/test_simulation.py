"""Simulation mode in the engine: network=, no real sockets, seeded replays, trio's scheduler."""

from __future__ import annotations

import functools
import inspect
import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
import trio.testing
import trustme
from _services import EXAMPLES

import trio_bots
from trio_bots import ConfigError, ConnectError, SwarmAborted
from trio_bots._core import scheduler
from trio_bots.testing import Network, SimulatedStream

# isort: off
import chat_server  # examples/, put on sys.path by _services
import chat_swarm

# isort: on


def virtual(fn: Any, *args: Any) -> Any:
    async def bounded() -> Any:
        with trio.fail_after(3600):  # virtual seconds
            return await fn(*args)

    return trio.run(bounded, clock=trio.testing.MockClock(autojump_threshold=0))


async def echo(stream: SimulatedStream) -> None:
    async for data in stream:
        await stream.send_all(data)


async def ping(bot: trio_bots.Bot) -> None:
    stream = await bot.connect_tcp("echo.test", 7)
    async with bot.measure("ping"):
        await stream.send_all(b"ping")
        assert await stream.receive_some() == b"ping"


def test_bots_connect_over_the_network_and_own_their_streams() -> None:
    seen: list[Any] = []

    async def worker(bot: trio_bots.Bot) -> None:
        await ping(bot)
        seen.extend(bot.owned)

    async def main() -> trio_bots.SwarmResult:
        net = Network(latency=0.005)
        async with net.serve(echo, "echo.test", 7):
            result = await trio_bots.swarm(worker, 20, network=net)
            await trio.sleep(0.1)  # the handlers see the EOF and return
            assert net.statistics().open == 0  # every bot closed its stream
            assert net.statistics().connects == 20
        return result

    result = virtual(main)
    assert result.stats["ping"].count == 20
    assert result.stats["ping"].mean == pytest.approx(0.010)
    assert all(type(s) is SimulatedStream for s in seen)
    assert result.to_dict()["run"]["options"]["network"] == (
        "Network(latency=0.005, jitter=0.0, seed=None)"
    )


def test_an_unserved_address_is_a_connect_error_never_a_real_socket() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        with pytest.raises(ConnectError, match="nothing serves it on the simulated network"):
            await bot.connect_tcp("127.0.0.1", 1)

    result = virtual(lambda: trio_bots.swarm(worker, 1, network=Network()))
    assert result.bot_failures == []


def test_no_real_socket_is_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Any] = []

    def no_sockets(*args: Any, **kwargs: Any) -> None:
        opened.append(args)
        raise AssertionError("a real socket was opened in simulation mode")

    async def worker(bot: trio_bots.Bot) -> None:
        await ping(bot)
        with pytest.raises(ConnectError):
            await bot.connect_tcp("localhost", 80)  # no fallback to a real connect

    async def main() -> trio_bots.SwarmResult:
        net = Network(latency=0.001)
        async with net.serve(echo, "echo.test", 7):
            # Patched inside the run: trio's own wakeup socketpair exists already.
            with monkeypatch.context() as patch:
                patch.setattr(socket, "socket", no_sockets)
                patch.setattr(socket, "socketpair", no_sockets)
                return await trio_bots.swarm(worker, 10, network=net, duration=5)

    result = virtual(main)
    assert opened == []
    assert result.bot_failures == [] and result.stats["ping"].count == 10


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda bot: bot.connect_udp("127.0.0.1", 53), "UDP .* does not go over the simulated"),
        (lambda bot: bot.open_tcp_listener(), "a TCP listener .* serve with net.serve"),
    ],
)
def test_udp_and_listeners_refuse_with_a_network(call: Any, message: str) -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        await call(bot)

    with pytest.raises(SwarmAborted) as caught:
        virtual(lambda: trio_bots.swarm(worker, 1, network=Network()))
    assert isinstance(caught.value.__cause__, ConfigError)
    assert caught.value.__cause__.args[0].count("\n") == 0
    with pytest.raises(ConfigError, match=message):
        raise caught.value.__cause__


def test_network_on_asyncio_is_a_config_error_before_any_bot_starts() -> None:
    started: list[int] = []

    async def worker(bot: trio_bots.Bot) -> None:
        started.append(bot.id)

    with pytest.raises(ConfigError, match=r"network= \(simulation mode\) needs trio"):
        anyio.run(lambda: trio_bots.swarm(worker, 3, network=Network()), backend="asyncio")
    assert started == []


def test_a_bad_network_option_says_what_it_wants() -> None:
    async def main() -> None:
        await trio_bots.swarm(ping, 1, network="127.0.0.1")

    with pytest.raises(ConfigError, match=r"network must be an object such as trio_bots\.testing"):
        trio.run(main)


def test_tls_over_the_network_is_a_real_ssl_stream() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("secure.test").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def tls_echo(stream: SimulatedStream) -> None:
        tls = trio.SSLStream(stream, server_context, server_side=True)
        try:
            async for data in tls:
                await tls.send_all(data)
        except trio.BrokenResourceError:
            pass  # the client closed without close_notify (https_compatible)

    kinds: list[str] = []

    async def worker(bot: trio_bots.Bot) -> None:
        stream = await bot.connect_tcp("secure.test", 443, ssl_context=client_context)
        kinds.append(type(stream).__name__)
        await stream.send_all(b"secret")
        assert await stream.receive_some() == b"secret"

    async def main() -> None:
        net = Network(latency=0.01)
        async with net.serve(tls_echo, "secure.test", 443):
            await trio_bots.swarm(worker, 2, network=net)

    virtual(main)
    assert kinds == ["SSLStream", "SSLStream"]


# -- reproducibility


def _chat_run(seed: int | str | None, *, bots: int = 20, duration: float = 20.0) -> Any:
    """The chat example in virtual time, over a network with latency and jitter."""

    async def main() -> dict[str, Any]:
        net = Network(latency=0.01, jitter=0.02)
        server = chat_server.ChatServer()
        options = {k: v for k, v in chat_swarm.options.items() if k != "size"}
        async with net.serve(server.handle, "chat.test", 7777):
            result = await trio_bots.swarm(
                chat_swarm.worker,
                bots,
                **{**options, "duration": duration, "host": "chat.test:7777"},
                network=net,
                seed=seed,
            )
        data = result.to_dict()
        data["server_messages"] = server.messages
        return data

    return virtual(main)


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON-like values differ, field by field."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                found.append(f"{path}.{key}: only in one")
            else:
                found += _differences(a[key], b[key], f"{path}.{key}")
        if list(a) != list(b):
            found.append(f"{path}: keys in another order")
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r:.60} != {b!r:.60}"]


def test_a_seeded_run_replays_field_by_field() -> None:
    first, second, other = _chat_run(11), _chat_run(11), _chat_run(12)
    assert first["metrics"]["names"]["say"]["count"] > 500  # a busy run, not a trivial one
    # Only the wall-clock field may differ.
    assert [d for d in _differences(first, second) if not d.startswith(".run.started_wall")] == []
    first["run"].pop("started_wall")
    second["run"].pop("started_wall")
    assert json.dumps(first) == json.dumps(second)  # the same order of keys, too
    assert _differences(first, other) != []  # the seed decides it


REPLAY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    sys.path.insert(0, sys.argv[2])
    from test_simulation import _chat_run
    data = _chat_run(5, bots=10, duration=10.0)
    data["run"].pop("started_wall")
    print(json.dumps(data))
    """
)


def test_two_processes_replay_the_same_run() -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    here = str(Path(__file__).parent)
    runs = [
        subprocess.run(
            [sys.executable, "-c", REPLAY_SCRIPT, here, str(EXAMPLES)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    assert json.loads(runs[0])["metrics"]["names"]["say"]["count"] > 100
    assert runs[0] == runs[1]


def test_the_swarm_seed_reaches_the_network_jitter() -> None:
    async def main(seed: int) -> list[float]:
        net = Network(latency=0.01, jitter=0.05)  # no seed of its own: the swarm's
        async with net.serve(echo, "echo.test", 7):
            result = await trio_bots.swarm(ping, 20, network=net, seed=seed)
        return [b["hist"] for b in result.to_dict()["metrics"]["timeline"]]

    assert virtual(main, 1) == virtual(main, 1)
    assert virtual(main, 1) != virtual(main, 2)


# -- trio's private scheduler API (pinned in pyproject.toml)


async def _scheduler_trace() -> tuple[tuple[int, int], ...]:
    trace: list[tuple[int, int]] = []

    async def tracer(name: int) -> None:
        for i in range(20):
            trace.append((name, i))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for name in range(5):
            nursery.start_soon(tracer, name)
    return tuple(trace)


def test_trios_private_scheduler_api_is_still_there() -> None:
    """If this fails, trio changed what seeded swarms rely on: see trio_bots/_core/scheduler.py."""
    module, rng = scheduler.trio_scheduler()
    source = inspect.getsource(module)
    assert f"if {scheduler.DETERMINISTIC_FLAG}:" in source
    assert f"{scheduler.SCHEDULER_RANDOM}.shuffle(batch)" in source
    assert "batch.sort(key=lambda t: t._counter)" in source
    assert isinstance(getattr(module, scheduler.DETERMINISTIC_FLAG), bool)
    assert isinstance(rng, __import__("random").Random)


def test_a_seed_makes_trios_scheduling_order_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = scheduler.trio_scheduler()
    monkeypatch.setattr(module, scheduler.DETERMINISTIC_FLAG, False)

    def seeded(seed: int) -> tuple[tuple[int, int], ...]:
        with scheduler.seeded_scheduler(seed):
            assert getattr(module, scheduler.DETERMINISTIC_FLAG) is True
            return trio.run(_scheduler_trace)

    assert seeded(1) == seeded(1)
    assert seeded(1) != seeded(2)
    assert getattr(module, scheduler.DETERMINISTIC_FLAG) is False  # put back as it was
    monkeypatch.setattr(module, scheduler.DETERMINISTIC_FLAG, True)  # as Hypothesis sets it
    seeded(3)
    assert getattr(module, scheduler.DETERMINISTIC_FLAG) is True


def test_a_seeded_swarm_reseeds_the_scheduler_at_every_start() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        for _ in range(5):
            bot.count(f"step {bot.id}")
            await trio.lowlevel.checkpoint()
            order.append(bot.id)

    order: list[int] = []

    async def main() -> list[list[int]]:
        runs = []
        for _ in range(2):  # two swarms in one trio run: each starts from its seed
            order.clear()
            await trio_bots.swarm(worker, 10, seed=9)
            runs.append(list(order))
        return runs

    first, second = virtual(main)
    assert first == second
    assert first != sorted(first)  # the scheduler shuffled: the order is the seed's


def test_a_simulated_network_cannot_be_spread_over_processes() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        pass

    with pytest.raises(trio_bots.ConfigError, match=r"simulated network .* processes="):
        trio.run(functools.partial(trio_bots.swarm, worker, 2, network=Network(), processes=2))
