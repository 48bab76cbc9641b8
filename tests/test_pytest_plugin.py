"""The pytest plugin: its fixtures, run inside real pytest sessions with pytester."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from trio_bots.pytest_plugin import _EchoServer

pytest_plugins = ["pytester"]

# Every inner session is strict like ours, so a warning from the fixtures fails.
# In-process pytester runs see trio_bots already imported by the outer session, so
# pytest warns that it cannot rewrite its asserts: expected here, and only here.
INI = """
[pytest]
addopts = -p no:cacheprovider
filterwarnings =
    error
    ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning
"""

ECHO_WORKER = """
import trio_bots

def make_worker(host, port):
    async def worker(bot):
        stream = await bot.connect_tcp(host, port)
        for _ in range(3):
            async with bot.measure("echo"):
                await stream.send_all(b"ping %d" % bot.id)
                assert await stream.receive_some() == b"ping %d" % bot.id
    return worker
"""


def test_passing_swarm_under_pytest_trio(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        ECHO_WORKER
        + """
import pytest, trio

@pytest.mark.trio
async def test_echo(swarm_runner, echo_server):
    host, port = echo_server
    with trio.fail_after(30):
        result = await swarm_runner(make_worker(host, port), 5, thresholds=["p99(echo) < 10s"])
    assert result.stats["echo"].count == 15
    assert result.stats["echo"].failure_count == 0
    assert result.bots_finished == 5
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_under_the_anyio_plugin_on_both_backends(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        ECHO_WORKER
        + """
import anyio, pytest, sniffio

@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request):
    return request.param

@pytest.mark.anyio
async def test_echo(swarm_runner, echo_server, anyio_backend):
    assert sniffio.current_async_library() == anyio_backend
    host, port = echo_server
    with anyio.fail_after(30):
        result = await swarm_runner(make_worker(host, port), 4, duration=20)
    assert result.stats["echo"].count == 12
"""
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_echo?trio? PASSED*", "*test_echo?asyncio? PASSED*"])


def test_plugin_does_not_force_trio_mode(pytester: pytest.Pytester) -> None:
    # Without a marker or trio_mode, pytest does not run async tests at all;
    # the plugin must not change that (pytest-trio users opt in themselves).
    pytester.makeini(INI)
    pytester.makepyfile(
        """
def test_sync_fixture_values(swarm_runner, echo_server):
    assert callable(swarm_runner)
    host, port = echo_server
    assert host == "127.0.0.1" and port > 0

async def test_not_collected_as_trio(swarm_runner):
    pass
"""
    )
    result = pytester.runpytest()
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 1
    # pytest skips (or fails) the unmarked coroutine test; it never runs it.
    assert outcomes.get("skipped", 0) + outcomes.get("failed", 0) == 1


def test_failed_threshold_fails_with_a_readable_message(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
import pytest, trio

async def worker(bot):
    async with bot.measure("slow"):
        await trio.sleep(0.05)

@pytest.mark.trio
async def test_slow(swarm_runner):
    with trio.fail_after(30):
        await swarm_runner(worker, 2, thresholds=["p99(slow) < 1ms"])
"""
    )
    result = pytester.runpytest("-vv")  # -vv: summary lines are not cut
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ThresholdError*", "*p99(slow) < 1ms*"])
    # The summary names the error itself, not pytest-trio's ExceptionGroup around it.
    result.stdout.fnmatch_lines(["FAILED *::test_slow - *ThresholdError*"])
    result.stdout.no_fnmatch_line("*Exception Group Traceback*")
    result.stdout.no_fnmatch_line("*Exceptions from Trio nursery*")


def test_bot_exception_fails_with_the_bot_id_and_its_traceback(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
import pytest, trio

async def worker(bot):
    await trio.sleep(0.01)
    if bot.id == 2:
        raise KeyError("no such table")

@pytest.mark.trio
async def test_bots(swarm_runner):
    with trio.fail_after(30):
        await swarm_runner(worker, 4)
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            # The cause first, with the line that raised ...
            '*raise KeyError("no such table")*',
            "*KeyError: 'no such table'*",
            "*direct cause*",
            # ... then the abort naming the bot.
            "*SwarmAborted: bot 2 failed: KeyError*",
        ]
    )
    result.stdout.no_fnmatch_line("*Exception Group Traceback*")
    result.stdout.no_fnmatch_line("*Exceptions from Trio nursery*")


def test_exception_groups_are_unwrapped_only_in_tests_that_use_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    # The plugin is loaded in every pytest run of a project that installs
    # trio-bots: a test that uses none of its fixtures keeps pytest's own report,
    # even for a group around a lone trio_bots error.
    pytester.makeini(INI)
    pytester.makepyfile(
        """
import pytest, trio, trio_bots

def test_plain():
    raise ExceptionGroup("plain group", [trio_bots.ThresholdError("plain leaf")])

@pytest.mark.trio
async def test_plain_trio():
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio_bots.swarm, None, 0)  # a ConfigError, in the nursery's group

@pytest.fixture
def run_login(swarm_runner):  # a user's fixture over ours: that test uses the plugin too
    async def worker(bot):
        async with bot.measure("login"):
            await trio.sleep(0.05)
    return lambda: swarm_runner(worker, 1, thresholds=["p99(login) < 1ms"])

@pytest.mark.trio
async def test_swarm(swarm_runner):
    await trio.sleep(0)
    raise ExceptionGroup("swarm group", [trio_bots.ThresholdError("swarm leaf")])

@pytest.mark.trio
async def test_indirect(run_login):
    with trio.fail_after(30):
        await run_login()
"""
    )
    reports = pytester.inline_run().getreports("pytest_runtest_logreport")
    failed = {r.head_line: r.longreprtext for r in reports if r.when == "call" and r.failed}
    assert sorted(failed) == ["test_indirect", "test_plain", "test_plain_trio", "test_swarm"]

    # Without the plugin's fixtures: pytest's normal ExceptionGroup report.
    assert "ExceptionGroup: plain group (1 sub-exception)" in failed["test_plain"]
    assert "ThresholdError: plain leaf" in failed["test_plain"]
    assert "ExceptionGroup: " in failed["test_plain_trio"]
    assert "ConfigError" in failed["test_plain_trio"]

    # With them, directly or through another fixture: the lone error itself.
    for name, leaf in [("test_swarm", "swarm leaf"), ("test_indirect", "1 of 1 thresholds failed")]:
        assert "ExceptionGroup" not in failed[name]
        assert "ThresholdError: " + leaf in failed[name]


def test_echo_server_echoes_and_shuts_down_cleanly() -> None:
    server = _EchoServer("127.0.0.1")
    host, port = server.start()
    with socket.create_connection((host, port), timeout=10) as first:
        first.sendall(b"hello")
        assert first.recv(100) == b"hello"
        # Stopping closes the listener and every open connection.
        server.stop()
        first.settimeout(10)
        assert first.recv(100) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=10).close()


def test_the_examples_in_docs_pytest_md_pass(pytester: pytest.Pytester) -> None:
    doc = (Path(__file__).parent.parent / "docs" / "pytest.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.DOTALL)
    assert len(blocks) >= 2
    pytester.makeini(INI)
    for index, block in enumerate(blocks):
        pytester.makepyfile(**{f"test_doc_{index}": block})
    result = pytester.runpytest()
    result.assert_outcomes(passed=len(blocks) + 1)  # the anyio example runs twice
