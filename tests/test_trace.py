"""Wire transcripts: trace_bots= / --trace-bot, trace_failures= / --trace-failures."""

from __future__ import annotations

import doctest
import functools
import os
import ssl
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import _services  # noqa: F401  (puts examples/ on sys.path)
import pytest
import trio
import trio.testing
import trustme
from _leaks import open_fds
from test_cli import no_traceback, trio_bots_cmd

import trio_bots
from trio_bots import TraceEvent, read_trace

# isort: off
import chat_server
import chat_swarm
import trio.lowlevel

# isort: on


class RecordingProxy:
    """A TCP proxy that keeps, per client port, the bytes each side sent through it."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.from_client: dict[int, bytearray] = defaultdict(bytearray)
        self.to_client: dict[int, bytearray] = defaultdict(bytearray)

    async def handle(self, client: trio.SocketStream) -> None:
        port = client.socket.getpeername()[1]
        async with client, await trio.open_tcp_stream("127.0.0.1", self.upstream) as server:

            async def pump(src: Any, dst: Any, into: bytearray) -> None:
                try:
                    while data := await src.receive_some():
                        into += data
                        await dst.send_all(data)
                    await dst.send_eof()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                nursery.cancel_scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump, client, server, self.from_client[port])
                nursery.start_soon(pump, server, client, self.to_client[port])


def by_stream(events: list[TraceEvent], kind: str) -> dict[str, bytes]:
    out: dict[str, bytes] = defaultdict(bytes)
    for event in events:
        if event.kind == kind:
            assert isinstance(event.payload, bytes)
            out[event.stream] += event.payload
    return out


@pytest.mark.trio
async def test_a_traced_chat_run_parses_back_into_the_exact_bytes_on_the_wire(
    tmp_path: Path,
) -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            chat_port = await nursery.start(chat_server.serve)
            proxy = RecordingProxy(chat_port)
            [listener] = await nursery.start(
                functools.partial(trio.serve_tcp, proxy.handle, 0, host="127.0.0.1")
            )
            host = f"127.0.0.1:{listener.socket.getsockname()[1]}"
            options = {k: v for k, v in chat_swarm.options.items() if k != "size"}
            result = await trio_bots.swarm(
                chat_swarm.worker,
                10,
                **{**options, "duration": 1.0, "iterations": 5},
                host=host,
                trace_bots=[0, 7],
                trace_dir=str(tmp_path / "traces"),
            )
            nursery.cancel_scope.cancel()
    assert not result.bot_failures
    assert sorted(os.listdir(tmp_path / "traces")) == ["trace-0.log", "trace-7.log"]
    for bot_id in (0, 7):
        events = read_trace(tmp_path / "traces" / f"trace-{bot_id}.log")
        assert {e.bot for e in events} == {bot_id}
        assert [e.t for e in events] == sorted(e.t for e in events)
        [opened] = [e for e in events if e.kind == "open"]
        assert opened.stream == "tcp0"
        assert isinstance(opened.payload, str)
        client_port = int(opened.payload.rsplit(":", 1)[1])
        sent, received = by_stream(events, ">"), by_stream(events, "<")
        # The exact bytes, byte for byte, that the proxy saw in each direction.
        assert sent["tcp0"] == bytes(proxy.from_client[client_port])
        assert received["tcp0"] == bytes(proxy.to_client[client_port])
        assert sent["tcp0"].startswith(f"NICK bot{bot_id}\nJOIN room-{bot_id // 5}\n".encode())
        assert sent["tcp0"].count(b"\nSAY ") == 5
        # The bot's group messages are interleaved: it told its roommates what it said.
        [told] = [e for e in events if e.kind == "msg>"]
        assert isinstance(told.payload, str) and told.payload.startswith("to [")
        assert len([e for e in events if e.kind == "msg<"]) == 4
        # Framing boundaries are annotated by the Lines helper.
        notes = [e.payload for e in events if e.kind == "note"]
        assert f"line > NICK bot{bot_id}" in notes
        assert events[-1].kind == "close"


@pytest.mark.trio
async def test_untraced_bots_are_plain_bots_over_raw_streams(tmp_path: Path) -> None:
    seen: dict[int, tuple[str, str]] = {}

    async def worker(bot: trio_bots.Bot) -> None:
        host, port = bot.swarm.host.split(":")  # type: ignore[union-attr]
        stream = await bot.connect_tcp(host, int(port))
        seen[bot.id] = (type(bot).__name__, type(stream).__name__)

    async def ignore(stream: trio.SocketStream) -> None:
        await stream.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            [listener] = await nursery.start(
                functools.partial(trio.serve_tcp, ignore, 0, host="127.0.0.1")
            )
            host = f"127.0.0.1:{listener.socket.getsockname()[1]}"
            await trio_bots.swarm(worker, 3, host=host, trace_bots=[1], trace_dir=str(tmp_path))
            nursery.cancel_scope.cancel()
    assert seen == {
        0: ("Bot", "SocketStream"),
        1: ("TracedBot", "TracedStream"),
        2: ("Bot", "SocketStream"),
    }


@pytest.mark.trio
async def test_tls_is_traced_as_plaintext_and_udp_as_datagrams(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def echo(stream: trio.SSLStream[trio.SocketStream]) -> None:
        async with stream:
            await stream.send_all(await stream.receive_some())

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            [listener] = await nursery.start(
                functools.partial(trio.serve_ssl_over_tcp, echo, 0, server_ctx, host="127.0.0.1")
            )
            tls_port = listener.transport_listener.socket.getsockname()[1]
            udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await udp.bind(("127.0.0.1", 0))

            async def worker(bot: trio_bots.Bot) -> None:
                stream = await bot.connect_tcp("127.0.0.1", tls_port, ssl_context=client_ctx)
                await stream.send_all(b"secret hello")
                assert await stream.receive_some() == b"secret hello"
                datagrams = await bot.connect_udp(*udp.getsockname())
                await datagrams.send(b"ping")
                data, address = await udp.recvfrom(100)
                await udp.sendto(b"pong:" + data, address)
                assert await datagrams.receive() == b"pong:ping"

            await trio_bots.swarm(worker, 1, trace_bots=[0], trace_dir=str(tmp_path))
            udp.close()
            nursery.cancel_scope.cancel()
    events = read_trace(tmp_path / "trace-0.log")
    assert by_stream(events, ">") == {"tls0": b"secret hello", "udp1": b"ping"}
    assert by_stream(events, "<") == {"tls0": b"secret hello", "udp1": b"pong:ping"}


def failing_worker(fail_bot: int) -> Any:
    async def worker(bot: trio_bots.Bot) -> None:
        a, b = trio.testing.memory_stream_pair()
        a, b = bot.own(a), bot.own(b)
        for n in range(5):
            await a.send_all(f"PING {n}\n".encode())
            await b.receive_some()
        bot.log.info("about to decide")
        if bot.id == fail_bot:
            raise ValueError("bot broke on purpose")

    return worker


@pytest.mark.trio
async def test_trace_failures_writes_only_the_failing_bot_with_its_last_k_events(
    tmp_path: Path,
) -> None:
    with trio.fail_after(10):
        result = await trio_bots.swarm(
            failing_worker(2), 4, trace_failures=3, trace_dir=str(tmp_path), max_failures=None
        )
    assert [f.bot_id for f in result.bot_failures] == [2]
    assert os.listdir(tmp_path) == ["trace-2.log"]
    events = read_trace(tmp_path / "trace-2.log")
    # The ring of the last 3 events, then the failure.
    assert [(e.stream, e.kind, e.payload) for e in events] == [
        ("stream0", ">", b"PING 4\n"),
        ("stream1", "<", b"PING 4\n"),
        ("-", "log", "about to decide"),
        ("-", "fail", "bot failed: ValueError: bot broke on purpose"),
    ]


@pytest.mark.trio
async def test_trace_failures_dumps_failed_requests_under_measure(tmp_path: Path) -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        a, b = trio.testing.memory_stream_pair()
        a, b = bot.own(a), bot.own(b)
        for n in range(3):
            async with bot.measure("req") as m:
                await a.send_all(f"GET {n}".encode())
                await b.receive_some()
                if bot.id == 1 and n == 1:
                    m.fail("bad reply")

    with trio.fail_after(10):
        result = await trio_bots.swarm(worker, 3, trace_failures=10, trace_dir=str(tmp_path))
    assert result.stats["req"].failure_count == 1
    assert os.listdir(tmp_path) == ["trace-1.log"]
    events = read_trace(tmp_path / "trace-1.log")
    assert events[-1].kind == "fail"
    assert events[-1].payload == "request 'req' failed: bad reply"
    assert by_stream(events, ">")["stream0"] == b"GET 0GET 1"


@pytest.mark.trio
async def test_dumps_stop_at_100_a_run_with_one_warning(tmp_path: Path) -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        for _ in range(2):
            async with bot.measure("req") as m:
                m.fail("always")

    with trio.fail_after(20):
        result = await trio_bots.swarm(worker, 60, trace_failures=2, trace_dir=str(tmp_path))
    assert len(os.listdir(tmp_path)) == 50  # 100 dumps, two per bot
    assert [w for w in result.warnings if "trace_failures" in w] == [
        "trace_failures: 100 transcripts were written; later failures of this run are not dumped"
    ]


@pytest.mark.trio
async def test_every_transcript_is_closed_however_the_run_ends(tmp_path: Path) -> None:
    before = open_fds()
    with trio.fail_after(10):
        with pytest.raises(trio_bots.SwarmAborted):
            await trio_bots.swarm(
                failing_worker(3), 8, trace_bots=range(8), trace_dir=str(tmp_path / "a")
            )
        await trio_bots.swarm(
            failing_worker(-1), 8, trace_bots=range(8), trace_dir=str(tmp_path / "b")
        )
    assert open_fds() == before
    assert len(os.listdir(tmp_path / "b")) == 8
    failed = read_trace(tmp_path / "a" / "trace-3.log")
    assert failed[-1].kind == "close"  # owned streams close after the failure line
    assert any(e.kind == "fail" for e in failed)


def test_the_options_are_checked() -> None:
    with pytest.raises(trio_bots.ConfigError, match="trace_bots must be a list of bot ids"):
        trio.run(functools.partial(trio_bots.swarm, failing_worker(-1), 1, trace_bots=3))
    with pytest.raises(trio_bots.ConfigError, match="trace_failures must be >= 1, got 0"):
        trio.run(functools.partial(trio_bots.swarm, failing_worker(-1), 1, trace_failures=0))
    with pytest.raises(trio_bots.ConfigError, match="give trace_bots= or trace_failures= too"):
        trio.run(functools.partial(trio_bots.swarm, failing_worker(-1), 1, trace_dir="x"))


def test_the_parser_refuses_lines_that_are_not_events() -> None:
    with pytest.raises(ValueError, match="t bot stream kind payload"):
        TraceEvent.parse("0.1 0 tcp0 >")
    with pytest.raises(ValueError, match="must be bytes"):
        TraceEvent.parse("0.1 0 tcp0 > 'text'")


SCENARIO = textwrap.dedent(
    """
    import trio
    import trio.testing

    options = {"size": 4, "max_failures": None}

    async def worker(bot):
        a, b = trio.testing.memory_stream_pair()
        a, b = bot.own(a), bot.own(b)
        await a.send_all(b"hello from %d" % bot.id)
        await b.receive_some()
        if bot.id == 1:
            raise RuntimeError("one bot fails")
    """
)


def test_the_cli_flags(tmp_path: Path) -> None:
    (tmp_path / "scenario.py").write_text(SCENARIO)
    proc = trio_bots_cmd(
        "run", "scenario.py", "--quiet", "--trace-bot", "0", "--trace-bot", "3",
        "--trace-dir", "out/traces", cwd=tmp_path,
    )  # fmt: skip
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "out" / "traces"
    assert sorted(os.listdir(folder)) == ["trace-0.log", "trace-3.log"]
    assert by_stream(read_trace(folder / "trace-3.log"), ">") == {"stream0": b"hello from 3"}

    proc = trio_bots_cmd("run", "scenario.py", "--quiet", "--trace-failures", "5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.glob("trace-*.log")) == ["trace-1.log"]

    for args, message in [
        (["--trace-bot", "x"], "Invalid value for '--trace-bot'"),
        (["--trace-bot", "-1"], "error: trace_bots id must be >= 0, got -1"),
        (["--trace-failures", "0"], "error: trace_failures must be >= 1, got 0"),
        (["--trace-dir", "d"], "error: --trace-dir says where transcripts go: give --trace-bot"),
    ]:
        proc = trio_bots_cmd("run", "scenario.py", "--quiet", *args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, proc.stderr
        no_traceback(proc)


def test_the_docs_page_runs() -> None:
    page = Path(__file__).parent.parent / "docs" / "traces.md"
    failed, attempted = doctest.testfile(str(page), module_relative=False)
    assert attempted and not failed


@pytest.mark.trio
async def test_the_protocol_helpers_annotate_their_frames(tmp_path: Path) -> None:
    from trio_bots.protocols import framing, http, resp, testing, websocket

    target = [-1]  # the bot that talks in this round; the others return at once

    async def worker(bot: trio_bots.Bot) -> None:
        host = bot.swarm.host
        if bot.id != target[0]:
            return
        if bot.id == 0:
            client = await http.connect(bot, f"http://{host}")
            await client.post("/item", body=b"abc")
            assert not client.direct  # traced: the client keeps the TracedStream
        elif bot.id == 1:
            ws = await websocket.connect(bot, f"ws://{host}/chat")
            await ws.send("hello")
            await ws.receive()
            await ws.aclose()
        else:
            redis = await resp.connect(bot, f"redis://{host}")
            await redis.execute("SET", "k", "v")
            a, _ = trio.testing.memory_stream_pair()
            await framing.LengthPrefixed(bot.own(a)).send(b"xyz")

    notes: dict[int, list[str]] = {}
    servers = {0: testing.http_echo, 1: testing.websocket_echo, 2: testing.FakeRedis().handle}
    with trio.fail_after(10):
        for bot_id, handler in servers.items():
            target[0] = bot_id
            async with testing.open_server(handler) as host:
                await trio_bots.swarm(
                    worker,
                    3,
                    host=host,
                    trace_bots=[bot_id],
                    trace_dir=str(tmp_path),
                )
            events = read_trace(tmp_path / f"trace-{bot_id}.log")
            notes[bot_id] = [str(e.payload) for e in events if e.kind == "note"]
    request, response = notes[0]
    assert request.startswith("http > POST /item HTTP/1.1\r\nHost: ")
    assert request.endswith(" + 3 body bytes")
    assert response.startswith("http < HTTP/1.1 200 OK\r\n")
    assert notes[1][0].startswith("ws > upgrade ws://")
    assert "ws > text 'hello'" in notes[1]
    assert "ws < text 'hello'" in notes[1]
    assert any(n.startswith("ws > close 1000") for n in notes[1])
    assert notes[2] == ["resp > SET k v", "resp < 'OK'", "frame > 3 bytes"]
