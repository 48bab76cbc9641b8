"""Wire transcripts: every chunk a traced bot sends and receives, one line per event.

``trace_bots=[N, ...]`` (``--trace-bot N``) makes bot N a `TracedBot`: each
stream it owns is wrapped in a `TracedStream` (a `TracedDatagrams` for UDP),
and its ``bot.log`` lines and group messages go to the same file,
``trace-N.log`` under ``trace_dir``. ``trace_failures=K`` keeps each bot's
last K events in memory instead, and writes them only when the bot fails or
a request of it fails under ``measure`` (at most `MAX_DUMPS` a run).

Untraced bots are plain `Bot` objects over their raw streams: tracing adds
nothing to their memory or to their send and receive paths.

A line is ``t bot stream kind payload``, split by single spaces:

- ``t``: seconds on the swarm clock since the start; ``bot``: the bot id;
- ``stream``: ``tcp0``, ``tls1``, ``udp2``... (``-`` for events of no stream);
- ``kind``: ``>`` sent, ``<`` received (the payload is a Python bytes literal,
  ``b''`` at EOF), or ``open``, ``close``, ``eof``, ``note`` (a protocol
  helper's `TracedStream.annotate`), ``log``, ``msg>``, ``msg<``, ``fail``,
  whose payload is a Python str literal.

`read_trace` parses a file back into `TraceEvent` tuples.

Example:
    >>> import functools, os, tempfile, trio, trio_bots
    >>> async def worker(bot):
    ...     a, b = trio.testing.memory_stream_pair()
    ...     a = bot.own(a)  # use what own() returns: the traced stream
    ...     await a.send_all(b"PING\\r\\n")
    ...     bot.log.info("sent a ping")
    >>> folder = tempfile.mkdtemp()
    >>> _ = trio.run(functools.partial(trio_bots.swarm, worker, 2, trace_bots=[1],
    ...                                trace_dir=folder))
    >>> os.listdir(folder)
    ['trace-1.log']
    >>> for event in read_trace(os.path.join(folder, "trace-1.log")):
    ...     print(event.stream, event.kind, repr(event.payload))
    stream0 open 'StapledStream'
    stream0 > b'PING\\r\\n'
    - log 'sent a ping'
    stream0 close ''
"""

from __future__ import annotations

import ast
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

import trio

from .._errors import ConfigError
from .bot import Bot
from .messaging import RECV_ALL, Message, Messaging, RecvFilter, SendFilter
from .runtime import BotState, Runtime
from .transport import UDPConnection

__all__ = ["MAX_DUMPS", "TraceEvent", "TracedBot", "TracedStream", "Tracer", "read_trace"]

#: At most this many ``trace_failures`` dumps are written in one run.
MAX_DUMPS = 100

#: The kinds whose payload is bytes; every other kind's payload is a str.
BYTE_KINDS = frozenset({">", "<"})

_logger = logging.getLogger("trio_bots")


class TraceEvent(NamedTuple):
    """One line of a transcript, parsed by `read_trace`.

    Attributes:
        t: seconds on the swarm clock since the start of the run.
        bot: the bot's id.
        stream: the stream's name (``tcp0``), or ``"-"``.
        kind: ``">"``, ``"<"``, or a word (``open``, ``note``, ``log``...).
        payload: bytes for ``>`` and ``<``, else a str.

    Example:
        >>> TraceEvent.parse("0.001500 3 tcp0 > b'PING\\\\r\\\\n'")
        TraceEvent(t=0.0015, bot=3, stream='tcp0', kind='>', payload=b'PING\\r\\n')
    """

    t: float
    bot: int
    stream: str
    kind: str
    payload: bytes | str

    @classmethod
    def parse(cls, line: str) -> TraceEvent:
        """Parse one line of a transcript.

        Raises:
            ValueError: the line is not ``t bot stream kind payload``.
        """
        parts = line.rstrip("\n").split(" ", 4)
        if len(parts) != 5:
            raise ValueError(f"a trace line is 't bot stream kind payload', got {line!r}")
        t, bot, stream, kind, literal = parts
        payload = ast.literal_eval(literal)
        wanted = bytes if kind in BYTE_KINDS else str
        if not isinstance(payload, wanted):
            raise ValueError(f"the payload of a {kind!r} line must be {wanted.__name__}: {line!r}")
        return cls(float(t), int(bot), stream, kind, payload)


def read_trace(path: str | Path) -> list[TraceEvent]:
    """Every event of the transcript at `path`, in order.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "trace-0.log"
        >>> _ = path.write_text("0.100000 0 tcp0 < b'+OK\\\\r\\\\n'\\n")
        >>> read_trace(path)[0].payload
        b'+OK\\r\\n'
    """
    with open(path, encoding="utf-8") as file:
        return [TraceEvent.parse(line) for line in file if line.strip()]


def _stream_kind(stream: Any) -> str:
    if isinstance(stream, trio.SSLStream):
        return "tls"
    if isinstance(stream, trio.SocketStream):
        return "tcp"
    return "stream"


def _describe(stream: Any) -> str:
    """``PEER from LOCAL`` when the stream has a socket, else the stream's type."""
    sock: Any = getattr(stream, "socket", None)
    if sock is None:
        sock = getattr(getattr(stream, "transport_stream", None), "socket", None)
    try:
        host, port = sock.getpeername()[:2]
        local_host, local_port = sock.getsockname()[:2]
    except Exception:
        return type(stream).__name__
    return f"{host}:{port} from {local_host}:{local_port}"


class BotTrace:
    """The transcript of one bot: a file (``trace_bots``) or a ring (``trace_failures``).

    Example:
        >>> trace = Tracer(trace_failures=2, clock=lambda: 0.0).for_bot(0)
        >>> for n in range(3):
        ...     trace.event("tcp0", ">", repr(bytes([48 + n])))
        >>> [line.split()[-1] for line in trace.ring]
        ["b'1'", "b'2'"]
    """

    __slots__ = ("bot_id", "file", "ring", "streams", "tracer")

    def __init__(self, tracer: Tracer, bot_id: int, *, ring: int | None = None) -> None:
        self.tracer = tracer
        self.bot_id = bot_id
        self.streams = 0
        self.ring: deque[str] | None = None if ring is None else deque(maxlen=ring)
        self.file: IO[str] | None = None

    def line(self, stream: str, kind: str, payload: str) -> str:
        """One line of the transcript, now; `payload` is already a literal."""
        tracer = self.tracer
        return f"{tracer.clock() - tracer.start_time:.6f} {self.bot_id} {stream} {kind} {payload}\n"

    def event(self, stream: str, kind: str, payload: str) -> None:
        """Write (or keep, in the ring) one line; `payload` is already a literal."""
        line = self.line(stream, kind, payload)
        if self.ring is not None:
            self.ring.append(line)
        elif self.file is not None:
            self.file.write(line)

    def chunk(self, stream: str, kind: str, data: Any) -> None:
        """Record bytes sent (``>``) or received (``<``)."""
        self.event(stream, kind, repr(bytes(data)))

    def text(self, stream: str, kind: str, text: str) -> None:
        """Record a text event (``note``, ``log``...)."""
        self.event(stream, kind, repr(str(text)))

    def wrap(self, resource: Any) -> Any:
        """The traced face of `resource`: streams and UDP are wrapped, the rest is not."""
        if isinstance(resource, TracedStream | TracedDatagrams):
            return resource
        if isinstance(resource, UDPConnection):
            name = f"udp{self.streams}"
            self.streams += 1
            self.text(name, "open", "udp")
            return TracedDatagrams(resource, self, name)
        if hasattr(resource, "send_all") and hasattr(resource, "receive_some"):
            name = f"{_stream_kind(resource)}{self.streams}"
            self.streams += 1
            self.text(name, "open", _describe(resource))
            return TracedStream(resource, self, name)
        return resource

    def close(self) -> None:
        """Close the file, if any."""
        if self.file is not None:
            self.file.close()
            self.file = None


class TracedStream:
    """A byte stream that records every chunk through to its bot's transcript.

    It forwards ``send_all``, ``receive_some``, ``send_eof``, ``aclose`` and
    every other attribute (``socket``, ``getpeername``...) to the stream it
    wraps, `stream`. Protocol helpers find `annotate` by duck typing.

    Example:
        >>> import trio, trio.testing
        >>> from trio_bots._core.trace import Tracer
        >>> trace = Tracer(trace_failures=10, clock=lambda: 1.5, start_time=1.0).for_bot(7)
        >>> async def main():
        ...     a, b = trio.testing.memory_stream_pair()
        ...     traced = trace.wrap(a)
        ...     traced.annotate("hello frame")
        ...     await traced.send_all(b"hi")
        >>> trio.run(main)
        >>> print("".join(trace.ring), end="")
        0.500000 7 stream0 open 'StapledStream'
        0.500000 7 stream0 note 'hello frame'
        0.500000 7 stream0 > b'hi'
    """

    __slots__ = ("name", "stream", "trace")

    def __init__(self, stream: Any, trace: BotTrace, name: str) -> None:
        self.stream = stream
        self.trace = trace
        self.name = name

    def __repr__(self) -> str:
        return f"<TracedStream {self.name} over {self.stream!r}>"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def annotate(self, text: str) -> None:
        """Write `text` into the transcript as a ``note`` of this stream."""
        self.trace.text(self.name, "note", text)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Record `data` as sent, then send it."""
        self.trace.chunk(self.name, ">", data)
        await self.stream.send_all(data)

    async def receive_some(self, max_bytes: int | None = None) -> Any:
        """Receive, and record what came (``b''`` at EOF)."""
        data = await self.stream.receive_some(max_bytes)
        self.trace.chunk(self.name, "<", data)
        return data

    async def send_eof(self) -> None:
        """Close the sending side, and record it."""
        self.trace.text(self.name, "eof", "")
        await self.stream.send_eof()

    async def wait_send_all_might_not_block(self) -> None:
        """As the wrapped stream's."""
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Close the wrapped stream, and record it."""
        self.trace.text(self.name, "close", "")
        await self.stream.aclose()


class TracedDatagrams:
    """A `UDPConnection` that records every datagram through to its bot's transcript.

    Example:
        >>> TracedDatagrams.send.__doc__
        'Record `data` as sent, then send it.'
    """

    __slots__ = ("connection", "name", "trace")

    def __init__(self, connection: UDPConnection, trace: BotTrace, name: str) -> None:
        self.connection = connection
        self.trace = trace
        self.name = name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)

    def annotate(self, text: str) -> None:
        """Write `text` into the transcript as a ``note`` of this socket."""
        self.trace.text(self.name, "note", text)

    async def send(self, data: bytes) -> None:
        """Record `data` as sent, then send it."""
        self.trace.chunk(self.name, ">", data)
        await self.connection.send(data)

    async def receive(self) -> bytes:
        """Wait for one datagram, and record it."""
        data = await self.connection.receive()
        self.trace.chunk(self.name, "<", data)
        return data

    async def aclose(self) -> None:
        """Close the socket, and record it."""
        self.trace.text(self.name, "close", "")
        await self.connection.aclose()


class Tracer:
    """The run's transcripts: which bots are traced, their files and rings, the dumps.

    The swarm makes one when ``trace_bots`` or ``trace_failures`` is given
    (`tracer_for_run`), and hands it to the runtime as ``runtime.tracer``.

    Args:
        trace_bots: the ids of the bots traced to a file.
        trace_failures: the ring's length K, or None for no ring.
        trace_dir: the folder of the files (None: the current one), created if missing.
        clock: the swarm's clock; ``t`` is ``clock() - start_time``.
        warn: how the run is told about a warning (``Runtime.warn``).

    Raises:
        ConfigError: `trace_dir` cannot be created.

    Example:
        >>> import tempfile
        >>> tracer = Tracer(trace_bots=[2], trace_failures=5, trace_dir=tempfile.mkdtemp(),
        ...                 clock=lambda: 0.0)
        >>> tracer.for_bot(0).ring.maxlen, tracer.for_bot(2).ring, tracer.path(2).name
        (5, None, 'trace-2.log')
        >>> tracer.close()
    """

    def __init__(
        self,
        *,
        trace_bots: Iterable[int] = (),
        trace_failures: int | None = None,
        trace_dir: str | Path | None = None,
        clock: Callable[[], float],
        start_time: float = 0.0,
        warn: Callable[[str], None] = _logger.warning,
    ) -> None:
        self.clock = clock
        self.start_time = start_time
        self.warn = warn
        self.traced: frozenset[int] = frozenset(trace_bots)
        self.ring = trace_failures
        self.folder = Path(trace_dir or ".")
        self.traces: dict[int, BotTrace] = {}
        self.dumps = 0
        self._dumped: set[int] = set()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"trace_dir {str(self.folder)!r} cannot be created: {exc.strerror or exc}"
            ) from None

    def path(self, bot_id: int) -> Path:
        """Where bot `bot_id`'s transcript goes: ``trace_dir/trace-N.log``."""
        return self.folder / f"trace-{bot_id}.log"

    def wants(self, bot_id: int) -> bool:
        """Whether bot `bot_id` is traced (to a file or to a ring)."""
        return self.ring is not None or bot_id in self.traced

    def for_bot(self, bot_id: int) -> BotTrace | None:
        """The transcript of a bot about to start, or None when it is not traced."""
        if bot_id in self.traced:
            trace = BotTrace(self, bot_id)
            trace.file = open(self.path(bot_id), "w", encoding="utf-8")
        elif self.ring is not None:
            trace = BotTrace(self, bot_id, ring=self.ring)
        else:
            return None
        self.traces[bot_id] = trace
        return trace

    def request_failed(self, bot_id: int, name: str, reason: str) -> None:
        """A measured request of this bot failed: dump its ring (``trace_failures``)."""
        self._dump(bot_id, f"request {name!r} failed: {reason}")

    def bot_failed(self, bot_id: int, exc: BaseException) -> None:
        """This bot failed: dump its ring (``trace_failures``), or note it in its file."""
        self._dump(bot_id, f"bot failed: {type(exc).__name__}: {exc}")

    def _dump(self, bot_id: int, reason: str) -> None:
        trace = self.traces.get(bot_id)
        if trace is None:
            return
        if trace.ring is None:
            trace.text("-", "fail", reason)
            return
        if self.dumps >= MAX_DUMPS:
            return
        self.dumps += 1
        mode = "a" if bot_id in self._dumped else "w"
        self._dumped.add(bot_id)
        with open(self.path(bot_id), mode, encoding="utf-8") as file:
            file.writelines(trace.ring)
            file.write(trace.line("-", "fail", repr(reason)))
        trace.ring.clear()
        if self.dumps == MAX_DUMPS:
            self.warn(
                f"trace_failures: {MAX_DUMPS} transcripts were written; later failures of "
                "this run are not dumped"
            )

    def bot_ended(self, bot_id: int) -> None:
        """Close the bot's file and forget its ring."""
        trace = self.traces.pop(bot_id, None)
        if trace is not None:
            trace.close()

    def close(self) -> None:
        """Close every file still open (the run ended)."""
        for trace in self.traces.values():
            trace.close()
        self.traces.clear()


def tracer_for_run(options: Mapping[str, Any], runtime: Runtime) -> Tracer | None:
    """The run's `Tracer`, or None when nothing is traced.

    Raises:
        ConfigError: ``trace_dir`` cannot be created.
    """
    if not options["trace_bots"] and options["trace_failures"] is None:
        return None
    return Tracer(
        trace_bots=options["trace_bots"] or (),
        trace_failures=options["trace_failures"],
        trace_dir=options["trace_dir"],
        clock=runtime.clock,
        start_time=runtime.start_time,
        warn=runtime.warn,
    )


class _TracedLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A traced bot's ``bot.log``: every line goes into the transcript, whatever its level,
    and on to the logger as for any bot."""

    def __init__(self, trace: BotTrace, bot_id: int) -> None:
        super().__init__(_logger, {"bot_id": bot_id})
        self.trace = trace

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs.setdefault("extra", self.extra)
        return f"[bot {self.extra['bot_id']}] {msg}", kwargs  # type: ignore[index]

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = f"{msg} {args}"
        self.trace.text("-", "log", text)
        super().log(level, msg, *args, **kwargs)


class TracedBot(Bot):
    """A `Bot` whose streams, ``bot.log`` lines and group messages go to its transcript.

    The swarm makes one for each traced bot; every other bot is a plain `Bot`.
    Streams are traced through `own`, so use what it returns.

    Example:
        >>> import functools, tempfile, trio, trio_bots
        >>> async def worker(bot):
        ...     print(type(bot).__name__)
        >>> _ = trio.run(functools.partial(trio_bots.swarm, worker, 1, trace_bots=[0],
        ...                                trace_dir=tempfile.mkdtemp()))
        TracedBot
    """

    __slots__ = ("_trace", "_traced_log")

    def __init__(
        self,
        swarm: Any,
        state: BotState,
        runtime: Runtime,
        messaging: Messaging,
        trace: BotTrace,
    ) -> None:
        super().__init__(swarm, state, runtime, messaging)
        self._trace = trace
        self._traced_log: _TracedLogger | None = None

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """As `Bot.log`, and each line goes into the transcript too."""
        if self._traced_log is None:
            self._traced_log = _TracedLogger(self._trace, self.id)
        return self._traced_log

    def own(self, resource: Any) -> Any:
        """As `Bot.own`; streams and UDP sockets come back traced."""
        return super().own(self._trace.wrap(resource))

    def send(self, filter: SendFilter, data: Any) -> Coroutine[Any, Any, list[int]]:
        """As `Bot.send`, recorded as ``msg>``."""
        return self._send(filter, data)

    async def _send(self, filter: SendFilter, data: Any) -> list[int]:
        ids = await super().send(filter, data)
        self._trace.text("-", "msg>", f"to {sorted(ids)}: {data!r}")
        return ids

    def send_nowait(self, filter: SendFilter, data: Any) -> list[int]:
        """As `Bot.send_nowait`, recorded as ``msg>``."""
        ids = super().send_nowait(filter, data)
        self._trace.text("-", "msg>", f"to {sorted(ids)}: {data!r}")
        return ids

    def receive(self, filter: RecvFilter = RECV_ALL) -> Coroutine[Any, Any, Message]:
        """As `Bot.receive`, recorded as ``msg<``."""
        return self._receive(filter)

    async def _receive(self, filter: RecvFilter) -> Message:
        message = await super().receive(filter)
        self._received(message)
        return message

    def receive_nowait(self, filter: RecvFilter = RECV_ALL) -> Message:
        """As `Bot.receive_nowait`, recorded as ``msg<``."""
        message = super().receive_nowait(filter)
        self._received(message)
        return message

    def recv(self, filter: RecvFilter = RECV_ALL) -> list[Message]:
        """As `Bot.recv`, each message recorded as ``msg<``."""
        messages = super().recv(filter)
        for message in messages:
            self._received(message)
        return messages

    def _received(self, message: Message) -> None:
        self._trace.text("-", "msg<", f"from {message.sender}: {message.data!r}")
