"""The Bot: connections on real loopback sockets, owned resources, measuring, helpers."""

from __future__ import annotations

import logging
import math
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
import trio
import trio.testing
import trustme
from anyio.streams.tls import TLSStream

import trio_bots
from trio_bots import Bot, ConnectError, RequestTimeout, SwarmResult

Handler = Callable[[anyio.abc.SocketStream], Awaitable[None]]


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Worker = Callable[[Bot], Awaitable[None]]


async def run(worker: Worker, size: int = 1, **options: Any) -> SwarmResult:
    with anyio.fail_after(10):
        return await trio_bots.swarm(worker, size, **options)


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[int]:
    """A loopback TCP server on either backend; gives its port."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        yield port
        tg.cancel_scope.cancel()


async def echo(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        try:
            while True:
                await stream.send(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass


def free_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- TCP -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_connect_tcp_gives_a_trio_stream_or_the_adapter(anyio_backend: str) -> None:
    seen: dict[str, Any] = {}

    async def worker(bot: Bot) -> None:
        stream = await bot.connect_tcp("127.0.0.1", port)
        seen["type"] = type(stream)
        seen["nodelay"] = stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        await stream.send_all(b"ping")
        seen["echo"] = await stream.receive_some()
        await stream.send_all(bytearray(b"x") * 100_000)
        got = 0
        while got < 100_000:
            got += len(await stream.receive_some(65536))
        seen["big"] = got

    async with serve(echo) as port:
        await run(worker)
    if anyio_backend == "trio":
        assert seen["type"] is trio.SocketStream
    else:
        assert seen["type"] is trio_bots._core.transport.AsyncioStream
    assert seen["nodelay"] != 0
    assert seen["echo"] == b"ping"
    assert seen["big"] == 100_000


@pytest.mark.anyio
async def test_the_stream_speaks_trio_errors_on_both_backends() -> None:
    seen: dict[str, Any] = {}

    async def close_at_once(stream: anyio.abc.SocketStream) -> None:
        await stream.aclose()

    async def reset_at_once(stream: anyio.abc.SocketStream) -> None:
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()  # SO_LINGER 0: the close sends RST

    async def worker(bot: Bot) -> None:
        async with serve(close_at_once) as port:
            stream = await bot.connect_tcp("127.0.0.1", port)
            seen["eof"] = await stream.receive_some()
            seen["eof again"] = await stream.receive_some()
            await stream.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await stream.send_all(b"x")
            with pytest.raises(trio.ClosedResourceError):
                await stream.receive_some()
        async with serve(reset_at_once) as port:
            stream = await bot.connect_tcp("127.0.0.1", port)
            with pytest.raises(trio.BrokenResourceError):
                await stream.receive_some()

    result = await run(worker)
    assert result.bot_failures == []
    assert seen == {"eof": b"", "eof again": b""}


@pytest.mark.anyio
async def test_a_refused_connection_is_a_connect_error_naming_host_and_port() -> None:
    port = free_port()
    errors: list[ConnectError] = []

    async def worker(bot: Bot) -> None:
        with pytest.raises(ConnectError) as info:
            await bot.connect_tcp("127.0.0.1", port)
        errors.append(info.value)

    await run(worker)
    (error,) = errors
    assert f"127.0.0.1:{port}" in str(error)
    assert isinstance(error.__cause__, OSError)
    assert "\n" not in str(error)


@pytest.mark.anyio
async def test_an_unknown_host_is_a_connect_error() -> None:
    async def worker(bot: Bot) -> None:
        with pytest.raises(ConnectError, match=r"no-such-host\.invalid:80"):
            await bot.connect_tcp("no-such-host.invalid", 80)

    result = await run(worker)
    assert result.bot_failures == []


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def tls_echo(server_context: ssl.SSLContext) -> Handler:
    async def handle(stream: anyio.abc.SocketStream) -> None:
        try:
            tls = await TLSStream.wrap(
                stream, server_side=True, ssl_context=server_context, standard_compatible=False
            )
        except (anyio.BrokenResourceError, anyio.EndOfStream, ssl.SSLError, OSError):
            await stream.aclose()  # the client refused our certificate
            return
        await echo(tls)  # type: ignore[arg-type]

    return handle


@pytest.mark.anyio
async def test_tls_with_a_trusted_ca_gives_a_handshaken_stream(
    anyio_backend: str, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    seen: dict[str, Any] = {}

    async def worker(bot: Bot) -> None:
        stream = await bot.connect_tcp("127.0.0.1", port, tls=True, ssl_context=client_context)
        seen["type"] = type(stream)
        if isinstance(stream, trio.SSLStream):
            seen["version"] = stream.version()  # raises NeedHandshakeError before the handshake
        await stream.send_all(b"secret")
        seen["echo"] = await stream.receive_some()
        # server_hostname picks the name to verify; the cert also names localhost
        other = await bot.connect_tcp(
            "127.0.0.1", port, ssl_context=client_context, server_hostname="localhost"
        )
        await other.send_all(b"again")
        seen["other"] = await other.receive_some()

    async with serve(tls_echo(server_context)) as port:
        result = await run(worker)
    assert result.bot_failures == []
    assert seen["echo"] == b"secret" and seen["other"] == b"again"
    if anyio_backend == "trio":
        assert seen["type"] is trio.SSLStream
        assert seen["version"].startswith("TLS")
    else:
        assert seen["type"] is trio_bots._core.transport.AsyncioStream


@pytest.mark.anyio
async def test_an_untrusted_certificate_is_a_connect_error(
    server_context: ssl.SSLContext,
) -> None:
    errors: list[ConnectError] = []

    async def worker(bot: Bot) -> None:
        for _ in range(2):  # the second one: no fd or task was left behind by the first
            with pytest.raises(ConnectError) as info:
                await bot.connect_tcp("127.0.0.1", port, tls=True)
            errors.append(info.value)

    async with serve(tls_echo(server_context)) as port:
        await run(worker)
    assert f"TLS handshake with 127.0.0.1:{port} failed" in str(errors[0])
    assert isinstance(errors[0].__cause__, ssl.SSLCertVerificationError)


@pytest.mark.anyio
async def test_a_peer_that_hangs_up_in_the_handshake_is_a_connect_error(
    client_context: ssl.SSLContext,
) -> None:
    errors: list[ConnectError] = []

    async def hang_up(stream: anyio.abc.SocketStream) -> None:
        await stream.aclose()

    async def worker(bot: Bot) -> None:
        with pytest.raises(ConnectError) as info:
            await bot.connect_tcp("127.0.0.1", port, tls=True, ssl_context=client_context)
        errors.append(info.value)

    async with serve(hang_up) as port:
        await run(worker)
    assert f"TLS handshake with 127.0.0.1:{port} failed" in str(errors[0])
    assert isinstance(errors[0].__cause__, OSError)


# -- listeners and UDP -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_bot_can_listen_and_another_connect(anyio_backend: str) -> None:
    seen: dict[str, Any] = {}

    async def worker(bot: Bot) -> None:
        if bot.id == 0:
            listener = await bot.open_tcp_listener()
            port = listener.socket.getsockname()[1]
            seen["port"] = port
            await bot.send(trio_bots.send_bots([1]), port)
            conn = bot.own(await listener.accept())
            seen["peer"] = conn.socket.getpeername()[0]
            await conn.send_all(b"hello")
            seen["reply"] = await conn.receive_some()
        else:
            port = (await bot.receive(trio_bots.recv_from(0))).data
            stream = await bot.connect_tcp("127.0.0.1", port)
            seen["greeting"] = await stream.receive_some()
            await stream.send_all(b"hi back")

    await run(worker, 2)
    assert seen["greeting"] == b"hello" and seen["reply"] == b"hi back"
    assert seen["peer"] == "127.0.0.1"

    # The listener was owned by bot 0, so it is closed now.
    async def late(bot: Bot) -> None:
        with pytest.raises(ConnectError):
            await bot.connect_tcp("127.0.0.1", seen["port"])

    assert (await run(late)).bot_failures == []


@pytest.mark.anyio
async def test_connect_udp_sends_and_receives_datagrams() -> None:
    seen: dict[str, Any] = {}

    async def worker(bot: Bot) -> None:
        udp = await bot.connect_udp("127.0.0.1", port)
        await udp.send(b"ping")
        seen["reply"] = await udp.receive()

    async with await anyio.create_udp_socket(local_host="127.0.0.1") as server:
        port = server.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:

            async def reply_once() -> None:
                data, address = await server.receive()
                await server.sendto(data.upper(), *address)

            tg.start_soon(reply_once)
            await run(worker)
    assert seen["reply"] == b"PING"


# -- owned resources -------------------------------------------------------------------------


class Resource:
    """Logs its closing; the async one checkpoints first, as a real aclose would."""

    def __init__(self, name: str, log: list[str], *, fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()  # raises Cancelled unless shielded
        self.log.append(self.name)
        if self.fail:
            raise OSError("cannot close")


class SyncResource:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def close(self) -> None:
        self.log.append(self.name)


def owning_worker(log: list[str], ending: str, started: anyio.Event | None = None) -> Any:
    async def worker(bot: Bot) -> None:
        a = Resource("a", log)
        assert bot.own(a) is a
        bot.own(SyncResource("b", log))
        bot.own(Resource("c", log, fail=True))
        bot.own(Resource("d", log))
        if ending == "raise":
            raise ValueError("worker failed")
        if started is not None:
            started.set()
        if ending in ("cancel", "forever"):
            await anyio.sleep_forever()

    return worker


@pytest.mark.anyio
@pytest.mark.parametrize("ending", ["return", "raise", "cancel"])
async def test_own_closes_in_reverse_order_however_the_bot_ends(ending: str) -> None:
    log: list[str] = []
    started = anyio.Event()
    worker = owning_worker(log, ending, started)
    with anyio.fail_after(10):
        if ending == "cancel":
            async with anyio.create_task_group() as tg:
                tg.start_soon(trio_bots.swarm, worker, 1)
                await started.wait()
                assert log == []
                tg.cancel_scope.cancel()
        else:
            result = await trio_bots.swarm(worker, 1, max_failures=None)
            assert len(result.bot_failures) == (ending == "raise")
    assert log == ["d", "c", "b", "a"]  # c failed to close; the others still were


@pytest.mark.trio
async def test_own_is_closed_when_the_grace_runs_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    with trio.fail_after(60):
        await trio_bots.swarm(owning_worker(log, "forever"), 1, duration=1, stop_grace=1)
    assert log == ["d", "c", "b", "a"]


@pytest.mark.anyio
async def test_own_refuses_what_cannot_be_closed() -> None:
    async def worker(bot: Bot) -> None:
        with pytest.raises(TypeError, match="aclose"):
            bot.own(object())

    assert (await run(worker)).bot_failures == []


# -- measuring -------------------------------------------------------------------------------


@pytest.mark.trio
async def test_measure_records_successes_failures_and_bytes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def worker(bot: Bot) -> None:
        async with bot.measure("ok") as m:
            await trio.sleep(0.25)
            m.add_bytes(10, 20)
            m.add_bytes(1, 2)
        async with bot.measure("soft") as m:
            m.fail("bad reply")
        with pytest.raises(ValueError, match="boom"):
            async with bot.measure("hard"):
                raise ValueError("boom")
        with trio.move_on_after(1):
            async with bot.measure("cancelled"):
                await trio.sleep(5)
        with pytest.raises(KeyboardInterrupt):
            async with bot.measure("base"):
                raise KeyboardInterrupt

    with trio.fail_after(60):
        result = await trio_bots.swarm(worker, 2)
    stats = result.stats
    assert (stats["ok"].count, stats["ok"].failure_count) == (2, 0)
    assert stats["ok"].mean == pytest.approx(0.25, rel=1e-3)
    assert (stats["ok"].bytes_sent, stats["ok"].bytes_received) == (22, 44)
    assert (stats["soft"].count, stats["soft"].failure_count) == (0, 2)
    assert (stats["hard"].count, stats["hard"].failure_count) == (0, 2)
    # Left by a cancellation or a BaseException: neither a latency nor a failure, but counted.
    for name in ("cancelled", "base"):
        assert (stats[name].count, stats[name].failure_count, stats[name].cancelled) == (0, 0, 2)
        assert math.isnan(stats[name].failure_rate) and math.isnan(stats[name].mean)
    assert stats["ok"].cancelled == stats["soft"].cancelled == stats["hard"].cancelled == 0
    failures = {(f.name, f.kind, f.message): f.count for f in result.failures}
    assert failures == {("soft", "Failed", "bad reply"): 2, ("hard", "ValueError", "boom"): 2}
    assert stats.total.count == 2 and stats.total.failure_count == 4
    assert stats.total.cancelled == 4
    assert stats.total.rps == pytest.approx(6 / stats.total.active_seconds)  # cancelled left out


@pytest.mark.trio
async def test_request_timeout_fails_a_slow_request(autojump_clock: trio.testing.MockClock) -> None:
    timed_out_at: list[float] = []
    start = trio.current_time()

    async def worker(bot: Bot) -> None:
        async with bot.measure("fast"):
            await trio.sleep(0.5)
        with pytest.raises(RequestTimeout, match="'slow' took longer than request_timeout=1"):
            async with bot.measure("slow"):
                await trio.sleep(3)
        timed_out_at.append(trio.current_time() - start)

    with trio.fail_after(60):
        result = await trio_bots.swarm(worker, 3, request_timeout=1)
    assert timed_out_at == [1.5, 1.5, 1.5]
    assert (result.stats["fast"].count, result.stats["fast"].failure_count) == (3, 0)
    assert (result.stats["slow"].count, result.stats["slow"].failure_count) == (0, 3)
    assert [(f.kind, f.count) for f in result.failures] == [("RequestTimeout", 3)]
    assert result.bot_failures == []


@pytest.mark.trio
async def test_a_plain_with_measures_as_async_with_does(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def worker(bot: Bot) -> None:
        with bot.measure("ok") as m:
            await trio.sleep(0.25)
            m.add_bytes(10, 20)
        with bot.measure("soft") as m:
            m.fail("bad reply")
        with pytest.raises(ValueError, match="boom"), bot.measure("hard"):
            raise ValueError("boom")
        with trio.move_on_after(1), bot.measure("cancelled"):
            await trio.sleep(5)
        with pytest.raises(RequestTimeout), bot.measure("slow"):
            await trio.sleep(30)
        with bot.tagged(region="eu"), bot.measure("tagged"):
            await trio.sleep(0.01)

    with trio.fail_after(60):
        result = await trio_bots.swarm(worker, 2, request_timeout=10)
    stats = result.stats
    assert (stats["ok"].count, stats["ok"].failure_count) == (2, 0)
    assert stats["ok"].mean == pytest.approx(0.25, rel=1e-3)
    assert (stats["ok"].bytes_sent, stats["ok"].bytes_received) == (20, 40)
    assert (stats["soft"].failure_count, stats["hard"].failure_count) == (2, 2)
    assert (stats["cancelled"].count, stats["cancelled"].cancelled) == (0, 2)
    assert (stats["slow"].count, stats["slow"].failure_count) == (0, 2)
    assert sorted(stats.tagged("tagged")) == ["region=eu"]
    assert result.bot_failures == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_plain_with_measures_on_asyncio(anyio_backend: str) -> None:
    async def worker(bot: Bot) -> None:
        with bot.measure("fast"):
            await anyio.sleep(0.01)
        with pytest.raises(RequestTimeout), bot.measure("slow"):
            await anyio.sleep(30)

    result = await run(worker, 2, request_timeout=0.05)
    assert (result.stats["fast"].count, result.stats["fast"].failure_count) == (2, 0)
    assert result.stats["fast"].min >= 0.009
    assert (result.stats["slow"].count, result.stats["slow"].failure_count) == (0, 2)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_request_timeout_on_asyncio(anyio_backend: str) -> None:
    async def worker(bot: Bot) -> None:
        async with bot.measure("fast"):
            await anyio.lowlevel.checkpoint()
        with pytest.raises(RequestTimeout):
            async with bot.measure("slow"):
                await anyio.sleep(30)

    result = await run(worker, 2, request_timeout=0.05)
    assert (result.stats["fast"].count, result.stats["fast"].failure_count) == (2, 0)
    assert (result.stats["slow"].count, result.stats["slow"].failure_count) == (0, 2)


@pytest.mark.trio
async def test_an_uncaught_request_timeout_is_a_bot_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def worker(bot: Bot) -> None:
        async with bot.measure("slow"):
            await trio.sleep(3)

    with trio.fail_after(60):
        with pytest.raises(trio_bots.SwarmAborted, match="RequestTimeout"):
            await trio_bots.swarm(worker, 1, request_timeout=2)


@pytest.mark.anyio
async def test_record_count_and_gauge() -> None:
    async def worker(bot: Bot) -> None:
        bot.record("server-side", 0.5)
        bot.record("server-side", 1.5, failed=True)
        bot.count("moves")
        bot.count("moves", 4)
        bot.gauge("depth", bot.id)

    result = await run(worker, 3)
    s = result.stats["server-side"]
    assert (s.count, s.failure_count) == (3, 3)
    assert s.max == pytest.approx(0.5, rel=1e-3)
    assert result.metrics["counters"] == {"moves": 15}
    assert result.metrics["gauges"]["depth"] in (0, 1, 2)


@pytest.mark.anyio
async def test_bot_random_is_seeded_from_seed_and_id() -> None:
    async def draws(**options: Any) -> dict[int, list[float]]:
        seen: dict[int, list[float]] = {}

        async def worker(bot: Bot) -> None:
            seen[bot.id] = [bot.random.random() for _ in range(3)]
            assert bot.random is bot.random

        await run(worker, 4, **options)
        return seen

    first = await draws(seed=42)
    assert first == await draws(seed=42)
    assert len({tuple(v) for v in first.values()}) == 4  # each bot has its own stream
    assert first != await draws(seed=43)
    assert first != await draws()


@pytest.mark.anyio
async def test_bot_log_is_tagged_with_the_bot_id(caplog: pytest.LogCaptureFixture) -> None:
    async def worker(bot: Bot) -> None:
        bot.log.info("hello %s", "there")

    with caplog.at_level(logging.INFO, logger="trio_bots"):
        await run(worker, 2)
    records = sorted(
        (r for r in caplog.records if "hello" in r.getMessage()), key=lambda r: r.getMessage()
    )
    assert [r.getMessage() for r in records] == ["[bot 0] hello there", "[bot 1] hello there"]
    assert [r.bot_id for r in records] == [0, 1]  # type: ignore[attr-defined]
    assert all(r.name == "trio_bots" for r in records)


@pytest.mark.trio
async def test_own_forgets_streams_the_client_closed_itself() -> None:
    """A client that reconnects for every request must not grow the owned list forever."""
    with trio.fail_after(10):
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        sizes: list[int] = []

        async def accept_all(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            while True:
                conn = await listener.accept()
                await conn.aclose()

        async def worker(bot: trio_bots.Bot) -> None:
            for _ in range(200):
                stream = await bot.connect_tcp("127.0.0.1", port)
                await stream.aclose()
            still_open = await bot.connect_tcp("127.0.0.1", port)
            sizes.append(len(bot.owned))
            assert still_open in bot.owned

        async with trio.open_nursery() as nursery:
            await nursery.start(accept_all)
            await trio_bots.swarm(worker, 1)
            nursery.cancel_scope.cancel()
        await listener.aclose()
        assert sizes and sizes[0] < 64
