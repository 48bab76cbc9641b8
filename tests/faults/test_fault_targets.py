"""Targets that misbehave and machine limits, all on loopback: a target that restarts,
trickles, stalls mid-frame or floods; fds and ephemeral ports running out mid-run; and
the same process running swarm after swarm."""

from __future__ import annotations

import gc
import json
import resource
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import trio
import trio.lowlevel
from _faults import PYTHON, Entered, child_env, echo, free_port, loopback_server
from _leaks import live_task_names, open_fds

import trio_bots
from trio_bots.protocols.framing import LengthPrefixed

LIMIT_MESSAGES = {
    "EMFILE": "too many open files (EMFILE)",
    "EADDRNOTAVAIL": "no free local port (EADDRNOTAVAIL)",
}


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# -- a target that restarts ----------------------------------------------------------------


@pytest.mark.trio
async def test_bots_that_reconnect_recover_from_a_restart_and_the_timeline_shows_the_gap() -> None:
    port = free_port()
    entered = Entered()
    tasks = len(live_task_names())
    fds = open_fds()

    async def worker(bot: trio_bots.Bot) -> None:
        stream = None
        while not bot.stopping.is_set():
            try:
                async with entered.measure(bot, "echo"):
                    if stream is None:
                        stream = await bot.connect_tcp("127.0.0.1", port)
                    await stream.send_all(b"ping")
                    if not await stream.receive_some():
                        raise ConnectionError("the server closed the connection")
            except (trio_bots.ConnectError, ConnectionError, trio.BrokenResourceError):
                if stream is not None:
                    await stream.aclose()  # owned, and closed again at the end: harmless
                stream = None
                await trio.sleep(0.1)  # back off, then reconnect
                continue
            await trio.sleep(0.05)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:

            async def target() -> None:
                async with loopback_server(echo, port):
                    await trio.sleep(1.0)
                await trio.sleep(1.5)  # down: connections are refused
                async with loopback_server(echo, port):
                    await trio.sleep_forever()

            nursery.start_soon(target)
            await trio.sleep(0.2)
            result = await trio_bots.swarm(worker, 5, duration=4.0, max_failures=None)
            nursery.cancel_scope.cancel()
    entered.check(result)
    echo_stats = result.stats["echo"]
    assert echo_stats.failure_count > 0 and echo_stats.count > 0
    kinds = {f.kind for f in result.failures}
    assert kinds <= {"ConnectError", "ConnectionError", "BrokenResourceError"}
    per_second = {b.t: b.names.get("echo") for b in result.timeline}
    ok = [t for t, n in sorted(per_second.items()) if n is not None and n.count]
    gap = [t for t in range(ok[0], ok[-1]) if t not in ok]
    assert gap, per_second  # a second with no success while the target was down
    assert ok[-1] >= 3  # recovered after the restart
    assert result.bot_failures == []
    assert len(live_task_names()) == tasks and open_fds() == fds


# -- trickle, half a frame -----------------------------------------------------------------


async def trickle(stream: trio.SocketStream) -> None:
    """Slowloris the other way: read the request, answer one byte a second."""
    await stream.receive_some()
    for byte in b"HTTP/1.1 200 OK\r\n\r\n":
        await stream.send_all(bytes([byte]))
        await trio.sleep(1)


async def half_frame(stream: trio.SocketStream) -> None:
    """Answer half of a length-prefixed frame, then stall."""
    await stream.receive_some()
    await stream.send_all(b"\x00\x00\x00\x10" + b"half")
    await trio.sleep_forever()


@pytest.mark.parametrize("serve", [trickle, half_frame])
@pytest.mark.trio
async def test_a_target_that_trickles_or_stalls_times_out_and_the_stop_is_on_time(
    serve: object,
) -> None:
    entered = Entered()
    tasks = len(live_task_names())
    fds = open_fds()

    async def worker(bot: trio_bots.Bot) -> None:
        stream = await bot.connect_tcp("127.0.0.1", port)
        frames = LengthPrefixed(stream)
        while not bot.stopping.is_set():
            try:
                async with entered.measure(bot, "get"):
                    await stream.send_all(b"GET / HTTP/1.1\r\n\r\n")
                    if serve is half_frame:
                        await frames.receive()
                    else:
                        while await stream.receive_some():
                            pass
            except trio_bots.RequestTimeout:
                stream = await bot.connect_tcp("127.0.0.1", port)
                frames = LengthPrefixed(stream)

    with trio.fail_after(20):
        async with loopback_server(serve, 0) as port:  # type: ignore[arg-type]
            start = trio.current_time()
            # the stop comes inside a request: the grace then cancels it
            result = await trio_bots.swarm(
                worker, 4, duration=1.6, stop_grace=0.3, request_timeout=0.5
            )
            took = trio.current_time() - start
    figures = entered.check(result)
    _, ok, failed, cancelled = figures["get"]
    # about 3 timeouts each (fewer on a slow loop), then the stop's grace cuts the last off
    assert ok == 0 and 4 * 2 <= failed <= 4 * 3 and cancelled == 4
    assert {f.kind for f in result.failures} == {"RequestTimeout"}
    assert took < 1.6 + 0.3 + 0.5  # within duration + stop_grace, with loop slack
    assert result.bots_finished == result.bots_started == 4  # nobody left blocked
    assert len(live_task_names()) == tasks and open_fds() == fds


# -- a target that floods and never reads ----------------------------------------------------


async def flood(stream: trio.SocketStream) -> None:
    chunk = b"x" * 65536
    while True:
        await stream.send_all(chunk)


@pytest.mark.trio
async def test_a_flooding_target_that_never_reads_keeps_memory_bounded() -> None:
    entered = Entered()
    received: list[int] = []

    async def worker(bot: trio_bots.Bot) -> None:
        stream = await bot.connect_tcp("127.0.0.1", port)
        got = 0
        while not bot.stopping.is_set():
            try:
                async with entered.measure(bot, "push") as m:
                    await stream.send_all(b"y" * 65536)  # blocks once the buffers are full
                    data = await stream.receive_some(65536)
                    got += len(data)
                    m.add_bytes(65536, len(data))
            except trio_bots.RequestTimeout:
                pass
        received.append(got)

    with trio.fail_after(30):
        async with loopback_server(flood, 0) as port:
            before = rss_kib()
            result = await trio_bots.swarm(
                worker, 8, duration=2.0, stop_grace=0.2, request_timeout=0.2, max_failures=None
            )
            grown = rss_kib() - before
    entered.check(result)
    push = result.stats["push"]
    assert sum(received) > 10 * 65536  # the flood did arrive
    assert push.failure_count > 0  # sends blocked: the target never reads
    # 8 connections' socket buffers are in the kernel; Python holds at most a chunk each
    assert grown < 40 * 1024, f"RSS grew {grown} KiB"


# -- out of fds mid-run ----------------------------------------------------------------------


@pytest.mark.trio
async def test_out_of_fds_mid_run_is_one_failure_group_naming_the_fix() -> None:
    entered = Entered()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    async def worker(bot: trio_bots.Bot) -> None:
        async with entered.measure(bot, "connect"):
            await bot.connect_tcp("127.0.0.1", port)
        await bot.stopping.wait()

    with trio.fail_after(20):
        async with loopback_server(echo, 0) as port:
            await trio.lowlevel.checkpoint()
            fds = open_fds()
            # The preflight passes (sockets_per_bot=0 turns it off, as a scenario that
            # opens more sockets than it declared would); the limit bites mid-run.
            resource.setrlimit(resource.RLIMIT_NOFILE, (fds + 30, hard))
            try:
                result = await trio_bots.swarm(
                    worker, 60, sockets_per_bot=0, max_failures=None, duration=0.5
                )
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            await trio.sleep(0.2)  # the target's handlers see EOF and close
            assert open_fds() == fds
    entered.check(result)
    connect = result.stats["connect"]
    assert connect.count > 0 and connect.failure_count > 0
    [group] = result.failures  # one group for every bot: no port in the message
    assert group.kind == "ConnectError" and group.count == connect.failure_count
    assert LIMIT_MESSAGES["EMFILE"] in group.message and "ulimit -n" in group.message
    assert all(isinstance(f.exception, trio_bots.ConnectError) for f in result.bot_failures)


# -- ephemeral ports exhausted, in a network namespace of our own ----------------------------

PORTS_CHILD = textwrap.dedent(
    """
    import json, trio, trio_bots

    async def main():
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, lambda s: trio.sleep_forever(), listeners)

            async def worker(bot):
                async with bot.measure("connect"):
                    await bot.connect_tcp("127.0.0.1", port)
                await bot.stopping.wait()

            result = await trio_bots.swarm(worker, 30, max_failures=None, duration=0.5)
            nursery.cancel_scope.cancel()
        c = result.stats["connect"]
        print(json.dumps({"ok": c.count, "failed": c.failure_count, "cancelled": c.cancelled,
                          "groups": [[f.kind, f.message, f.count] for f in result.failures]}))

    trio.run(main)
    """
)


def test_ephemeral_ports_exhausted_is_one_failure_group_naming_the_fix(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare(1) and ip(8) for a network namespace of its own")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"`unshare -n true` fails here ({probe.stderr.decode().strip()}): no netns")
    script = tmp_path / "ports.py"
    script.write_text(PORTS_CHILD)
    setup = (
        "ip link set lo up && echo '40000 40009' > /proc/sys/net/ipv4/ip_local_port_range"
        f" && exec {PYTHON} {script}"
    )
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", setup],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )
    if proc.returncode != 0 and "ip_local_port_range" in proc.stderr:
        pytest.skip(f"cannot set ip_local_port_range in the namespace: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # at most the 10 local ports connect (the kernel may keep one back); the rest fail
    assert 5 <= out["ok"] <= 10 and out["ok"] + out["failed"] == 30 and out["cancelled"] == 0
    [[kind, message, count]] = out["groups"]
    assert kind == "ConnectError" and count == out["failed"]
    assert LIMIT_MESSAGES["EADDRNOTAVAIL"] in message and "ip_local_port_range" in message


# -- repeated use in one process --------------------------------------------------------------


@pytest.mark.trio
async def test_two_hundred_swarms_in_a_row_leave_no_fd_task_or_memory_behind() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        stream = await bot.connect_tcp("127.0.0.1", port)
        async with bot.measure("echo"):
            await stream.send_all(b"hi")
            await stream.receive_some()

    with trio.fail_after(120):
        async with loopback_server(echo, 0) as port:
            await trio_bots.swarm(worker, 5)  # warm-up: imports, caches
            await trio.sleep(0.1)  # the server's handlers of the warm-up end
            gc.collect()
            fds, tasks, rss = open_fds(), len(live_task_names()), rss_kib()
            for _ in range(200):
                result = await trio_bots.swarm(worker, 5)
                assert result.stats["echo"].count == 5
            await trio.sleep(0.1)  # the server's handlers see EOF and end
            gc.collect()
            assert open_fds() == fds
            assert len(live_task_names()) == tasks
            assert rss_kib() - rss < 20 * 1024  # KiB
