"""trio_bots.testing.Network on its own: streams, latency, backpressure, faults."""

from __future__ import annotations

import ssl

import pytest
import trio
import trio.testing
import trustme

from trio_bots import ConfigError, ConnectError
from trio_bots.testing import BUFFER, Network, SimulatedStream


def virtual(fn, *args):  # type: ignore[no-untyped-def]
    """Run fn(*args) under trio in virtual time, bounded."""

    async def bounded():  # type: ignore[no-untyped-def]
        with trio.fail_after(3600):  # virtual seconds: a hang fails instead of looping
            return await fn(*args)

    return trio.run(bounded, clock=trio.testing.MockClock(autojump_threshold=0))


async def echo(stream: SimulatedStream) -> None:
    async for data in stream:
        await stream.send_all(data)


def test_echo_and_eof() -> None:
    async def main() -> tuple[bytes, bytes]:
        net = Network()
        async with net.serve(echo, "127.0.0.1", 7000):
            stream = await net.connect_tcp("127.0.0.1", 7000)
            await stream.send_all(b"hello")
            got = await stream.receive_some()
            await stream.send_eof()
            end = await stream.receive_some()  # the handler returned: its end closed
            await stream.aclose()
        assert net.statistics().connects == 1
        return got, end

    assert virtual(main) == (b"hello", b"")


def test_unserved_address_is_refused_and_nothing_is_resolved() -> None:
    async def main() -> None:
        net = Network()
        async with net.serve(echo, "localhost", 7000):
            with pytest.raises(ConnectError, match=r"cannot connect to 127\.0\.0\.1:7000"):
                await net.connect_tcp("127.0.0.1", 7000)
            with pytest.raises(ConnectError):
                await net.connect_tcp("localhost", 7001)
            stream = await net.connect_tcp("LOCALHOST", 7000)  # names are not case-sensitive
            await stream.aclose()
        assert net.statistics().refused == 2
        with pytest.raises(ConnectError):  # the block ended: nothing serves it any more
            await net.connect_tcp("localhost", 7000)

    virtual(main)


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="latency must be a number of seconds >= 0"):
        Network(latency=-1)
    with pytest.raises(ConfigError, match="seed must be an int, a string or None"):
        Network(seed=1.5)  # type: ignore[arg-type]

    async def main() -> None:
        net = Network()
        with pytest.raises(ConfigError, match="port must be an int from 1 to 65535"):
            async with net.serve(echo, "h", 0):
                pass
        async with net.serve(echo, "h", 1):
            with pytest.raises(ConfigError, match="h:1 is already served"):
                async with net.serve(echo, "h", 1):
                    pass

    virtual(main)


def test_latency_is_one_way_per_chunk() -> None:
    async def main() -> list[float]:
        net = Network(latency=0.25)
        async with net.serve(echo, "h", 1):
            stream = await net.connect_tcp("h", 1)
            rtts = []
            for _ in range(3):
                start = trio.current_time()
                await stream.send_all(b"x")
                await stream.receive_some()
                rtts.append(trio.current_time() - start)
            await stream.aclose()
        return rtts

    assert virtual(main) == [0.5, 0.5, 0.5]


def test_jitter_never_reorders_and_replays_from_its_seed() -> None:
    async def main(seed: int) -> list[tuple[float, bytes]]:
        net = Network(latency=0.01, jitter=0.05, seed=seed)
        arrivals: list[tuple[float, bytes]] = []

        async def reader(stream: SimulatedStream) -> None:
            async for data in stream:
                arrivals.append((trio.current_time(), data))

        async with net.serve(reader, "h", 1):
            stream = await net.connect_tcp("h", 1)
            for i in range(50):
                await stream.send_all(bytes([i]))
                await trio.sleep(0.001)  # chunks sent faster than the jitter
            await stream.aclose()
            await trio.sleep(1)
        return arrivals

    first = virtual(main, 1)
    data = b"".join(d for _, d in first)
    assert data == bytes(range(50))  # in order, nothing lost
    times = [t for t, _ in first]
    assert times == sorted(times)
    assert len(set(times)) > 5  # it did jitter: arrivals at many different times
    assert virtual(main, 1) == first
    assert virtual(main, 2) != first


def test_a_reader_that_stops_reading_blocks_the_writer() -> None:
    async def main() -> None:
        net = Network()
        reading = trio.Event()
        received: list[int] = []
        sent_at: list[float] = []

        async def lazy(stream: SimulatedStream) -> None:
            await reading.wait()
            while chunk := await stream.receive_some(10_000):
                received.append(len(chunk))

        async def send(stream: SimulatedStream) -> None:
            await stream.send_all(b"x" * (3 * BUFFER))
            sent_at.append(trio.current_time())

        async with net.serve(lazy, "h", 1):
            stream = await net.connect_tcp("h", 1)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send, stream)
                await trio.sleep(5)
                assert sent_at == []  # blocked: only BUFFER bytes fit while nobody reads
                reading.set()
            assert sent_at == [5.0]
            await stream.aclose()
            await trio.sleep(1)
        assert sum(received) == 3 * BUFFER
        assert max(received) <= 10_000

        # wait_send_all_might_not_block waits for room too.
        async with net.serve(lazy, "h", 2):
            reading = trio.Event()
            stream = await net.connect_tcp("h", 2)
            await stream.send_all(b"x" * BUFFER)
            with trio.move_on_after(1) as scope:
                await stream.wait_send_all_might_not_block()
            assert scope.cancelled_caught
            reading.set()
            await stream.wait_send_all_might_not_block()
            await stream.aclose()

    virtual(main)


def test_crash_breaks_both_ends_cancels_handlers_and_refuses_until_served_again() -> None:
    async def main() -> None:
        net = Network(latency=0.01)
        handler_saw: list[str] = []

        async def handler(stream: SimulatedStream) -> None:
            try:
                await stream.send_all(b"hi")
                await stream.receive_some()
            except trio.BrokenResourceError:
                handler_saw.append("broken")
            except trio.Cancelled:
                handler_saw.append("cancelled")
                raise

        async with net.serve(handler, "game", 9):
            clients = [await net.connect_tcp("game", 9) for _ in range(3)]
            for client in clients:
                assert await client.receive_some() == b"hi"
            assert net.statistics().open == 3
            net.crash("game", 9)
            for client in clients:
                with pytest.raises(trio.BrokenResourceError, match="crashed"):
                    await client.receive_some()
                with pytest.raises(trio.BrokenResourceError):
                    await client.send_all(b"x")
                await client.aclose()
            with pytest.raises(ConnectError):
                await net.connect_tcp("game", 9)
            async with net.serve(echo, "game", 9):  # served again, inside the old block
                again = await net.connect_tcp("game", 9)
                await again.send_all(b"back")
                assert await again.receive_some() == b"back"
                await again.aclose()
        await trio.lowlevel.checkpoint()
        assert len(handler_saw) == 3 and set(handler_saw) <= {"broken", "cancelled"}
        assert net.statistics().open == 0

    virtual(main)


def test_stall_holds_everything_then_delivers_it_in_order() -> None:
    async def main() -> None:
        net = Network(latency=0.1)
        async with net.serve(echo, "h", 1):
            stream = await net.connect_tcp("h", 1)
            net.stall("h", 1, 3.0)
            start = trio.current_time()
            for part in (b"a", b"b", b"c"):
                await stream.send_all(part)
            got = b""
            while len(got) < 3:
                got += await stream.receive_some()
            assert got == b"abc"
            assert trio.current_time() - start == pytest.approx(3.1)  # stall, then one latency
            await stream.aclose()

    virtual(main)


def test_closed_and_busy_streams() -> None:
    async def main() -> None:
        net = Network()
        async with net.serve(echo, "h", 1):
            stream = await net.connect_tcp("h", 1)
            with pytest.raises(ValueError, match="max_bytes"):
                await stream.receive_some(0)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream.receive_some)
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(trio.BusyResourceError):
                    await stream.receive_some()
                nursery.cancel_scope.cancel()
            await stream.send_eof()
            with pytest.raises(trio.ClosedResourceError, match="after send_eof"):
                await stream.send_all(b"x")
            await stream.aclose()
            await stream.aclose()  # closing twice is fine
            with pytest.raises(trio.ClosedResourceError):
                await stream.receive_some()
            assert "closed" in repr(stream)

    virtual(main)


def test_tls_over_the_simulated_network() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("secure.test").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def tls_echo(stream: SimulatedStream) -> None:
        tls = trio.SSLStream(stream, server_context, server_side=True)
        async for data in tls:
            await tls.send_all(data)

    async def main() -> bytes:
        net = Network(latency=0.01)
        async with net.serve(tls_echo, "secure.test", 443):
            raw = await net.connect_tcp("secure.test", 443)
            tls = trio.SSLStream(raw, client_context, server_hostname="secure.test")
            await tls.send_all(b"secret")
            data = await tls.receive_some()
            await tls.aclose()
        return data

    assert virtual(main) == b"secret"


def test_a_handler_error_ends_the_serve_block_with_it() -> None:
    async def broken(stream: SimulatedStream) -> None:
        raise RuntimeError("handler bug")

    async def main() -> None:
        net = Network()
        with pytest.raises(RuntimeError, match="handler bug"):
            async with net.serve(broken, "h", 1):
                await net.connect_tcp("h", 1)
                await trio.sleep_forever()

    virtual(main)


def test_repr_has_no_memory_address() -> None:
    assert repr(Network(latency=0.02, jitter=0.001, seed="s")) == (
        "Network(latency=0.02, jitter=0.001, seed='s')"
    )
