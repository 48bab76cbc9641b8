"""A small chat server on trio: rooms, and a line protocol anyone can type.

Lines are UTF-8 and end with ``\\n``; names and rooms are one word of at most
32 characters. The server answers each command on the same connection:

=====================  ==========================================================
client sends           server answers
=====================  ==========================================================
``NICK <name>``        ``OK NICK <name>``
``JOIN <room>``        ``JOINED <room> <members>`` (leaving the previous room)
``LEAVE``              ``LEFT <room>``
``SAY <text>``         ``MSG <room> <sender> <text>`` to every member of the
                       room, the sender included, in one order for everyone
anything else          ``ERR <reason>``; the connection stays open
=====================  ==========================================================

A client too slow to keep up with its room is disconnected (its outbox is
bounded), so one stuck reader never stalls a room. A line longer than 4 KiB
gets an ``ERR`` and the connection is closed.

Run it on its own and talk to it with ``nc 127.0.0.1 7777``::

    python examples/chat_server.py --port 7777

or embed it in a trio program, on a free loopback port:

    >>> import trio
    >>> async def main():
    ...     async with trio.open_nursery() as nursery:
    ...         port = await nursery.start(serve)
    ...         async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
    ...             await stream.send_all(b"JOIN lobby\\n")
    ...             print((await stream.receive_some()).decode().strip())
    ...         nursery.cancel_scope.cancel()
    >>> trio.run(main)
    JOINED lobby 1
"""

from __future__ import annotations

import itertools
import sys

import trio
from _support import ServerScript

from trio_bots import ProtocolError
from trio_bots.protocols import framing

MAX_LINE = 4096
MAX_NAME = 32
OUTBOX_SIZE = 1000  # lines waiting for a slow client before it is disconnected


class _Client:
    __slots__ = ("name", "outbox", "room", "scope")

    def __init__(self, name: str, outbox: trio.MemorySendChannel[bytes]) -> None:
        self.name = name
        self.room: str | None = None
        self.outbox = outbox
        self.scope: trio.CancelScope | None = None

    def send(self, line: str) -> None:
        try:
            self.outbox.send_nowait(line.encode() + b"\n")
        except trio.WouldBlock:  # it cannot keep up: drop it, not the room
            if self.scope is not None:
                self.scope.cancel()
        except trio.ClosedResourceError:
            pass


class ChatServer:
    """The rooms and their members; `serve` runs one on a TCP port.

    Attributes:
        rooms: room name -> its members, in join order.
        messages: how many SAY lines were broadcast.

    Example:
        >>> server = ChatServer()
        >>> server.rooms, server.messages
        ({}, 0)
    """

    def __init__(self) -> None:
        self.rooms: dict[str, dict[_Client, None]] = {}
        self.messages = 0
        self._ids = itertools.count(1)

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until the client leaves.

        Example:
            >>> import trio.testing
            >>> async def main():
            ...     client, stream = trio.testing.memory_stream_pair()
            ...     async with trio.open_nursery() as nursery:
            ...         nursery.start_soon(ChatServer().handle, stream)
            ...         await client.send_all(b"NICK ada\\n")
            ...         print(bytes(await client.receive_some()))
            ...         await client.aclose()  # the client leaves: handle returns
            >>> trio.run(main)
            b'OK NICK ada\\n'
        """
        outbox_send, outbox_receive = trio.open_memory_channel[bytes](OUTBOX_SIZE)
        client = _Client(f"guest{next(self._ids)}", outbox_send)
        lines = framing.Lines(stream, max_bytes=MAX_LINE)
        try:
            async with trio.open_nursery() as nursery:
                client.scope = nursery.cancel_scope
                nursery.start_soon(self._write, stream, outbox_receive)
                try:
                    async for line in lines:
                        self._command(client, line.decode("utf-8", "replace").rstrip("\r"))
                except ProtocolError:  # a line too long, or cut off by the end of the stream
                    client.send(f"ERR lines end with \\n within {MAX_LINE} bytes; closing")
                    await trio.sleep(0.1)  # let the writer flush it
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client vanished; its room goes on
        finally:
            self._leave(client)
            outbox_send.close()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    async def _write(
        self, stream: trio.abc.Stream, outbox: trio.MemoryReceiveChannel[bytes]
    ) -> None:
        async for line in outbox:
            batch = [line]
            while len(batch) < 64:  # one send per burst, not per line
                try:
                    batch.append(outbox.receive_nowait())
                except trio.WouldBlock:
                    break
            await stream.send_all(b"".join(batch))

    def _command(self, client: _Client, line: str) -> None:
        verb, _, arg = line.partition(" ")
        if verb == "SAY":
            if client.room is None:
                client.send("ERR join a room first: JOIN <room>")
                return
            self.messages += 1
            message = f"MSG {client.room} {client.name} {arg}"
            for member in list(self.rooms[client.room]):
                member.send(message)
        elif verb == "JOIN":
            if not _is_name(arg):
                client.send(f"ERR bad room {arg!r}: one word of 1 to {MAX_NAME} characters")
                return
            self._leave(client)
            members = self.rooms.setdefault(arg, {})
            members[client] = None
            client.room = arg
            client.send(f"JOINED {arg} {len(members)}")
        elif verb == "NICK":
            if not _is_name(arg):
                client.send(f"ERR bad name {arg!r}: one word of 1 to {MAX_NAME} characters")
                return
            client.name = arg
            client.send(f"OK NICK {arg}")
        elif verb == "LEAVE":
            room = client.room
            if room is None:
                client.send("ERR not in a room")
                return
            self._leave(client)
            client.send(f"LEFT {room}")
        else:
            client.send(f"ERR unknown command {verb[:20]!r}; send NICK, JOIN, LEAVE or SAY")

    def _leave(self, client: _Client) -> None:
        room, client.room = client.room, None
        if room is not None:
            members = self.rooms[room]
            del members[client]
            if not members:
                del self.rooms[room]


def _is_name(text: str) -> bool:
    return 0 < len(text) <= MAX_NAME and text.isprintable() and " " not in text


script = ServerScript(ChatServer, "A small chat server with rooms.", 7777)
serve = script.serve  # serve(port=0, host="127.0.0.1", *, server=None, task_status=...)


if __name__ == "__main__":
    sys.exit(script.main())
