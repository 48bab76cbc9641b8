"""Protocol kits for bots: framing, HTTP/1.1, WebSocket and Redis (RESP2), plus small
loopback servers to try them on (`testing`).

Each is a sans-io parser over a bot's stream, so it runs on every anyio backend, and
a leaf: it imports nothing of the engine. Import the one you need, e.g.
``from trio_bots.protocols import http``.
"""

__all__ = ["framing", "http", "resp", "testing", "websocket"]
