"""The web dashboard: a real headless Chromium drives it during a real run (over the
DevTools protocol), and the access rules are checked over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket

pytest.importorskip("starlette")
pytest.importorskip("hypercorn")

SCENARIOS = Path(__file__).parent / "scenarios"
ROOT = Path(__file__).parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="needs chromium (.ci/run installs it)"
)
#: The page's colour for a failing threshold (and a lost shard): #c0392b.
RED = "rgb(192, 57, 43)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start_run(port: int, *args: str, scenario: str = "live.py") -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "trio_bots.cli", "run", scenario, "--quiet"]
    command += ["--web", f"127.0.0.1:{port}", *args]
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path}  # the shard processes import this trio_bots too
    return subprocess.Popen(command, cwd=SCENARIOS, stderr=subprocess.PIPE, text=True, env=env)


def request(url: str, *, data: Any = None, headers: dict[str, str] | None = None) -> Any:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_for_stats(
    base: str, ready: Callable[[dict[str, Any]], bool], seconds: float = 30
) -> dict[str, Any]:
    """Poll ``base``/api/stats until ``ready(stats)``; fail with the last answer after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        _, stats = request(f"{base}/api/stats")
        if ready(stats):
            return stats
        assert time.monotonic() < deadline, stats
        time.sleep(0.2)


def wait_up(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the dashboard never listened")


@contextmanager
def running(port: int, *args: str, scenario: str = "live.py") -> Iterator[subprocess.Popen[str]]:
    """`start_run`, once its dashboard listens; killed on the way out if it still runs."""
    proc = start_run(port, *args, scenario=scenario)
    try:
        wait_up(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def finish(proc: subprocess.Popen[str]) -> str:
    try:
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return stderr


def page_tabs(devtools: int) -> list[Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list", timeout=2) as r:
            return [t for t in json.loads(r.read()) if t["type"] == "page"]
    except OSError:
        return []


class Page:
    """One Chromium tab over the DevTools protocol."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> Any:
        self.next_id += 1
        await self.ws.send_message(
            json.dumps({"id": self.next_id, "method": method, "params": params})
        )
        while True:
            message = json.loads(await self.ws.get_message())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    async def js(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, seconds: float = 15) -> Any:
        with trio.fail_after(seconds):
            while True:
                value = await self.js(expression)
                if value:
                    return value
                await trio.sleep(0.2)


@contextmanager
def open_browser(tmp_path: Path, url: str) -> Iterator[int]:
    """A headless Chromium at `url`, for the length of the block; its DevTools port."""
    devtools = free_port()
    profile = tempfile.mkdtemp(dir=tmp_path)
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={devtools}",
            "--remote-allow-origins=*",
            "--window-size=1400,2000",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its helper processes too: killed as one group below
    )
    try:
        yield devtools
    finally:
        try:
            os.killpg(browser.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        browser.wait()


@asynccontextmanager
async def open_page(devtools: int) -> AsyncIterator[Page]:
    """The browser's tab, once it has one."""
    with trio.fail_after(60):
        while True:
            tabs = await trio.to_thread.run_sync(page_tabs, devtools)
            if tabs:
                break
            await trio.sleep(0.2)
    async with trio_websocket.open_websocket_url(tabs[0]["webSocketDebuggerUrl"]) as ws:
        yield Page(ws)


def threshold_row(expression: str) -> str:
    """JS: the thresholds panel's row of `expression`, as {status, color, shown}, or null."""
    return (
        "(() => { for (const tr of document.querySelectorAll('#thresholds tbody tr')) {"
        f"  if (tr.cells[0].textContent === {json.dumps(expression)}) return {{"
        "    status: tr.className, color: getComputedStyle(tr).color,"
        "    shown: tr.cells[1].textContent, state: tr.cells[2].textContent};"
        "} return null; })()"
    )


#: JS: the page has seen the run stopping, or over.
STOPPED = "/stopping|run over/.test(document.getElementById('status').textContent)"
GROUPS = (
    "Object.fromEntries([...document.querySelectorAll('#groups tbody tr')]"
    ".map(tr => [tr.cells[0].textContent, Number(tr.cells[1].textContent)]))"
)


@needs_chromium
def test_a_real_browser_watches_and_steers_the_run(tmp_path: Path) -> None:
    port = free_port()
    report = tmp_path / "run.json"
    # a threshold that fails from the first second, one that passes, and one that
    # passes at first and fails once 5000 naps are done (3 bots nap at most 300/s)
    thresholds = ["p99(nap) < 1ms", "failure_rate < 90%", "count(nap) < 5000"]
    flags = [arg for t in thresholds for arg in ("--threshold", t)]
    with running(port, "--duration", "60", "--json", str(report), *flags) as proc:
        with open_browser(tmp_path, f"http://127.0.0.1:{port}/") as devtools:

            async def drive() -> None:
                async with open_page(devtools) as page:
                    # the charts update: two new seconds drawn
                    await page.wait_for("Number(document.body.dataset.chartUpdates || 0) >= 2")
                    traces = await page.js("document.getElementById('chart-rps').data.length")
                    assert traces >= 1
                    # the numbers match /api/stats
                    shown = await page.wait_for(
                        "document.getElementById('bots-running').textContent"
                    )
                    _, stats = request(f"http://127.0.0.1:{port}/api/stats")
                    assert int(shown) == stats["bots_running"] == 3
                    # the thresholds panel: one row each, the failing one red
                    assert [t["expression"] for t in stats["thresholds"]] == thresholds
                    slow = await page.wait_for(threshold_row("p99(nap) < 1ms"))
                    assert slow["status"] == "failed" and slow["color"] == RED
                    assert slow["shown"].endswith(" ms") and float(slow["shown"][:-3]) > 1
                    fine = await page.wait_for(threshold_row("failure_rate < 90%"))
                    assert fine["status"] == "passed" and fine["color"] != RED
                    assert fine["shown"].endswith("%")
                    counted = await page.wait_for(threshold_row("count(nap) < 5000"))
                    assert counted["status"] == "passed" and counted["color"] != RED
                    # the groups: bots 0 and 2 in team-0, bot 1 in team-1; no shards
                    assert await page.wait_for(GROUPS) == {"team-0": 2, "team-1": 1}
                    assert await page.js("document.getElementById('shards-panel').hidden")
                    # the target field changes the running bot count
                    await page.js(
                        "document.getElementById('target').value = 5;"
                        "document.getElementById('set-target').click()"
                    )
                    await page.wait_for(
                        "document.getElementById('bots-running').textContent === '5'"
                    )
                    _, stats = request(f"http://127.0.0.1:{port}/api/stats")
                    assert stats["bots_running"] == 5
                    await page.wait_for(
                        f"(g => g['team-0'] === 3 && g['team-1'] === 2)({GROUPS})"
                    )
                    _, stats = request(f"http://127.0.0.1:{port}/api/stats")
                    assert stats["groups"] == [
                        {"group": "team-0", "bots": 3},
                        {"group": "team-1", "bots": 2},
                    ]
                    # the count threshold turns red once it fails
                    row = await page.wait_for(
                        f"(r => r.status === 'failed' ? r : null)"
                        f"({threshold_row('count(nap) < 5000')})",
                        seconds=40,
                    )
                    assert row["color"] == RED and int(row["shown"]) >= 5000
                    # the stop button ends the run
                    await page.js("document.getElementById('stop').click()")
                    await page.wait_for(STOPPED)

            trio.run(drive)
        stderr = finish(proc)
    assert proc.returncode == 1, stderr  # two thresholds failed
    data = json.loads(report.read_text())
    assert data["run"]["interrupted"] is True
    assert data["run"]["bots_started"] == 5
    assert data["run"]["duration"] < 60
    assert [t["passed"] for t in data["thresholds"]] == [False, True, False]


CHART_LINES = (
    "document.getElementById('chart-latency').data"
    ".map(trace => [trace.name, trace.line.dash])"
)


@needs_chromium
def test_the_open_model_charts_raw_percentiles_beside_the_corrected(tmp_path: Path) -> None:
    port = free_port()
    with running(port, "--rate", "30", "--duration", "60") as proc:
        with open_browser(tmp_path, f"http://127.0.0.1:{port}/") as devtools:

            async def drive() -> None:
                async with open_page(devtools) as page:
                    await page.wait_for("Number(document.body.dataset.chartUpdates || 0) >= 2")
                    lines = dict(await page.js(CHART_LINES))
                    assert lines["nap p50"] == lines["nap p99"] == "solid"
                    assert lines["nap raw p50"] == lines["nap raw p99"] == "dash"
                    assert "iteration p50" not in lines  # failures only: no latency to draw
                    title = await page.js(
                        "document.getElementById('chart-latency').layout.title.text"
                    )
                    assert "raw (dashed)" in title
                    # the raw figures are the API's, and never above the corrected ones
                    _, stats = request(f"http://127.0.0.1:{port}/api/stats")
                    raw = stats["last_tick"]["raw"]["nap"]
                    corrected = stats["last_tick"]["names"]["nap"]
                    assert 0.01 <= raw["p50"] <= corrected["p99"]
                    await page.js("document.getElementById('stop-now').click()")
                    await page.wait_for(STOPPED)  # the POST went out before the browser ends

            trio.run(drive)
        stderr = finish(proc)
    assert proc.returncode == 0, stderr


SHARD_ROWS = (
    "[...document.querySelectorAll('#shards tbody tr')]"
    ".map(tr => [...tr.cells].map(td => td.textContent))"
)


@needs_chromium
def test_a_sharded_run_shows_a_row_per_shard(tmp_path: Path) -> None:
    port = free_port()
    report = tmp_path / "run.json"
    # 6 bots over 2 processes: each records 5 latencies, joins table-0 (ids 0-2) or
    # table-1 (ids 3-5), steps, measures once more and waits for the stop
    base = f"http://127.0.0.1:{port}"
    shards = ("--processes", "2", "--duration", "60", "--json", str(report))
    with running(port, *shards, scenario="shards.py:worker") as proc:
        stats = wait_for_stats(  # {"running": false} until the run starts
            base,
            lambda stats: [row["requests"] for row in stats.get("shards", [])] == [18, 18]
            and bool(stats["groups"]),
        )
        rows = stats["shards"]
        assert [(r["index"], r["first_bot"], r["last_bot"]) for r in rows] == [(0, 0, 2), (1, 3, 5)]
        assert [(r["state"], r["bots_running"], r["bots_started"]) for r in rows] == [
            ("running", 3, 3),
            ("running", 3, 3),
        ]
        assert all(r["failure_count"] == 0 and r["lost"] is None for r in rows)
        pids = [r["pid"] for r in rows]
        assert len(set(pids)) == 2 and proc.pid not in pids
        assert stats["bots_running"] == 6
        assert stats["groups"] == [{"group": "table-0", "bots": 3}, {"group": "table-1", "bots": 3}]
        with open_browser(tmp_path, f"{base}/") as devtools:

            async def drive() -> None:
                async with open_page(devtools) as page:
                    shown = await page.wait_for(
                        f"(rows => rows.length === 2 && rows)({SHARD_ROWS})"
                    )
                    assert shown == [
                        ["0", str(pids[0]), "0-2", "3", "3", "18", "0", shown[0][7], "running"],
                        ["1", str(pids[1]), "3-5", "3", "3", "18", "0", shown[1][7], "running"],
                    ]
                    assert not await page.js("document.getElementById('shards-panel').hidden")
                    assert await page.wait_for(GROUPS) == {"table-0": 3, "table-1": 3}

            trio.run(drive)
        assert request(f"{base}/api/stop", data={}, headers={"Origin": base}) == (200, {"ok": True})
        stderr = finish(proc)
    assert proc.returncode == 0, stderr
    data = json.loads(report.read_text())
    assert [row["pid"] for row in data["shards"]] == pids
    assert [row["requests"] for row in data["shards"]] == [18, 18]


def test_a_sharded_open_model_run_serves_the_merged_raw_percentiles() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(port, "--processes", "2", "--rate", "30", "--duration", "60") as proc:
        def ticked(stats: dict[str, Any]) -> bool:
            tick = stats.get("last_tick") or {}
            return bool(tick.get("raw", {}).get("nap") and tick["names"]["nap"]["count"])

        stats = wait_for_stats(base, ticked)
        tick = stats["last_tick"]
        assert len(stats["shards"]) == 2
        raw, corrected = tick["raw"]["nap"], tick["names"]["nap"]
        assert 0.01 <= raw["p50"] <= raw["p99"] <= corrected["p99"] * 1.01
        assert request(f"{base}/api/stop", data={"grace": 0}, headers={"Origin": base})[0] == 200
        stderr = finish(proc)
    assert proc.returncode == 0, stderr


def test_shard_rows_follow_each_shard_and_say_when_one_is_lost() -> None:
    """The rows of `SwarmStatistics.shards` from the driver's messages, without processes."""
    from trio_bots._core.shard import Shard
    from trio_bots.distributed import ShardedSwarm
    from trio_bots.distributed._driver import add_shard
    from trio_bots.metrics import Recorder
    from trio_bots.web import Dashboard

    class Channel:
        def __init__(self, pid: int) -> None:
            self.pid = pid

    run = ShardedSwarm(5, {"host": None, "duration": None})
    for index in range(2):
        add_shard(run, Shard(index=index, count=2, size=5), Channel(100 + index))
    board = Dashboard(origin="http://127.0.0.1:1", token=None)
    board.watch(run)
    assert [row["state"] for row in board.stats()["shards"]] == ["starting", "starting"]

    def second(t: int, successes: int, failures: int) -> Any:
        rec = Recorder(0.0)
        for _ in range(successes):
            rec.record("get", 1000)
        for _ in range(failures):
            rec.record_failure("get", "ValueError", "x", None)
        return rec.tick(t, bots_running=1)

    counters = {"bots_running": 3, "bots_started": 3, "groups": {"g": 3}}
    first, other = run.shards
    run._handle(first, ("ready", 100))
    run._handle(first, ("tick", 0, second(0, 4, 0), False, counters, {}, {}, {}))
    run._handle(first, ("tick", 1, second(1, 2, 0), False, counters, {}, {}, {}))
    run._handle(first, ("tick", 1, second(1, 3, 2), True, counters, {}, {}, {}))  # sent again
    run._handle(other, ("ready", 101))
    two = {**counters, "groups": {"g": 2}}
    run._handle(other, ("tick", 0, second(0, 1, 0), False, two, {}, {}, {}))
    rows = board.stats()["shards"]
    seen = [(r["index"], r["pid"], r["state"], r["requests"], r["failure_count"]) for r in rows]
    assert seen == [(0, 100, "running", 9, 2), (1, 101, "running", 1, 0)]
    assert [(r["first_bot"], r["last_bot"]) for r in rows] == [(0, 2), (3, 4)]
    assert board.stats()["groups"] == [{"group": "g", "bots": 5}]
    other.lost = "died: SIGKILL"  # as the driver's reader marks it
    rows = board.stats()["shards"]
    assert [(r["state"], r["bots_running"], r["lost"]) for r in rows] == [
        ("running", 3, None),
        ("lost", 0, "died: SIGKILL"),
    ]
    assert board.stats()["groups"] == [{"group": "g", "bots": 3}]  # the lost shard's left


def test_the_api_lists_the_first_groups_and_counts_them_all() -> None:
    import trio_bots
    from trio_bots.web import Dashboard

    async def seated(bot: trio_bots.Bot) -> None:
        bot.join(f"table-{bot.id:03}")
        if bot.id % 2:
            bot.join("odd")
        await bot.stopping.wait()

    async def main() -> dict[str, Any]:
        board = Dashboard(origin="http://127.0.0.1:1", token=None)
        with trio.fail_after(10):
            async with trio_bots.open_swarm(seated, 150) as swarm:
                board.watch(swarm)
                await trio.sleep(0.1)
                stats = board.stats()
                swarm.stop(grace=0)
        return stats

    stats = trio.run(main)
    assert stats["group_count"] == 151
    groups = stats["groups"]
    assert len(groups) == 100
    assert groups[0] == {"group": "odd", "bots": 75}
    assert groups[1:3] == [{"group": "table-000", "bots": 1}, {"group": "table-001", "bots": 1}]
    assert groups[-1]["group"] == "table-098"
    json.dumps(stats)  # what the endpoint sends


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_the_token_rules(backend: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "trio_bots.cli", "run", "live.py", "--web", "0.0.0.0:8089"],
        cwd=SCENARIOS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--web-token" in proc.stderr, proc.stderr
    port = free_port()
    run = start_run(
        port, "--duration", "30", "--web-token", "s3cret", "--stop-grace", "0", "--backend", backend
    )
    try:
        wait_up(port, run)
        base = f"http://127.0.0.1:{port}"
        assert request(f"{base}/api/stats")[0] == 403
        assert request(f"{base}/api/stats", headers={"Authorization": "Bearer wrong"})[0] == 403
        good = {"Authorization": "Bearer s3cret"}
        status, stats = request(f"{base}/api/stats", headers=good)
        assert status == 200 and stats["running"] and "metrics" not in stats
        # the cookie of GET /?token= carries the token
        with urllib.request.urlopen(f"{base}/?token=s3cret", timeout=5) as response:
            cookie = response.headers["set-cookie"].split(";")[0]
        assert request(f"{base}/api/stats", headers={"Cookie": cookie})[0] == 200
        # a POST with the cookie alone, from another origin: refused
        other = {"Cookie": cookie, "Origin": "http://evil.example"}
        assert request(f"{base}/api/target", data={"bots": 1}, headers=other)[0] == 403
        own = {"Cookie": cookie, "Origin": base}
        # bad input: a 4xx with a JSON error, and nothing changes
        for body in ({"bots": -1}, {"bots": "x"}, {"nobots": 1}, {"rate": 3}):
            status, answer = request(f"{base}/api/target", data=body, headers=own)
            assert 400 <= status < 500 and "error" in answer
        status, answer = request(f"{base}/api/rate", data={"rate": 5}, headers=good)
        assert status == 400 and "closed model" in answer["error"]
        assert request(f"{base}/api/stats", headers=good)[1]["bots_target"] == 3
        assert request(f"{base}/metrics")[0] == 403
        with urllib.request.urlopen(
            urllib.request.Request(f"{base}/metrics", headers=good), timeout=5
        ) as response:
            assert b"# TYPE trio_bots_bots gauge" in response.read()
        assert request(f"{base}/api/stop", data={"grace": 0}, headers=good) == (200, {"ok": True})
        stderr = finish(run)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, stderr


@pytest.mark.parametrize("flag", ["web", "prometheus"])
def test_without_the_web_extra_the_flags_are_usage_errors(
    flag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trio_bots.cli._run import EXIT_USAGE, CliExit
    from trio_bots.cli._web import open_live_servers

    for module in ("starlette.applications", "prometheus_client"):
        monkeypatch.setitem(sys.modules, module, None)  # an import of it fails
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(CliExit) as caught:
        with open_live_servers(
            address if flag == "prometheus" else None, address if flag == "web" else None
        ):
            pass
    assert caught.value.code == EXIT_USAGE
    assert "pip install 'trio-bots[web]'" in str(caught.value)
