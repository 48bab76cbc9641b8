"""The runnable examples: each one runs, its checks pass, and broken servers fail it clearly.

The chat and game examples run their own servers. The Redis and nginx ones
need the real binaries: they use the services .ci/run started
(TRIO_BOTS_REDIS / TRIO_BOTS_NGINX), else start their own, else skip.
"""

from __future__ import annotations

import doctest
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
import trio.testing
from _services import EXAMPLES, service_address

import trio_bots
from trio_bots.protocols import framing, websocket

# isort: off
# The examples, imported as `python examples/X.py` imports its neighbours:
# _services has put examples/ on sys.path.
import chat_server
import chat_swarm
import game_bots
import game_server
import http_bots
import redis_bots
import services
import websocket_bots
import _support
from _support import counter, serve_tcp
from game_server import CANCEL, CANCELLED, ERROR, FIND_FORMAT, MOVE, MOVED, OVER, START
from game_server import START_FORMAT

# isort: on

#: Upper bound for one example run as a subprocess; they last 1 to 2 seconds.
TIMEOUT = 60


@pytest.fixture(scope="session")
def redis_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from service_address("redis", tmp_path_factory)


@pytest.fixture(scope="session")
def nginx_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from service_address("nginx", tmp_path_factory)


def run_example(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=TIMEOUT, **kwargs
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.05)


@asynccontextmanager
async def serving(serve: Any, **kwargs: Any) -> AsyncIterator[str]:
    """Run an example server in the background; gives its HOST:PORT."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve, **kwargs))
        yield f"127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


# -- the README's main demo ------------------------------------------------------------------


def test_chat_swarm_as_a_new_user_runs_it() -> None:
    proc = run_example(str(EXAMPLES / "chat_swarm.py"), "--bots", "12", "--duration", "1.5")
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert out.startswith("chat_swarm: 12 bots in 3 rooms of 5, against 127.0.0.1:")
    # Rooms of 5, 5 and 2 bots: each bot checks each roommate, 20 + 20 + 2 checks.
    assert re.search(r"\n  checks +42 of 42 roommates heard in full and in order\n", out), out
    for name in ("join", "say", "check"):
        match = re.search(
            rf"\n  {name} +(\d+) ok +(\d+) failed +p50 +[\d.]+ ms +p99 +[\d.]+ ms", out
        )
        assert match and int(match[1]) > 0 and match[2] == "0", out
    messages = re.search(r"\n  messages +(\d+) sent, (\d+) received by roommates\n", out)
    assert messages and int(messages[1]) > 0 and int(messages[2]) > 0, out
    assert out.rstrip().splitlines()[-1].startswith("OK in ")


def test_chat_server_on_its_own_then_the_swarm_and_the_cli_against_it() -> None:
    port = services.free_port()
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "chat_server.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_listening(port)
        host = f"127.0.0.1:{port}"
        proc = run_example(
            str(EXAMPLES / "chat_swarm.py"), "--host", host, "--bots", "6", "--duration", "1"
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # Rooms of 5 and 1 bots: 5 * 4 checks, none for the lonely bot.
        assert f"against {host}" in proc.stdout and "checks    20 of 20 " in proc.stdout
        cli = run_example(
            "-m", "trio_bots.cli", "run", str(EXAMPLES / "chat_swarm.py"),
            "--host", host, "--bots", "6", "--duration", "1",
        )  # fmt: skip
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert re.search(r"\nsay +\d+ +0 ", cli.stdout), cli.stdout
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: a clean exit
        out, _ = server.communicate(timeout=10)
    assert server.returncode == 0
    assert out == f"A small chat server with rooms: listening on 127.0.0.1:{port}\n"


def test_without_a_server_the_swarm_fails_clearly() -> None:
    port = services.free_port()  # nothing listens there
    proc = run_example(
        str(EXAMPLES / "chat_swarm.py"), "--host", f"127.0.0.1:{port}", "--duration", "1"
    )
    assert proc.returncode == 3
    assert re.match(rf"aborted: bot \d+ failed: ConnectError: .*127\.0\.0\.1.*{port}", proc.stderr)
    bad = run_example(str(EXAMPLES / "chat_swarm.py"), "--host", "localhost", "--duration", "1")
    assert bad.returncode == 2
    assert "error: --host must be HOST:PORT, such as 127.0.0.1:7777, got 'localhost'" in bad.stderr


# -- chat, in process -------------------------------------------------------------------------


@pytest.mark.trio
async def test_every_roommate_hears_every_message_in_order() -> None:
    server = chat_server.ChatServer()
    with trio.fail_after(30):
        async with serving(chat_server.serve, server=server) as host:
            report = await chat_swarm.run(bots=7, duration=1, host=host)
    result = report.result
    assert report.ok and report.exit_code == 0, str(report)
    sent = counter(result, "messages sent")
    assert sent == server.messages == result.stats["say"].count > 0
    assert result.stats["join"].count == 7
    assert counter(result, "checks passed") == result.stats["check"].count == 5 * 4 + 2 * 1
    assert server.rooms == {}  # every bot left when it ended


class LossyChatServer(chat_server.ChatServer):
    """Loses the fourth message for everyone but its sender."""

    def _command(self, client: Any, line: str) -> None:
        if line.startswith("SAY ") and client.room and self.messages == 3:
            self.messages += 1
            client.send(f"MSG {client.room} {client.name} {line[4:]}")
            return
        super()._command(client, line)


@pytest.mark.trio
async def test_a_lost_message_fails_the_checks_and_the_exit_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chat_swarm, "CHECK_WAIT", 0.5)  # the message will not come
    with trio.fail_after(30):
        async with serving(chat_server.serve, server=LossyChatServer()) as host:
            report = await chat_swarm.run(bots=5, duration=1, host=host)
    assert not report.ok and report.exit_code == 1
    [failure] = report.result.failures
    assert failure.name == "check" and failure.count == 4  # the 4 roommates of the sender
    assert re.fullmatch(r"got (\d+) of the (\d+) messages bot\d sent", failure.message)
    assert report.problems == ["4 roommate checks failed or never ran"]
    assert str(report).endswith(" s") and "FAILED in" in str(report)


async def chat_lines(host: str) -> framing.Lines:
    name, port = host.rsplit(":", 1)
    return framing.Lines(await trio.open_tcp_stream(name, int(port)))


@pytest.mark.trio
async def test_chat_server_protocol_and_errors() -> None:
    with trio.fail_after(10):
        async with serving(chat_server.serve) as host:
            async with await chat_lines(host) as alice, await chat_lines(host) as bob:
                for line, reply in [
                    (b"SAY hi", b"ERR join a room first: JOIN <room>"),
                    (
                        b"JOIN two words",
                        b"ERR bad room 'two words': one word of 1 to 32 characters",
                    ),
                    (b"LEAVE", b"ERR not in a room"),
                    (b"DANCE", b"ERR unknown command 'DANCE'; send NICK, JOIN, LEAVE or SAY"),
                    (b"NICK alice", b"OK NICK alice"),
                    (b"JOIN lobby", b"JOINED lobby 1"),
                ]:
                    await alice.send(line)
                    assert await alice.receive() == reply
                await bob.send(b"JOIN lobby")
                assert await bob.receive() == b"JOINED lobby 2"
                await alice.send("SAY héllo  there".encode())
                for lines in (alice, bob):
                    assert await lines.receive() == "MSG lobby alice héllo  there".encode()
                await alice.send(b"LEAVE")
                assert await alice.receive() == b"LEFT lobby"
                await bob.buffered.send_all(b"x" * 5000 + b"\n")
                assert await bob.receive() == b"ERR lines end with \\n within 4096 bytes; closing"
                with pytest.raises(anyio.EndOfStream):  # and the server hung up
                    await bob.receive()


# -- the game -----------------------------------------------------------------------------------


@pytest.mark.trio
async def test_game_bots_play_whole_games_and_agree_with_each_other() -> None:
    server = game_server.GameServer()
    with trio.fail_after(30):
        async with serving(game_server.serve, server=server) as host:
            report = await game_bots.run(bots=5, duration=1, host=host)  # one sits out
    result = report.result
    assert report.ok, str(report)
    played = counter(result, "games played")
    assert played > 0 and played % 4 == 0  # rounds of two games, two players each
    assert server.games == server.finished == played // 2
    assert counter(result, "wins") + counter(result, "draws") // 2 == played // 2
    assert result.stats["check"].count == played
    assert result.stats["move"].count == counter(result, "moves") >= 5 * played // 2


async def game_frames(host: str) -> framing.LengthPrefixed:
    name, port = host.rsplit(":", 1)
    return framing.LengthPrefixed(await trio.open_tcp_stream(name, int(port)), header="!H")


@pytest.mark.trio
async def test_game_server_lobby_moves_and_errors() -> None:
    with trio.fail_after(10):
        async with serving(game_server.serve) as host:
            async with (
                await game_frames(host) as x,
                await game_frames(host) as o,
                await game_frames(host) as lonely,
            ):
                await lonely.send(FIND_FORMAT.pack(1, 99))
                await lonely.send(bytes([CANCEL]))
                assert await lonely.receive() == bytes([CANCELLED])
                await x.send(FIND_FORMAT.pack(1, 7))
                await trio.testing.wait_all_tasks_blocked()
                await o.send(FIND_FORMAT.pack(1, 8))
                _, game, mark_x, opponent_x = START_FORMAT.unpack(await x.receive())
                _, game_o, mark_o, opponent_o = START_FORMAT.unpack(await o.receive())
                assert (game, mark_x, opponent_x, mark_o, opponent_o) == (game_o, 1, 8, 2, 7)
                await o.send(bytes([MOVE, 4]))
                assert (await o.receive())[:1] == bytes([ERROR])  # not O's turn
                for player, cell in [(x, 0), (o, 4), (x, 1), (o, 8)]:
                    await player.send(bytes([MOVE, cell]))
                    mark = 1 if player is x else 2
                    for frames in (x, o):
                        assert await frames.receive() == bytes([MOVED, mark, cell])
                await x.send(bytes([MOVE, 4]))
                assert await x.receive() == bytes([ERROR]) + b"cell 4 is not free; cells are 0 to 8"
                await x.send(b"\x09junk")
                assert (await x.receive())[:1] == bytes([ERROR])
                await x.send(bytes([MOVE, 2]))  # a row for X
                for frames in (x, o):
                    assert await frames.receive() == bytes([MOVED, 1, 2])
                    assert await frames.receive() == bytes([OVER, 1, 0])
                # A player who leaves mid-game loses by forfeit.
                await x.send(FIND_FORMAT.pack(1, 7))
                await o.send(FIND_FORMAT.pack(1, 8))
                assert (await x.receive())[:1] == (await o.receive())[:1] == bytes([START])
                await o.aclose()
                assert await x.receive() == bytes([OVER, 1, 1])


@pytest.mark.trio
async def test_a_truncated_frame_fails_the_request_clearly_and_no_bot_hangs() -> None:
    async def truncating(stream: trio.SocketStream) -> None:
        await stream.receive_some()  # FIND
        await stream.send_all(b"\x00\x0a\x81\x00")  # 10 bytes announced, 2 sent
        await stream.aclose()

    with trio.fail_after(20):
        async with serving(serve_tcp, handle=truncating, port=0, host="127.0.0.1") as host:
            result = await trio_bots.swarm(
                game_bots.worker, 2, host=host, duration=10, max_failures=None
            )
    [failure] = result.failures
    assert (failure.name, failure.kind, failure.count) == ("match", "ProtocolError", 2)
    assert "partial frame" in failure.message
    assert len(result.bot_failures) == 2
    assert all(isinstance(f.exception, trio_bots.ProtocolError) for f in result.bot_failures)


def test_game_bots_command_line() -> None:
    proc = run_example(str(EXAMPLES / "game_bots.py"), "--bots", "4", "--duration", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"\n  games +\d+ in \d+ rounds: \d+ won, \d+ drawn\n", proc.stdout)
    assert proc.stdout.rstrip().splitlines()[-1].startswith("OK in ")


# -- Redis ----------------------------------------------------------------------------------------


@pytest.mark.needs_service("redis")
@pytest.mark.trio
async def test_redis_bots_deliver_every_published_message(redis_address: str) -> None:
    with trio.fail_after(30):
        report = await redis_bots.run(bots=8, duration=1, host=redis_address)
    result = report.result
    assert report.ok, str(report)
    published = counter(result, "messages published")
    assert published > 0 and counter(result, "messages received") == 2 * published
    assert result.stats["PUBLISH"].count == published
    assert result.stats["SET"].count == result.stats["GET"].count > 0
    assert result.stats["SUBSCRIBE"].count == 2
    assert counter(result, "checks passed") == 2 * 6


@pytest.mark.needs_service("redis")
def test_redis_bots_command_line_starts_its_own_redis() -> None:
    if services.find("redis") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    proc = run_example(str(EXAMPLES / "redis_bots.py"), "--bots", "4", "--duration", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checks     3 of 3 subscriber-publisher pairs complete" in proc.stdout


# -- nginx ----------------------------------------------------------------------------------------


@pytest.mark.needs_service("nginx")
@pytest.mark.trio
async def test_http_bots_get_every_file_over_one_connection_each(nginx_address: str) -> None:
    with trio.fail_after(30):
        report = await http_bots.run(bots=5, duration=1, host=nginx_address)
    result = report.result
    assert report.ok, str(report)
    assert all(result.stats[f"GET {path}"].count > 0 for path in services.NGINX_FILES)
    assert counter(result, "connections") == 5


# -- WebSocket ------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_websocket_bots_get_every_echo() -> None:
    with trio.fail_after(30):
        report = await websocket_bots.run(bots=4, duration=1)
    assert report.ok, str(report)
    assert counter(report.result, "messages") == report.result.stats["echo"].count > 0


@pytest.mark.trio
async def test_a_bad_websocket_handshake_fails_clearly_and_no_bot_hangs() -> None:
    async def not_websocket(stream: trio.SocketStream) -> None:
        await stream.receive_some()
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")
        await trio.sleep_forever()  # a server that never closes must not hang the bot

    async def worker(bot: trio_bots.Bot) -> None:
        await websocket.connect(bot, f"ws://{bot.swarm.host}/echo")

    with trio.fail_after(20):
        async with serving(serve_tcp, handle=not_websocket, port=0, host="127.0.0.1") as host:
            result = await trio_bots.swarm(worker, 2, host=host, duration=10, max_failures=None)
    assert result.stats["WS connect /echo"].failure_count == 2
    assert len(result.bot_failures) == 2
    for failure in result.bot_failures:
        assert isinstance(failure.exception, trio_bots.ProtocolError)
        assert "the server answered HTTP 200 instead of 101" in str(failure.exception)


# -- services.sh, as .ci/run calls it -------------------------------------------------------------


@pytest.mark.needs_service("redis")
@pytest.mark.needs_service("nginx")
def test_services_script_starts_and_stops_both(tmp_path: Path) -> None:
    for name in ("redis", "nginx"):
        if services.find(name) is None:
            pytest.skip(f"{services.BINARIES[name][0]} is not installed")
    script = str(EXAMPLES / "services.sh")
    env = {**os.environ, "PYTHON": sys.executable}
    start = subprocess.run(
        ["bash", script, "start", str(tmp_path)], capture_output=True, text=True, env=env,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert start.returncode == 0, start.stderr
    exports = dict(re.findall(r"^export (TRIO_BOTS_\w+)=(\S+)$", start.stdout, re.M))
    assert sorted(exports) == ["TRIO_BOTS_NGINX", "TRIO_BOTS_REDIS"]
    ports = [int(address.rsplit(":", 1)[1]) for address in exports.values()]
    try:
        for port in ports:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        stop = subprocess.run(
            ["bash", script, "stop", str(tmp_path)], capture_output=True, env=env, timeout=TIMEOUT
        )
    assert stop.returncode == 0
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_missing_binary_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(services.BINARIES, "redis", ("no-such-redis-server", "redis-server"))
    message = "no-such-redis-server is not installed; install it with: apt-get install redis-server"
    with pytest.raises(services.ServiceError, match=message):
        services.start("redis", tmp_path)
    assert services.main(["start", str(tmp_path), "redis"]) == 1
    assert capsys.readouterr().err == f"error: {message}\n"
    assert services.main(["stop", str(tmp_path)]) == 0  # nothing to stop is fine


# -- the examples' docstrings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        _support,
        chat_server,
        chat_swarm,
        game_server,
        game_bots,
        websocket_bots,
        http_bots,  # these three start a real nginx or redis-server of their own
        redis_bots,
        services,
    ],
    ids=lambda module: module.__name__,
)
def test_docstring_examples_run(module: Any) -> None:
    failed, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failed == 0
