"""Locust's sides of run.py: the user class is named on locust's command line.

    PingPong   a `User` on gevent raw sockets (locust patches ``socket`` on import)
               against the C echo server: send 64 bytes, read them back, and fire
               one ``request`` event per round trip, like any custom Locust client.
    Get        a `FastHttpUser` doing ``GET /`` against nginx, keep-alive.

Both use ``wait_time = constant(0)`` and the ``--host`` (``http://127.0.0.1:PORT``).
At test_stop this writes the run's figures to ``$RUN_LOCUST_RESULT`` as JSON: the
requests and failures, and the wall and CPU seconds from test_start to test_stop
(the whole load window, spawning included).

Run by the Locust venv (``benchmarks/.locust-venv``), never by the project's.
"""

import json
import os
import socket
import time
from urllib.parse import urlsplit

from locust import FastHttpUser, User, constant, events, task

SIZE = 64
PAYLOAD = b"p" * SIZE
_started = {}


@events.test_start.add_listener
def _start(**kwargs):
    _started.update(wall=time.perf_counter(), cpu=time.process_time())


@events.test_stop.add_listener
def _stop(environment, **kwargs):
    total = environment.stats.total
    figures = {
        "requests": total.num_requests,
        "failures": total.num_failures,
        "wall_s": time.perf_counter() - _started["wall"],
        "cpu_s": time.process_time() - _started["cpu"],
    }
    with open(os.environ["RUN_LOCUST_RESULT"], "w") as f:
        json.dump(figures, f)


class PingPong(User):
    wait_time = constant(0)

    def on_start(self):
        self.sock = socket.create_connection(("127.0.0.1", urlsplit(self.host).port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def on_stop(self):
        self.sock.close()

    @task
    def rtt(self):
        start = time.perf_counter()
        self.sock.sendall(PAYLOAD)
        got = 0
        while got < SIZE:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("the echo server closed the connection")
            got += len(data)
        self.environment.events.request.fire(
            request_type="tcp",
            name="rtt",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=SIZE,
            exception=None,
            context={},
        )


class Get(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
