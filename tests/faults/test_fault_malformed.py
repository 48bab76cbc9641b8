"""Malformed input everywhere a user or a server can send it, generated with hypothesis.

Users: threshold expressions, scenario ``options`` dicts and CLI flags give their
documented error (`ConfigError`, exit code 2 with one line), never a traceback.
Servers: HTTP responses, WebSocket frames, RESP replies and length-prefixed frames
give a `TrioBotsError` (mostly `ProtocolError`) or a value, never a hang or another
exception. Each case is bounded in time.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from _faults import PYTHON, child_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trio_bots
from trio_bots import ConfigError, TrioBotsError
from trio_bots.metrics import parse_threshold
from trio_bots.protocols import http, resp, websocket
from trio_bots.protocols.framing import LengthPrefixed

FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SCENARIOS = Path(__file__).parent / "scenarios"

# -- what users type -------------------------------------------------------------------------


@FAST
@given(st.text(alphabet="pP0123456789.()<>=!rpsmsu failure_rate[]{}mean max", max_size=30))
def test_a_threshold_expression_parses_or_says_why(expr: str) -> None:
    try:
        parse_threshold(expr)
    except ConfigError as exc:
        assert str(exc).startswith("bad threshold ")  # then a caret under the place


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-5, 50), max_size=3),
    st.lists(st.tuples(st.integers(-5, 50), st.integers(-5, 50)), max_size=3),
)
OPTION_NAMES = st.sampled_from(
    ["duration", "stop_grace", "max_failures", "inbox_size", "on_full", "fanout", "host",
     "sockets_per_bot", "request_timeout", "seed", "stages", "rate", "ramp", "iterations",
     "pace", "nonsense"]
)  # fmt: skip


@FAST
@given(st.dictionaries(OPTION_NAMES, VALUES, max_size=3), st.integers(-3, 5))
def test_scenario_options_are_accepted_or_refused_with_a_config_error(
    options: dict[str, Any], size: int
) -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        pass

    async def main() -> None:
        with trio.fail_after(5):
            # a stop that comes at once: a valid run may not last
            async with trio_bots.open_swarm(worker, size, **options) as running:
                running.stop()

    try:
        trio.run(main)
    except ConfigError as exc:
        assert str(exc)


FLAGS = st.lists(
    st.sampled_from(
        ["--bots", "-n", "--duration", "--rate", "--stages", "--threshold", "--max-failures",
         "--stop-grace", "--json", "--backend", "--host", "--seed", "-x", "1", "-1", "0s",
         "abc", "10s:5", "p99 <", "nan", "1e309", "trio", "/nonexistent/x.json"]
    ),
    max_size=5,
)  # fmt: skip


@settings(max_examples=12, deadline=None)
@given(FLAGS)
def test_cli_flags_give_an_exit_code_and_a_line_never_a_traceback(flags: list[str]) -> None:
    # In a folder of its own: a generated "--json 10s:5" writes a report named 10s:5.
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.run(
            [PYTHON, "-m", "trio_bots.cli", "run", str(SCENARIOS / "quick.py"), "--quiet",
             "--no-host-check", *flags],
            capture_output=True,
            text=True,
            cwd=folder,
            env=child_env(),
            timeout=60,
        )  # fmt: skip
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode in (0, 1, 2, 3), proc.stderr
    if proc.returncode == 2:
        assert proc.stderr.strip()


# -- what servers send -----------------------------------------------------------------------

Op = Callable[[trio_bots.Bot, str], Awaitable[object]]


async def against(reply: Callable[[bytes], bytes], op: Op) -> None:
    """One bot runs `op` against a server that reads once, answers `reply(request)`,
    then stalls; the op must end with a value or a TrioBotsError, within its timeout."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            request = await stream.receive_some()
            try:
                await stream.send_all(reply(request))
            except trio.BrokenResourceError:
                return
            await trio.sleep(10)

    outcomes: list[object] = []

    async def worker(bot: trio_bots.Bot) -> None:
        try:
            outcomes.append(await op(bot, host))
        except TrioBotsError as exc:
            outcomes.append(exc)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    host = f"127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handle, listeners)
            result = await trio_bots.swarm(worker, 1, request_timeout=0.2)
            nursery.cancel_scope.cancel()
    assert result.bot_failures == [] and len(outcomes) == 1


def http_op(bot: trio_bots.Bot, host: str) -> Awaitable[object]:
    async def run() -> object:
        client = await http.connect(bot, f"http://{host}")
        return await client.get("/")

    return run()


def resp_op(bot: trio_bots.Bot, host: str) -> Awaitable[object]:
    async def run() -> object:
        client = await resp.connect(bot, f"redis://{host}")
        return await client.execute("GET", "k")

    return run()


def framing_op(bot: trio_bots.Bot, host: str) -> Awaitable[object]:
    async def run() -> object:
        name, _, port = host.rpartition(":")
        stream = await bot.connect_tcp(name, int(port))
        frames = LengthPrefixed(stream, max_size=1024)
        await frames.send(b"hello")
        async with bot.measure("frame"):
            return await frames.receive()

    return run()


def ws_op(bot: trio_bots.Bot, host: str) -> Awaitable[object]:
    async def run() -> object:
        ws = await websocket.connect(bot, f"ws://{host}/", max_message_size=1024)
        async with bot.measure("ws"):
            return await ws.receive()

    return run()


def ws_handshake_then(frames: bytes) -> Callable[[bytes], bytes]:
    def reply(request: bytes) -> bytes:
        match = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", request)
        key = match.group(1) if match else b""
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        head = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        return head + frames

    return reply


HTTP_REPLIES = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda status, headers, body: b"HTTP/1.1 " + status + b"\r\n" + headers + b"\r\n" + body,
        st.sampled_from([b"200 OK", b"999 ?", b"", b"abc", b"204 No Content"]),
        st.sampled_from(
            [b"", b"Content-Length: 5\r\n", b"Content-Length: -1\r\n", b"Content-Length: x\r\n",
             b"Transfer-Encoding: chunked\r\n", b"Bad Header\r\n"]
        ),
        st.binary(max_size=40),
    ),
)  # fmt: skip
RESP_REPLIES = st.one_of(
    st.binary(max_size=100),
    st.builds(
        lambda kind, text, tail: kind + text + tail,
        st.sampled_from([b"+", b"-", b":", b"$", b"*", b"%", b"_", b"?"]),
        st.sampled_from([b"", b"5", b"-1", b"-2", b"99999999999", b"x", b"OK"]),
        st.sampled_from([b"\r\n", b"\r\nab", b"\n", b""]),
    ),
)


@FAST
@given(HTTP_REPLIES)
def test_malformed_http_responses(reply: bytes) -> None:
    trio.run(against, lambda _: reply, http_op)


@FAST
@given(RESP_REPLIES)
def test_malformed_resp_replies(reply: bytes) -> None:
    trio.run(against, lambda _: reply, resp_op)


@FAST
@given(st.binary(max_size=64))
def test_malformed_length_prefixed_frames(reply: bytes) -> None:
    trio.run(against, lambda _: reply, framing_op)


@FAST
@given(st.binary(max_size=64))
def test_malformed_websocket_frames(frames: bytes) -> None:
    trio.run(against, ws_handshake_then(frames), ws_op)


@FAST
@given(st.binary(max_size=120))
def test_malformed_websocket_handshakes(reply: bytes) -> None:
    trio.run(against, lambda _: reply, ws_op)


@pytest.mark.parametrize("op", [http_op, resp_op, framing_op, ws_op])
def test_a_server_that_closes_at_once_is_a_trio_bots_error(op: Op) -> None:
    trio.run(against, lambda _: b"", op)
