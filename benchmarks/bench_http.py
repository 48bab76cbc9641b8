"""HTTP keep-alive GETs against a local nginx: trio_bots vs wrk, Locust and a raw trio loop.

One run starts its own nginx on 127.0.0.1 (a temp folder, one process, ``access_log
off``, ``keepalive_requests 1000000``, ``location = / { return 200 "ok"; }`` and a
small static file at ``/static.txt``), then runs the load generators one at a time,
alternating their order, with the same connection count and duration:

    trio_bots   ``trio_bots.swarm``: N bots, each one ``http.connect`` client doing
                ``await client.get(path)`` in ``bot.iterations()``; req/s =
                ``result.stats["GET <path>"].count / duration``.
    raw-trio    N tasks, each ``trio.open_tcp_stream`` + ``send_all`` of a fixed
                request + receive until Content-Length is met; no metrics: the anchor.
    wrk-t1      ``wrk -t1 -cN -dDs``; "Requests/sec".
    wrk-t2      ``wrk -t2 ...``, for reference (wrk's two threads share 2 cores with nginx).
    locust      ``locust --headless`` with a ``FastHttpUser`` (``wait_time = constant(0)``);
                "Requests/s" of the Aggregated row of its CSV (includes its 1 s spawn).

Extra sides (``--sides``): ``trio_bots-plain``, the same bots in a
``while not bot.stopping.is_set()`` loop instead of ``bot.iterations()``.

Each side runs in a process of its own. The table gives, per side:
    * the median req/s over the runs, and the slowest and fastest run;
    * the client's CPU per request (user + system; for the Python sides and Locust,
      over the load window only, without start-up);
    * nginx's CPU during the run, in % of one core. On loopback the kernel charges
      part of the server's TCP work to the client's sends, so it reads low;
    * trio_bots / side: the ratio of the median req/s, the median of the per-round
      ratios (paired: close in time, so drifts in the machine's load cancel out), and
      the paired ratio of requests per CPU-second, the least sensitive to other load.
Benchmarks are not tests: nothing here asserts on speed.

Run:
    .venv/bin/pip install locust     # optional, into the venv only; skipped when missing
    .venv/bin/python benchmarks/bench_http.py [--connections 100 --duration 5 --runs 3]
    .venv/bin/python benchmarks/bench_http.py --path /static.txt
    .venv/bin/python benchmarks/bench_http.py --profile      # trio_bots side under cProfile
    .venv/bin/py-spy record -r 500 -f raw -o /tmp/http.raw --subprocesses -- \\
        .venv/bin/python benchmarks/bench_http.py --only trio_bots
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import functools
import json
import os
import pstats
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NGINX = "/usr/sbin/nginx"
WRK = "/usr/bin/wrk"
DEFAULT_SIDES = ("trio_bots", "raw-trio", "wrk-t1", "wrk-t2", "locust")
PYTHON_SIDES = ("trio_bots", "trio_bots-plain", "raw-trio")
ALL_SIDES = (*DEFAULT_SIDES, "trio_bots-plain")
STATIC_BODY = b"static file of 64 bytes for the trio_bots http benchmark ......\n"

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
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    types {{
        text/plain txt;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {dir}/www;
        location = / {{
            return 200 "ok";
        }}
        location / {{
        }}
    }}
}}
"""

LOCUSTFILE = """\
import json, os, time

from locust import FastHttpUser, constant, events, task

_cpu = {}


@events.test_start.add_listener
def _start(**kwargs):
    _cpu["start"] = time.process_time()


@events.test_stop.add_listener
def _stop(**kwargs):
    with open(os.environ["BENCH_HTTP_CPU_FILE"], "w") as f:
        json.dump({"cpu": time.process_time() - _cpu.get("start", 0.0)}, f)


class Bench(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get(%r)
"""

Result = dict[str, float]


# -- nginx ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get_once(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def nginx(folder: Path) -> Iterator[tuple[int, int]]:
    """Run nginx in `folder` on a free loopback port; yields (port, pid); always stops it."""
    if not os.access(NGINX, os.X_OK):
        sys.exit(f"nginx is not installed at {NGINX}; install it with: apt-get install nginx")
    for name in ("www", "tmp"):
        (folder / name).mkdir(exist_ok=True)
    (folder / "www" / "static.txt").write_bytes(STATIC_BODY)
    for _attempt in range(3):  # another process may take the free port before nginx does
        port = _free_port()
        conf = folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=folder, port=port))
        cmd = [NGINX, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")]
        proc = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    if _get_once(port, "/").endswith(b"\r\n\r\nok"):
                        break
                time.sleep(0.05)
            else:
                continue  # nginx exited (port taken?) or never answered: try another port
            if not _get_once(port, "/static.txt").endswith(STATIC_BODY):
                sys.exit("nginx did not serve /static.txt; see " + str(folder / "error.log"))
            yield port, proc.pid
            return
        finally:
            _stop(proc)
    log = (folder / "error.log").read_text(errors="replace")[-2000:]
    sys.exit(f"nginx did not start on 127.0.0.1; its error log ends with:\n{log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the Python sides (run in a child process: ``--side NAME``) -----------------------


def run_trio_bots(url: str, path: str, n: int, duration: float, *, plain: bool = False) -> Result:
    import trio

    import trio_bots
    from trio_bots.protocols import http

    async def worker(bot: trio_bots.Bot) -> None:
        client = await http.connect(bot, url)
        if plain:
            while not bot.stopping.is_set():
                await client.get(path)
        else:
            async for _ in bot.iterations():
                await client.get(path)

    cpu = time.process_time()
    result = trio.run(functools.partial(trio_bots.swarm, worker, n, duration=duration))
    cpu = time.process_time() - cpu
    stats = result.stats[f"GET {path}"]
    return {
        "rps": stats.count / duration,
        "requests": stats.count,
        "errors": stats.failure_count + len(result.bot_failures),
        "cpu": cpu,
    }


def run_raw_trio(host: str, port: int, path: str, n: int, duration: float) -> Result:
    import trio

    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: raw\r\n\r\n".encode()
    done = [0]

    async def client() -> None:
        stream = await trio.open_tcp_stream(host, port)  # TCP_NODELAY is trio's default
        buf = bytearray()
        async with stream:
            while True:
                await stream.send_all(request)
                while (end := buf.find(b"\r\n\r\n")) < 0:
                    buf += await _receive(stream)
                at = buf.find(b"\r\nContent-Length:", 0, end)
                if at < 0:
                    raise RuntimeError(f"no Content-Length in {bytes(buf[:end])!r}")
                length = int(buf[at + 17 : buf.index(b"\r\n", at + 2)])
                total = end + 4 + length
                while len(buf) < total:
                    buf += await _receive(stream)
                del buf[:total]
                done[0] += 1

    async def main() -> None:
        with trio.move_on_after(duration):
            async with trio.open_nursery() as nursery:
                for _ in range(n):
                    nursery.start_soon(client)

    cpu = time.process_time()
    trio.run(main)
    cpu = time.process_time() - cpu
    return {"rps": done[0] / duration, "requests": done[0], "errors": 0, "cpu": cpu}


async def _receive(stream: Any) -> bytes:
    data: bytes = await stream.receive_some(65536)
    if not data:
        raise RuntimeError("nginx closed a keep-alive connection")
    return data


def _child_main(args: argparse.Namespace) -> None:
    url = f"http://127.0.0.1:{args.port}"
    if args.side == "raw-trio":
        result = run_raw_trio("127.0.0.1", args.port, args.path, args.connections, args.duration)
    else:
        plain = args.side == "trio_bots-plain"
        result = run_trio_bots(url, args.path, args.connections, args.duration, plain=plain)
    print(json.dumps(result))


# -- the sides, seen from the parent -------------------------------------------------


def _run(cmd: Sequence[str], timeout: float, **kwargs: Any) -> tuple[str, float]:
    """Run `cmd`; returns its stdout and the CPU seconds it used (user + system)."""
    cpu = _children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    cpu = _children_cpu() - cpu
    if proc.returncode != 0:
        raise RuntimeError(
            f"{cmd[0]} exited with {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}"
        )
    return proc.stdout, cpu


def side_python(name: str, args: argparse.Namespace, port: int) -> Result:
    cmd = [sys.executable, __file__, "--side", name, "--port", str(port), "--path", args.path]
    cmd += ["--connections", str(args.connections), "--duration", str(args.duration)]
    out, _ = _run(cmd, args.duration + 60)
    result: Result = json.loads(out.strip().splitlines()[-1])
    return result


def side_wrk(threads: int, args: argparse.Namespace, port: int) -> Result:
    wrk = shutil.which("wrk") or WRK
    cmd = [wrk, f"-t{threads}", f"-c{args.connections}", f"-d{args.duration:g}s"]
    out, cpu = _run([*cmd, f"http://127.0.0.1:{port}{args.path}"], args.duration + 30)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None:
        raise RuntimeError(f"could not read wrk's output:\n{out}")
    errors = sum(
        int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|timeout)\s*:?\s*(\d+)", out)
    )
    return {
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        "errors": errors,
        "cpu": cpu,
    }


def side_locust(args: argparse.Namespace, port: int, folder: Path) -> Result:
    locustfile = folder / "locustfile.py"
    locustfile.write_text(LOCUSTFILE % args.path)
    prefix = folder / "locust"
    cpu_file = folder / "locust-cpu.json"
    cmd = [args.locust, "-f", str(locustfile), "--headless", "-u", str(args.connections)]
    cmd += ["-r", str(args.connections), "-t", f"{args.duration:g}s"]
    cmd += ["--host", f"http://127.0.0.1:{port}", "--csv", str(prefix), "--only-summary"]
    cmd += ["--loglevel", "WARNING", "--exit-code-on-error", "0", "--stop-timeout", "0"]
    env = {**os.environ, "BENCH_HTTP_CPU_FILE": str(cpu_file)}
    _, cpu = _run(cmd, args.duration + 60, env=env, cwd=folder)
    with open(f"{prefix}_stats.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    with contextlib.suppress(OSError, ValueError):
        cpu = json.loads(cpu_file.read_text())["cpu"]  # the load window only
    return {
        "rps": float(row["Requests/s"]),
        "requests": int(row["Request Count"]),
        "errors": int(row["Failure Count"]),
        "cpu": cpu,
    }


def _locust_command(given: str | None) -> str | None:
    venv = Path(sys.executable).with_name("locust")
    for candidate in (given, str(venv), shutil.which("locust")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


# -- rounds and the table --------------------------------------------------------------


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def alternate(
    sides: dict[str, Callable[[], Result]], runs: int, measure_server: Callable[[], float]
) -> dict[str, list[Result]]:
    """`runs` rounds; each round runs every side once, rotating which side goes first."""
    names = list(sides)
    results: dict[str, list[Result]] = {name: [] for name in names}
    for r in range(runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            server = measure_server()
            result = sides[name]()
            result["server_cpu"] = measure_server() - server
            results[name].append(result)
            print(
                f"  round {r + 1}/{runs} {name:>16}: {result['rps']:>9,.0f} req/s"
                f"  ({result['requests']:,.0f} requests, {result['errors']:,.0f} errors)",
                flush=True,
            )
    return results


def _us_per_request(r: Result) -> float:
    return 1e6 * r["cpu"] / r["requests"] if r["requests"] else float("nan")


def table(results: dict[str, list[Result]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Print the figures, and trio_bots' ratios to each side; returns the rows."""
    base_name = "trio_bots" if "trio_bots" in results else next(iter(results))
    base = results[base_name]
    base_median = statistics.median(r["rps"] for r in base)
    rows = []
    for name, runs in results.items():
        rps = [r["rps"] for r in runs]
        pairs = list(zip(base, runs, strict=True))  # the same round: close in time
        rows.append(
            {
                "side": name,
                "rps_median": statistics.median(rps),
                "rps_min": min(rps),
                "rps_max": max(rps),
                "client_cpu_us_per_req": statistics.median(_us_per_request(r) for r in runs),
                "server_cpu_pct": statistics.median(
                    100 * r["server_cpu"] / args.duration for r in runs
                ),
                "errors": sum(r["errors"] for r in runs),
                "ratio_of_medians": _ratio(base_median, statistics.median(rps)),
                "ratio_paired": statistics.median(_ratio(b["rps"], r["rps"]) for b, r in pairs),
                # requests per CPU-second, trio_bots / side: the least sensitive to other load
                "cpu_ratio_paired": statistics.median(
                    _ratio(_us_per_request(r), _us_per_request(b)) for b, r in pairs
                ),
                "runs": runs,
            }
        )
    print(
        f"\nGET {args.path}, {args.connections} connections, {args.duration:g} s, "
        f"median of {len(base)} alternating runs; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'side':<16} {'req/s':>9} {'min-max':>17} {'client CPU':>11} {'nginx':>6} "
        f"{'errors':>6}   {base_name} / side: req/s (medians, paired), req per CPU-s"
    )
    for row in rows:
        span = f"{row['rps_min']:,.0f}-{row['rps_max']:,.0f}"
        print(
            f"{row['side']:<16} {row['rps_median']:>9,.0f} {span:>17} "
            f"{row['client_cpu_us_per_req']:>7.1f} µs {row['server_cpu_pct']:>5.0f}% "
            f"{row['errors']:>6}   {row['ratio_of_medians']:>6.2f} {row['ratio_paired']:>6.2f} "
            f"{row['cpu_ratio_paired']:>6.2f}"
        )
    return rows


def profile_trio_bots(args: argparse.Namespace, port: int) -> None:
    url = f"http://127.0.0.1:{port}"
    profiler = cProfile.Profile()
    result = profiler.runcall(run_trio_bots, url, args.path, args.connections, args.duration)
    print(f"trio_bots under cProfile: {result['rps']:,.0f} req/s (slowed by the profiler)")
    stats = pstats.Stats(profiler).strip_dirs().sort_stats("tottime")
    stats.print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--connections", type=int, default=100)
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per side (>= 3)")
    parser.add_argument("--path", default="/", help="'/' (return 200 \"ok\") or '/static.txt'")
    parser.add_argument("--sides", nargs="+", choices=ALL_SIDES, default=list(DEFAULT_SIDES))
    parser.add_argument("--only", choices=ALL_SIDES, help="run this one side once (for py-spy)")
    parser.add_argument("--profile", action="store_true", help="trio_bots under cProfile, once")
    parser.add_argument("--locust", help="the locust command (default: the venv's, else PATH)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--side", choices=PYTHON_SIDES, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        _child_main(args)
        return
    if args.runs < 3 and not (args.only or args.profile):
        parser.error("--runs must be at least 3: the table shows medians")
    if not args.path.startswith("/"):
        parser.error("--path must start with '/'")
    # SIGTERM unwinds like Ctrl-C, so that nginx is stopped in every case.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.locust = _locust_command(args.locust)
    with tempfile.TemporaryDirectory(prefix="bench_http-") as tmp, nginx(Path(tmp)) as (port, pid):
        if args.profile:
            profile_trio_bots(args, port)
            return
        chosen = [args.only] if args.only else args.sides
        sides: dict[str, Callable[[], Result]] = {}
        for name in chosen:
            if name in PYTHON_SIDES:
                sides[name] = functools.partial(side_python, name, args, port)
            elif name.startswith("wrk"):
                if shutil.which("wrk") is None and not os.access(WRK, os.X_OK):
                    print(f"wrk is not installed (apt-get install wrk): skipping {name}")
                    continue
                sides[name] = functools.partial(side_wrk, int(name[-1]), args, port)
            elif args.locust is None:
                print("locust is not installed (.venv/bin/pip install locust): skipping it")
            else:
                if args.duration < 3:
                    print("locust: spawning takes 1 s of the run; use --duration 3 or more")
                sides[name] = functools.partial(side_locust, args, port, Path(tmp))
        print(
            f"nginx {port=} pid={pid}; {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f}; {sys.executable}",
            flush=True,
        )
        results = alternate(sides, 1 if args.only else args.runs, lambda: _cpu_of(pid))
    rows = table(results, args)
    if args.json:
        meta = {k: v for k, v in vars(args).items() if k not in ("json", "side", "port")}
        args.json.write_text(json.dumps({"args": meta, "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
