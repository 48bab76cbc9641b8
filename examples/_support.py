"""What the runnable examples share: the server address, the checks, the summary.

Not an example itself. The examples import it as a sibling module, the way
``python examples/chat_swarm.py`` finds it (the script's folder is on
``sys.path``).

Example:
    >>> address("127.0.0.1:7777", "chat_swarm")
    ('127.0.0.1', 7777)
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import tempfile
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import trio

import trio_bots

Serve = Callable[..., Awaitable[None]]


def address(host: str | None, example: str, hint: str = "") -> tuple[str, int]:
    """Split the swarm's ``host`` option, ``HOST:PORT``, into (host, port).

    Raises:
        trio_bots.ConfigError: no host was given, or it has no port.

    Example:
        >>> address("[::1]:6379", "redis_bots")
        ('::1', 6379)
    """
    if not host:
        raise trio_bots.ConfigError(
            f"{example} needs a server address: pass --host HOST:PORT{hint and f'; {hint}'}"
        )
    name, colon, port = host.rpartition(":")
    if not colon or not name or not port.isdigit():
        raise trio_bots.ConfigError(
            f"--host must be HOST:PORT, such as 127.0.0.1:7777, got {host!r}"
        )
    return name.strip("[]"), int(port)


class Heard:
    """What a bot received, per sender, with a way to wait for the n-th item.

    Example:
        >>> heard = Heard()
        >>> heard.add("bot1", "hello")
        >>> heard.by_sender["bot1"]
        ['hello']
    """

    def __init__(self) -> None:
        self.by_sender: defaultdict[Hashable, list[Any]] = defaultdict(list)
        self._changed = trio.Event()

    def add(self, sender: Hashable, item: Any) -> None:
        """Record ``item`` from ``sender`` and wake the waiters."""
        self.by_sender[sender].append(item)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, sender: Hashable, n: int) -> None:
        """Wait until ``sender`` has sent at least ``n`` items."""
        while len(self.by_sender[sender]) < n:
            await self._changed.wait()


async def check_heard(
    bot: trio_bots.Bot, heard: Heard, sender: Hashable, said: list[Any], *, wait: float
) -> bool:
    """Check, under the metric ``check``, that ``heard`` got exactly ``said`` from ``sender``.

    It waits up to ``wait`` seconds for the last of them: the bot-to-bot
    message announcing ``said`` can overtake the server's delivery.

    Example:
        >>> async def worker(bot):
        ...     heard = Heard()
        ...     heard.add("bot1", "hi")
        ...     print(await check_heard(bot, heard, "bot1", ["hi"], wait=1.0))
        ...     print(await check_heard(bot, heard, "bot1", ["hi", "there"], wait=0.01))
        >>> result = trio.run(trio_bots.swarm, worker, 1)
        True
        False
        >>> result.failures[0].message
        'got 1 of the 2 messages bot1 sent'
    """
    async with bot.measure("check") as m:
        with trio.move_on_after(wait):
            await heard.wait_for(sender, len(said))
        got = heard.by_sender.get(sender, [])
        if got == said:
            return True
        if len(got) != len(said):
            m.fail(f"got {len(got)} of the {len(said)} messages {sender} sent")
        else:
            m.fail(f"messages from {sender} arrived changed or out of order")
        bot.log.warning("from %s: expected %r, got %r", sender, said[:5], got[:5])
    return False


def counter(result: trio_bots.SwarmResult, name: str) -> int:
    """A custom counter (``bot.count``) of the run; 0 when never counted.

    Example:
        >>> async def worker(bot):
        ...     bot.count("moves")
        >>> counter(trio.run(trio_bots.swarm, worker, 3), "moves")
        3
    """
    return int(result.metrics["counters"].get(name, 0))


async def run_swarm(
    worker: Any,
    defaults: Mapping[str, Any],
    serve: Serve | None = None,
    *,
    bots: int,
    minimum: int = 1,
    **overrides: Any,
) -> tuple[trio_bots.SwarmResult, str]:
    """Run an example's swarm; without a ``host``, first start ``serve`` on a free loopback port.

    Args:
        worker: the example's worker.
        defaults: the example's ``options`` (its ``size`` is ignored: ``bots`` wins).
        serve: ``serve(port=0, *, task_status)``, which reports its port with
            ``task_status.started(port)``; None when the example has no embedded server.
        bots: how many bots to run.
        minimum: the fewest bots the example makes sense with.
        **overrides: swarm options that replace the defaults (``duration``, ``host``...).

    Returns:
        The result and the ``HOST:PORT`` the bots talked to.

    Raises:
        trio_bots.ConfigError: too few bots, or a ``host`` that is not HOST:PORT.

    Example:
        >>> async def worker(bot):
        ...     pass
        >>> result, host = trio.run(lambda: run_swarm(worker, {"size": 5}, bots=2))
        >>> result.bots_finished, host
        (2, '')
    """
    if bots < minimum:
        raise trio_bots.ConfigError(f"--bots must be at least {minimum} here, got {bots}")
    options = {k: v for k, v in defaults.items() if k != "size"} | overrides
    host = options.get("host")
    if host is not None:
        address(host, "")  # a bad address is a usage error, before any bot starts
    if host is not None or serve is None:
        return await trio_bots.swarm(worker, bots, **options), host or ""
    error: trio_bots.TrioBotsError | None = None
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve)
        host = f"127.0.0.1:{port}"
        try:
            result = await trio_bots.swarm(worker, bots, **{**options, "host": host})
        except trio_bots.TrioBotsError as exc:  # raised alone, not in a group
            error = exc
        nursery.cancel_scope.cancel()
    if error is not None:
        raise error
    return result, host


async def serve_tcp(
    handle: Callable[[trio.SocketStream], Awaitable[None]],
    port: int,
    host: str,
    task_status: trio.TaskStatus[int],
) -> None:
    """Serve ``handle`` on (host, port) until cancelled, reporting the port to ``task_status``.

    Example:
        >>> async def handle(stream):
        ...     await stream.send_all(b"hi\\n")
        >>> async def main():
        ...     async with trio.open_nursery() as nursery:
        ...         port = await nursery.start(serve_tcp, handle, 0, "127.0.0.1")
        ...         nursery.cancel_scope.cancel()
        >>> trio.run(main)
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


@dataclass
class Report:
    """A run's result and its example-specific checks, printed as a short summary.

    Attributes:
        title: the first line, such as ``"chat_swarm: 50 bots on 127.0.0.1:7777"``.
        result: the `trio_bots.SwarmResult`.
        names: the request names to show, in order.
        lines: extra (label, text) lines, such as ``("messages", "sent 10")``.
        problems: example-specific checks that failed.

    Example:
        >>> async def worker(bot):
        ...     async with bot.measure("ping"):
        ...         pass
        >>> report = Report("demo", trio.run(trio_bots.swarm, worker, 2), ["ping"])
        >>> report.ok, report.exit_code
        (True, 0)
    """

    title: str
    result: trio_bots.SwarmResult
    names: Sequence[str]
    lines: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No failed request, no failed bot, no failed check, not aborted."""
        result = self.result
        return not (
            self.problems
            or result.aborted
            or result.bot_failures
            or result.stats.total.failure_count
        )

    @property
    def exit_code(self) -> int:
        """The CLI's codes: 0 ok, 1 a check failed, 3 aborted, 130/143 interrupted."""
        if self.result.interrupted:
            return 143 if self.result.signal == signal.SIGTERM else 130
        if self.result.aborted:
            return 3
        return 0 if self.ok else 1

    def __str__(self) -> str:
        result = self.result
        rows = [self.title]
        width = max([len(n) for n in self.names] + [len(k) for k, _ in self.lines] + [8])
        for name in self.names:
            stats = result.stats.get(name)
            if stats is None:
                rows.append(f"  {name:<{width}}  no requests")
                continue
            rows.append(
                f"  {name:<{width}}  {stats.count:>6} ok {stats.failure_count:>4} failed"
                f"   p50 {_ms(stats.percentile(50))}  p99 {_ms(stats.percentile(99))}"
            )
        rows += [f"  {label:<{width}}  {text}" for label, text in self.lines]
        for group in result.failures[:5]:
            rows.append(f"  {'failure':<{width}}  {group.count}x {group.name}: {group.message}")
        for failure in result.bot_failures[:5]:
            exc = failure.exception
            rows.append(f"  {'bot':<{width}}  bot {failure.bot_id}: {type(exc).__name__}: {exc}")
        rows += [f"  {'problem':<{width}}  {problem}" for problem in self.problems]
        verdict = "OK" if self.ok else "FAILED"
        if result.interrupted:
            verdict = "INTERRUPTED"
        rows.append(f"{verdict} in {result.duration:.1f} s")
        return "\n".join(rows)


def _ms(seconds: float) -> str:
    return "   n/a  " if math.isnan(seconds) else f"{seconds * 1000:6.2f} ms"


def arguments(description: str, *, bots: int, duration: float) -> argparse.ArgumentParser:
    """The options every example takes: --bots, --duration, --host, --seed.

    Example:
        >>> arguments("demo", bots=10, duration=2.0).parse_args([]).bots
        10
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bots", type=int, default=bots, help=f"how many bots (default {bots})")
    parser.add_argument(
        "--duration", type=float, default=duration, help=f"seconds to run (default {duration})"
    )
    parser.add_argument(
        "--host", default=None, help="HOST:PORT of a running server (default: start one)"
    )
    parser.add_argument("--seed", default=None, help="seed for the bots' random choices")
    return parser


def main(run: Callable[[], Awaitable[Report]]) -> int:
    """Run ``run`` under trio, print its summary, and return the exit code.

    A configuration error exits with 2, an aborted swarm with 3.

    Example:
        >>> async def run():
        ...     return Report("demo", await trio_bots.swarm(lambda bot: trio.sleep(0), 1), [])
        >>> main(run)
        demo
        OK in 0.0 s
        0
    """
    try:
        report = trio.run(run)
    except trio_bots.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except trio_bots.SwarmAborted as exc:
        print(f"aborted: {exc}", file=sys.stderr)
        return 3
    print(report, flush=True)
    return report.exit_code


def cli(
    run: Callable[..., Awaitable[Report]],
    options: Mapping[str, Any],
    doc: str | None,
    *,
    service: str | None = None,
    argv: list[str] | None = None,
) -> int:
    """An example's command line: parse the common flags, run, print, return the exit code.

    Args:
        run: the example's ``run(*, bots, duration, host, seed, handle_sigint)``.
        options: the example's ``options``, for the defaults of --bots and --duration.
        doc: the example's docstring; its first line describes it in --help.
        service: a service of services.py to start when no --host is given.
        argv: the arguments, ``sys.argv[1:]`` by default.

    An example's last lines::

        if __name__ == "__main__":
            sys.exit(cli(run, options, __doc__))
    """
    description = (doc or "").strip().splitlines()[0] if doc else None
    parser = arguments(description or "", bots=options["size"], duration=options["duration"])
    args = parser.parse_args(argv)

    def go(host: str | None) -> Awaitable[Report]:
        return run(
            bots=args.bots, duration=args.duration, host=host, seed=args.seed, handle_sigint=True
        )

    if service is not None:
        return main_with_service(service, args.host, go)
    return main(lambda: go(args.host))


def main_with_service(
    service: str, host: str | None, run: Callable[[str], Awaitable[Report]]
) -> int:
    """Like `main`, but first start ``service`` (see services.py) unless ``host`` is given.

    The service runs in a temporary folder, on a free loopback port, for the
    length of the run. A missing binary exits with 2 and says how to install it.

    `cli` calls it with ``service="redis"`` or ``"nginx"``.
    """
    if host:
        return main(lambda: run(host))
    import services  # the sibling module; only the command line needs it

    with tempfile.TemporaryDirectory(prefix=f"trio-bots-{service}-") as folder:
        try:
            _pid, started = services.start(service, folder)
        except services.ServiceError as exc:
            print(f"error: {exc}; or pass --host HOST:PORT of a running one", file=sys.stderr)
            return 2
        try:
            return main(lambda: run(started))
        finally:
            services.stop(service, folder)


def server_main(description: str, serve: Serve, port: int, argv: list[str] | None = None) -> int:
    """The command line of the example servers: ``--port`` and ``--host``, then serve.

    ``serve(port, host, *, task_status)`` reports the port it listens on with
    ``task_status.started(port)``. It prints the address and serves until Ctrl-C.

    `ServerScript.main` calls it; from a shell it looks like this::

        $ python examples/chat_server.py --port 0
        A small chat server with rooms: listening on 127.0.0.1:41234
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=port, help=f"TCP port (default {port}; 0: any)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    args = parser.parse_args(argv)
    errors: list[OSError] = []

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            try:
                bound = await nursery.start(serve, args.port, args.host)
            except OSError as exc:
                errors.append(exc)
                return
            print(f"{description.rstrip('.')}: listening on {args.host}:{bound}", flush=True)

    try:
        trio.run(run)
    except* KeyboardInterrupt:  # Ctrl-C is how it stops; it may come wrapped in a group
        pass
    for exc in errors:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
    return 2 if errors else 0


class Handles(Protocol):
    """A server's state, which serves each connection with ``await state.handle(stream)``."""

    async def handle(self, stream: trio.abc.Stream) -> None: ...


S = TypeVar("S", bound=Handles)


class ServerScript(Generic[S]):
    """An example server's two entry points, `serve` and `main`, made from its state class.

    An example server module builds one and exports its bound methods::

        serve = ServerScript(ChatServer, "A small chat server with rooms.", 7777).serve

    Args:
        state: the class of the server's state (or any callable making one).
        description: what ``--help`` and the "listening on" line call the server.
        port: the default of ``--port``.

    Example:
        >>> class Greeter:
        ...     async def handle(self, stream):
        ...         await stream.send_all(b"hello\\n")
        >>> script = ServerScript(Greeter, "A greeter.", 7000)
        >>> async def main():
        ...     async with trio.open_nursery() as nursery:
        ...         port = await nursery.start(script.serve)
        ...         async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        ...             print(bytes(await stream.receive_some()))
        ...         nursery.cancel_scope.cancel()
        >>> trio.run(main)
        b'hello\\n'
    """

    def __init__(self, state: Callable[[], S], description: str, port: int) -> None:
        self.state = state
        self.description = description
        self.port = port

    async def serve(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        server: S | None = None,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve on (host, port) until cancelled; ``nursery.start`` gives the port.

        Args:
            port: the TCP port; 0 picks a free one.
            host: the address to listen on; loopback by default.
            server: the state to serve, to inspect it from outside; a new one by default.

        Example:
            >>> class Silent:
            ...     async def handle(self, stream):
            ...         pass
            >>> async def main():
            ...     async with trio.open_nursery() as nursery:
            ...         port = await nursery.start(ServerScript(Silent, "", 0).serve)
            ...         print(port > 0)
            ...         nursery.cancel_scope.cancel()
            >>> trio.run(main)
            True
        """
        await serve_tcp((server or self.state()).handle, port, host, task_status)

    def main(self, argv: list[str] | None = None) -> int:
        """Serve until Ctrl-C with the command line of `server_main`; return the exit code.

        Example:
            >>> import socket
            >>> class Silent:
            ...     async def handle(self, stream):
            ...         pass
            >>> with socket.create_server(("127.0.0.1", 0)) as taken:  # cannot listen: exit 2
            ...     port = taken.getsockname()[1]
            ...     ServerScript(Silent, "A server.", port).main([])
            2
        """
        return server_main(self.description, self.serve, self.port, argv)
