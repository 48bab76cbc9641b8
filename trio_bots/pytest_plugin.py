"""The pytest plugin (entry point ``pytest11: trio_bots``): swarm fixtures for tests.

Both fixtures are *sync*, so they work under pytest-trio (``trio_mode`` or
``@pytest.mark.trio``) and under anyio's plugin (``@pytest.mark.anyio``, on
trio and asyncio) alike; the plugin never turns ``trio_mode`` on.

* ``swarm_runner``: an async function that runs a swarm, with the same
  arguments as `trio_bots.swarm`, and returns its `SwarmResult`.
* ``echo_server``: a loopback TCP echo server in its own thread and event
  loop; gives ``(host, port)``.

In a test that uses one of these fixtures, an ExceptionGroup around a lone
trio_bots error (pytest-trio wraps a test's exception in one) is reported as
that error; every other test keeps pytest's own report.

Example (a test module)::

    import pytest

    @pytest.mark.trio
    async def test_echo(swarm_runner, echo_server):
        host, port = echo_server

        async def worker(bot):
            stream = await bot.connect_tcp(host, port)
            async with bot.measure("echo"):
                await stream.send_all(b"ping")
                assert await stream.receive_some() == b"ping"

        result = await swarm_runner(worker, 10, thresholds=["failure_rate == 0"])
        assert result.stats["echo"].count == 10
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import pytest
import trio

from ._errors import TrioBotsError

if TYPE_CHECKING:
    from ._core.result import SwarmResult

#: How long teardown waits for the echo server's thread to end.
_JOIN_TIMEOUT = 10.0

#: The names of the fixtures defined here (by `_fixture`). The plugin loads in
#: every pytest run of a project that installs trio-bots; only a test that uses
#: one of them, directly or through another fixture, is its business.
_FIXTURES: set[str] = set()


def _fixture(fn: Callable[..., object]) -> Any:
    """`pytest.fixture`, for the fixtures of this plugin: records the name in `_FIXTURES`."""
    _FIXTURES.add(fn.__name__)
    return pytest.fixture(fn)


class SwarmRunner(Protocol):
    """The type of the ``swarm_runner`` fixture.

    Example:
        >>> import inspect
        >>> def test_typed(swarm_runner: SwarmRunner) -> None: ...
        >>> inspect.signature(test_typed).parameters["swarm_runner"].annotation
        'SwarmRunner'
    """

    def __call__(
        self, worker: Any, size: int, /, *, thresholds: Sequence[str] = (), **options: Any
    ) -> Awaitable[SwarmResult]: ...


class EchoAddress(NamedTuple):
    """Where the ``echo_server`` fixture listens; unpacks as ``host, port``.

    Example:
        >>> host, port = EchoAddress("127.0.0.1", 4242)
        >>> port
        4242
    """

    host: str
    port: int


async def _run_swarm(
    worker: Any, size: int, /, *, thresholds: Sequence[str] = (), **options: Any
) -> SwarmResult:
    __tracebackhide__ = True  # the failure is the swarm's, not this helper's
    # lazily: the plugin loads in every pytest run. The public swarm(): processes= and
    # ray= shard the run, as they do for trio_bots.swarm.
    from .distributed._front import swarm
    from .metrics import raise_failed

    if isinstance(thresholds, str):
        thresholds = [thresholds]
    try:
        # judged live by the swarm (abort_on_fail= stops it early) and at its end
        result = await swarm(worker, size, thresholds=list(thresholds) or None, **options)
        raise_failed(result.thresholds)
    except TrioBotsError as exc:
        # The engine's frames say nothing about the test: drop them. A bot's
        # own traceback is kept, in the cause.
        raise exc.with_traceback(None)  # noqa: B904 - the same exception, re-raised
    return result


def _only_leaf(group: BaseExceptionGroup[Any]) -> BaseException | None:
    """The single exception inside (nested) groups, or None when there are several."""
    while len(group.exceptions) == 1:
        inner: BaseException = group.exceptions[0]
        if not isinstance(inner, BaseExceptionGroup):
            return inner
        group = inner
    return None


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Show a lone trio_bots error as itself, not inside the runner's ExceptionGroup.

    pytest-trio (and task groups in general) wrap a test's exception in an
    ExceptionGroup; a failed threshold or an aborted swarm then reads as
    "ExceptionGroup: ...". Only in a test that uses one of this plugin's
    fixtures, and only a group holding exactly one `TrioBotsError`, is
    unwrapped; its traceback and ``__cause__`` (the bot's exception) stay.
    Every other test keeps pytest's own report.
    """
    __tracebackhide__ = True  # the test's failure, not this hook's
    if _FIXTURES.isdisjoint(pyfuncitem.fixturenames):
        return (yield)
    try:
        return (yield)
    except BaseExceptionGroup as group:
        leaf = _only_leaf(group)
        if not isinstance(leaf, TrioBotsError):
            raise
    raise leaf  # outside the except block: no "during handling" noise


@_fixture
def swarm_runner() -> SwarmRunner:
    """An async function that runs a swarm and returns its `SwarmResult`.

    ``await swarm_runner(worker, size, **options)`` takes the same
    arguments as `trio_bots.swarm`, ``thresholds=[...]``, ``abort_on_fail=``
    and ``abort_delay=`` included: the swarm judges the thresholds every
    second and at its end. A failing bot fails the test with `SwarmAborted`
    (its message names the bot, its cause is the bot's exception with the
    traceback); a failed threshold, or one that stopped the run with
    ``abort_on_fail=True``, with `ThresholdError`.

    Example:
        >>> @pytest.mark.trio
        ... async def test_login(swarm_runner):
        ...     result = await swarm_runner(worker, 50, duration=2)
        ...     result.assert_thresholds("p99(login) < 50ms")
    """
    return _run_swarm


class _EchoServer:
    """A trio echo server run by ``trio.run`` in a thread of its own."""

    def __init__(self, host: str) -> None:
        self._host = host
        self._ready: queue.Queue[int | BaseException] = queue.Queue()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._thread_main, name="trio_bots echo_server", daemon=True
        )

    def start(self) -> EchoAddress:
        self._thread.start()
        port = self._ready.get(timeout=_JOIN_TIMEOUT)
        if isinstance(port, BaseException):
            self._thread.join(_JOIN_TIMEOUT)
            raise RuntimeError(f"the echo server could not start on {self._host}") from port
        return EchoAddress(self._host, port)

    def stop(self) -> None:
        if self._token is not None and self._scope is not None:
            try:
                trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
            except trio.RunFinishedError:
                pass  # it ended on its own (an error, reported below)
        self._thread.join(_JOIN_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError(f"the echo server thread did not stop within {_JOIN_TIMEOUT} s")
        if self._error is not None:
            raise RuntimeError("the echo server failed") from self._error

    def _thread_main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.put(exc)

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        listeners = await trio.open_tcp_listeners(0, host=self._host)
        with trio.CancelScope() as scope:
            self._scope = scope
            self._ready.put(listeners[0].socket.getsockname()[1])
            await trio.serve_listeners(self._echo, listeners)

    @staticmethod
    async def _echo(stream: trio.SocketStream) -> None:
        async with stream:
            try:
                while data := await stream.receive_some(65536):
                    await stream.send_all(data)
            except trio.BrokenResourceError:
                pass  # the client went away mid-echo: normal for a load test


@_fixture
def echo_server() -> Iterator[EchoAddress]:
    """A TCP echo server on 127.0.0.1, in its own thread and event loop.

    Gives ``(host, port)``; the server, its listener and every connection
    are closed at teardown. Because it has its own loop, it works whatever
    the test's backend, and a busy swarm cannot starve it.

    Example:
        >>> @pytest.mark.anyio
        ... async def test_echo(swarm_runner, echo_server):
        ...     host, port = echo_server
    """
    server = _EchoServer("127.0.0.1")
    address = server.start()
    try:
        yield address
    finally:
        server.stop()
