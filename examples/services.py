"""Start and stop a real nginx and redis-server on loopback, for the examples, tests and CI.

Each service runs in a folder of its own (config, logs, pid file, data), on a
free port of 127.0.0.1, and never touches the system's configuration.

From a shell (what ``examples/services.sh`` and ``.ci/run`` call)::

    eval "$(python examples/services.py start /tmp/svc)"    # both, or name them:
    eval "$(python examples/services.py start /tmp/svc redis)"
    echo "$TRIO_BOTS_REDIS $TRIO_BOTS_NGINX"                 # 127.0.0.1:PORT each
    python examples/services.py stop /tmp/svc

``start`` prints one ``export TRIO_BOTS_<NAME>=127.0.0.1:PORT`` line per
service once it accepts connections, and leaves it running in the background.

From Python, a service lives as long as a ``with`` block:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder, redis(folder) as address:
    ...     print(address)
    127.0.0.1:...

nginx serves the files of `NGINX_FILES`, so that bots can check the bodies
they get. This module needs the standard library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

#: The files nginx serves, by URL path.
NGINX_FILES: dict[str, bytes] = {
    "/": b"<!doctype html><title>trio_bots</title><h1>Hello from nginx</h1>\n",
    "/hello.txt": b"hello from nginx\n",
    "/64k.bin": bytes(range(256)) * 256,
}

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log {dir}/access.log combined buffer=64k flush=1s;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    types {{
        text/html html;
        text/plain txt;
        application/octet-stream bin;
    }}
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        index index.html;
    }}
}}
"""

#: What each service needs, and the package that provides it on Debian and Ubuntu.
BINARIES = {"redis": ("redis-server", "redis-server"), "nginx": ("nginx", "nginx")}

STARTUP_TIMEOUT = 10.0

# The services this process started, kept so that `stop` can reap them (and
# so that Python does not warn that a running subprocess was garbage collected).
_children: dict[int, subprocess.Popen[bytes]] = {}


class ServiceError(RuntimeError):
    """A service could not start: its binary is missing, or it exited or never listened."""


def find(name: str) -> str | None:
    """The path of a service's binary (``"redis"`` or ``"nginx"``), or None if not installed.

    Example:
        >>> find("nginx")  # where Debian's nginx package puts it
        '/usr/sbin/nginx'
    """
    binary = BINARIES[name][0]
    for folder in ("", "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        found = shutil.which(binary, path=folder or None)
        if found:
            return found
    return None


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now.

    Example:
        >>> 0 < free_port() < 65536
        True
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_command(binary: str, folder: Path, port: int) -> list[str]:
    return [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", str(folder),
        "--logfile", str(folder / "redis.log"),
    ]  # fmt: skip


def _nginx_command(binary: str, folder: Path, port: int) -> list[str]:
    www = folder / "www"
    www.mkdir(parents=True, exist_ok=True)
    (folder / "tmp").mkdir(exist_ok=True)
    for path, body in NGINX_FILES.items():
        (www / ("index.html" if path == "/" else path.lstrip("/"))).write_bytes(body)
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=folder, port=port))
    return [binary, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")]


_COMMANDS: dict[str, Callable[[str, Path, int], list[str]]] = {
    "redis": _redis_command,
    "nginx": _nginx_command,
}


def start(name: str, folder: str | os.PathLike[str], port: int | None = None) -> tuple[int, str]:
    """Start service ``name`` in ``folder`` on 127.0.0.1; return its pid and ``HOST:PORT``.

    It returns once the service accepts connections, and writes its pid to
    ``folder/<name>.pid`` for `stop`.

    Raises:
        ServiceError: the binary is missing, or the service exited or never listened.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> pid, address = start("redis", folder)
        >>> socket.create_connection(address.split(":")).close()  # it listens
        >>> stop("redis", folder), stop("redis", folder)  # a second stop finds none
        (True, False)
    """
    binary = find(name)
    if binary is None:
        program, package = BINARIES[name]
        raise ServiceError(
            f"{program} is not installed; install it with: apt-get install {package}"
        )
    home = Path(folder).resolve() / name
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    with open(home / "stdout.log", "ab") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            _COMMANDS[name](binary, home, port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `services.py start`, and no Ctrl-C from the shell
        )
    _children[process.pid] = process
    (Path(folder) / f"{name}.pid").write_text(f"{process.pid}\n")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            raise ServiceError(f"{name} exited with {process.returncode}:\n{_logs(home)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process.pid, f"127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                _kill(process.pid)
                raise ServiceError(
                    f"{name} did not listen on 127.0.0.1:{port} within {STARTUP_TIMEOUT} s:\n"
                    f"{_logs(home)}"
                ) from None
            time.sleep(0.05)


def stop(name: str, folder: str | os.PathLike[str]) -> bool:
    """Stop the service ``name`` that `start` left in ``folder``; False if none was running.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> stop("redis", folder)  # nothing was started there
        False
        >>> _ = start("redis", folder)
        >>> stop("redis", folder)
        True
    """
    pid_file = Path(folder) / f"{name}.pid"
    try:
        pid = int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return False
    pid_file.unlink()
    return _kill(pid)


def _kill(pid: int) -> bool:
    """SIGTERM, then SIGKILL after 5 s; reap it if this process started it."""
    child = _children.pop(pid, None)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    if child is not None:
        try:
            child.wait(5.0)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return True
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:  # another process's child: poll until it is gone
        if not _alive(pid):
            return True
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs: a zombie waiting for its parent to reap it does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _logs(home: Path) -> str:
    tails = []
    for log in sorted(home.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-10:]
        tails += [f"  {log.name}: {line}" for line in lines]
    return "\n".join(tails) or "  (no log output)"


@contextmanager
def running(name: str, folder: str | os.PathLike[str]) -> Iterator[str]:
    """Run service ``name`` in ``folder`` for the ``with`` block; gives ``HOST:PORT``.

    Example:
        >>> import tempfile, urllib.request
        >>> with tempfile.TemporaryDirectory() as folder, running("nginx", folder) as address:
        ...     body = urllib.request.urlopen(f"http://{address}/hello.txt").read()
        >>> body == NGINX_FILES["/hello.txt"]
        True
    """
    _pid, address = start(name, folder)
    try:
        yield address
    finally:
        stop(name, folder)


def redis(folder: str | os.PathLike[str]) -> AbstractContextManager[str]:
    """Run redis-server in ``folder`` for a ``with`` block; see `running`."""
    return running("redis", folder)


def nginx(folder: str | os.PathLike[str]) -> AbstractContextManager[str]:
    """Run nginx in ``folder`` for a ``with`` block; see `running`."""
    return running("nginx", folder)


def main(argv: list[str] | None = None) -> int:
    """``start DIR [redis] [nginx]`` or ``stop DIR [redis] [nginx]``; both by default."""
    parser = argparse.ArgumentParser(
        description="Start or stop nginx and redis-server on loopback, in a folder of their own."
    )
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("dir", help="the folder for configs, logs and pid files")
    parser.add_argument("names", nargs="*", metavar="redis|nginx", help="default: both")
    args = parser.parse_args(argv)
    names = args.names or list(BINARIES)
    for name in names:
        if name not in BINARIES:
            parser.error(f"unknown service {name!r}; choose redis or nginx")
    if args.action == "stop":
        for name in names:
            stop(name, args.dir)
        return 0
    started = []
    try:
        for name in names:
            _pid, address = start(name, args.dir)
            started.append(name)
            print(f"export TRIO_BOTS_{name.upper()}={address}")
    except ServiceError as exc:
        for name in started:
            stop(name, args.dir)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
