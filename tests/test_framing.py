"""Framing building blocks: partial reads, splits at every boundary, limits, EOF."""

from __future__ import annotations

import itertools
import struct

import anyio
import anyio.abc
import pytest
import trio
import trio.testing
from _fakebot import open_fake_bot
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_bots import ConfigError, ProtocolError
from trio_bots.protocols.framing import Buffered, LengthPrefixed, Lines


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def send_pieces(stream: trio.abc.SendStream, data: bytes, bounds: list[int]) -> None:
    """Send ``data`` cut at ``bounds``, one receive per piece (lockstep), then EOF."""
    cuts = sorted({0, len(data), *(b for b in bounds if 0 < b < len(data))})
    for a, b in itertools.pairwise(cuts):
        await stream.send_all(data[a:b])
    await stream.aclose()


@pytest.mark.trio
async def test_receive_until_finds_a_delimiter_split_at_every_boundary() -> None:
    wire = b"alpha\r\n\r\nbeta\r\n\r\n\r\n\r\ngamma"
    with trio.fail_after(10):
        for cut1, cut2 in itertools.combinations(range(1, len(wire)), 2):
            send, receive = trio.testing.lockstep_stream_pair()
            buf = Buffered(receive)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_pieces, send, wire, [cut1, cut2])
                assert await buf.receive_until(b"\r\n\r\n") == b"alpha"
                assert await buf.receive_until(b"\r\n\r\n") == b"beta"
                assert await buf.receive_until(b"\r\n\r\n") == b""
                assert await buf.receive_exactly(3) == b"gam"
                rest = b""
                while data := await buf.receive_some():
                    rest += data
                assert rest == b"ma"


@pytest.mark.trio
async def test_receive_until_limits_and_eof() -> None:
    with trio.fail_after(5):
        a, b = trio.testing.memory_stream_pair()
        buf = Buffered(b)
        await a.send_all(b"12345\n123456\n")
        assert await buf.receive_until(b"\n", max_bytes=5) == b"12345"
        with pytest.raises(ProtocolError, match="max_bytes=5"):
            await buf.receive_until(b"\n", max_bytes=5)

        a, b = trio.testing.memory_stream_pair()
        buf = Buffered(b)
        await a.send_all(b"x" * 10)  # no delimiter yet, already too long
        with pytest.raises(ProtocolError, match=r"max_bytes=8 \(10 bytes pending"):
            await buf.receive_until(b"\n", max_bytes=8)

        a, b = trio.testing.memory_stream_pair()
        buf = Buffered(b)
        await a.send_all(b"done\npartial")
        await a.aclose()
        assert await buf.receive_until(b"\n") == b"done"
        with pytest.raises(ProtocolError, match="7 bytes of a partial frame pending"):
            await buf.receive_until(b"\n")

        a, b = trio.testing.memory_stream_pair()
        buf = Buffered(b)
        await a.aclose()
        with pytest.raises(anyio.EndOfStream):
            await buf.receive_until(b"\n")
        with pytest.raises(anyio.EndOfStream):
            await buf.receive_exactly(1)
        with pytest.raises(ConfigError):
            await buf.receive_until(b"")


@pytest.mark.trio
async def test_a_long_frame_byte_by_byte_is_scanned_once() -> None:
    # The search resumes where it stopped: a frame arriving byte by byte stays linear.
    with trio.fail_after(20):
        a, b = trio.testing.memory_stream_pair()
        buf = Buffered(b)
        frame = bytes(range(256)).replace(b"|", b"") * 4
        got: list[bytes] = []

        async def receive_frame() -> None:
            got.append(await buf.receive_until(b"||", max_bytes=len(frame)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_frame)
            for n, byte in enumerate(frame + b"|", start=1):
                await a.send_all(bytes([byte]))
                await trio.testing.wait_all_tasks_blocked()  # it searched and waits for more
                # Only the last byte can start a "||" that the next byte completes.
                assert (buf.buffered, buf._scan) == (n, n - 1)
            await a.send_all(b"|rest")  # completes the delimiter
        assert got == [frame]
        assert buf.buffered == 4 and buf._scan == 0  # "rest" waits; its search starts afresh
        assert await buf.receive_some() == b"rest"


@pytest.mark.trio
async def test_receive_exactly_and_partial_eof() -> None:
    with trio.fail_after(5):
        a, b = trio.testing.memory_stream_pair()
        buf = Buffered(b)
        await a.send_all(b"abcdefg")
        await a.aclose()
        assert await buf.receive_some(2) == b"ab"
        assert await buf.fill(2)
        assert buf.peek(2) == b"cd"
        assert await buf.receive_exactly(2) == b"cd"
        with pytest.raises(ProtocolError, match="3 bytes of a partial frame pending"):
            await buf.receive_exactly(4)


@settings(max_examples=80, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")), max_size=10),
    cuts=st.lists(st.integers(1, 250), max_size=15),
)
@pytest.mark.trio
async def test_lines_split_anywhere(lines: list[bytes], cuts: list[int]) -> None:
    with trio.fail_after(5):
        send, receive = trio.testing.lockstep_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_pieces, send, b"".join(x + b"\n" for x in lines), cuts)
            assert [line async for line in Lines(receive)] == lines


@settings(max_examples=80, deadline=None)
@given(
    msgs=st.lists(st.binary(max_size=40), max_size=8),
    cuts=st.lists(st.integers(1, 400), max_size=15),
    header=st.sampled_from(["!I", "<H", "!B", ">Q"]),
)
@pytest.mark.trio
async def test_length_prefixed_split_anywhere(
    msgs: list[bytes], cuts: list[int], header: str
) -> None:
    with trio.fail_after(5):
        a, b = trio.testing.memory_stream_pair()
        writer = LengthPrefixed(a, header=header)
        for msg in msgs:
            await writer.send(msg)
        wire = b""
        while len(wire) < sum(len(m) for m in msgs) + len(msgs) * struct.calcsize(header):
            wire += await b.receive_some()
        send, receive = trio.testing.lockstep_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_pieces, send, wire, cuts)
            assert [m async for m in LengthPrefixed(receive, header=header)] == msgs


@pytest.mark.trio
async def test_length_prefixed_errors() -> None:
    with pytest.raises(ConfigError, match="exactly one integer"):
        LengthPrefixed(trio.testing.memory_stream_pair()[0], header="!II")
    with pytest.raises(ConfigError, match="bad length header"):
        LengthPrefixed(trio.testing.memory_stream_pair()[0], header="!Z")
    with trio.fail_after(5):
        a, b = trio.testing.memory_stream_pair()
        with pytest.raises(ProtocolError, match="does not fit"):
            await LengthPrefixed(a, header="!B").send(b"x" * 256)
        with pytest.raises(ProtocolError, match="exceeds max_size=3"):
            await LengthPrefixed(a, max_size=3).send(b"abcd")
        await a.send_all(b"\x00\x00\x00\x09abc")
        await a.aclose()
        with pytest.raises(ProtocolError, match="7 bytes of a partial frame"):
            await LengthPrefixed(b).receive()

        a, b = trio.testing.memory_stream_pair()
        await a.send_all(b"\x00\x00\x01\x00")
        with pytest.raises(ProtocolError, match="announced a message of 256 bytes"):
            await LengthPrefixed(b, max_size=255).receive()

        a, b = trio.testing.memory_stream_pair()
        await a.send_all(b"\x00\x00")  # EOF inside the header itself
        await a.aclose()
        with pytest.raises(ProtocolError, match="2 bytes of a partial frame"):
            async for _ in LengthPrefixed(b):
                pass


@pytest.mark.trio
async def test_lines_errors_and_a_shared_buffer() -> None:
    with trio.fail_after(5):
        a, b = trio.testing.memory_stream_pair()
        with pytest.raises(ProtocolError, match="contains the delimiter"):
            await Lines(a).send(b"two\nlines")
        with pytest.raises(ConfigError):
            Lines(a, delimiter=b"")
        # A text header line followed by a length-prefixed body, on one buffer.
        await a.send_all(b"HELLO 1\r\n\x00\x00\x00\x02hi" + b"tail")
        await a.aclose()
        buf = Buffered(b)
        assert await Lines(buf, delimiter=b"\r\n").receive() == b"HELLO 1"
        assert await LengthPrefixed(buf).receive() == b"hi"
        with pytest.raises(ProtocolError, match="4 bytes of a partial frame"):
            async for _ in Lines(buf):
                pass


@pytest.mark.anyio
async def test_framing_over_loopback_on_both_backends() -> None:
    async def echo(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            async for data in stream:
                await stream.send(data)

    with anyio.fail_after(10):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg, open_fake_bot() as bot:
            tg.start_soon(listener.serve, echo)
            stream = await bot.connect_tcp("127.0.0.1", port)
            async with Lines(stream) as lines:
                for i in range(50):
                    await lines.send(b"line %d" % i)
                assert [await lines.receive() for _ in range(50)] == [
                    b"line %d" % i for i in range(50)
                ]
            stream = await bot.connect_tcp("127.0.0.1", port)
            async with LengthPrefixed(stream) as framed:
                big = bytes(range(256)) * 1000
                await framed.send(big)
                await framed.send(b"")
                assert await framed.receive() == big
                assert await framed.receive() == b""
            tg.cancel_scope.cancel()
