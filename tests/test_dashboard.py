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
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket

pytest.importorskip("starlette")
pytest.importorskip("hypercorn")

SCENARIOS = Path(__file__).parent / "scenarios"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start_run(port: int, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "trio_bots.cli", "run", "live.py", "--quiet"]
    command += ["--web", f"127.0.0.1:{port}", *args]
    return subprocess.Popen(command, cwd=SCENARIOS, stderr=subprocess.PIPE, text=True)


def request(url: str, *, data: Any = None, headers: dict[str, str] | None = None) -> Any:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


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


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs chromium (.ci/run installs it)")
def test_a_real_browser_watches_and_steers_the_run(tmp_path: Path) -> None:
    port, devtools = free_port(), free_port()
    report = tmp_path / "run.json"
    proc = start_run(port, "--duration", "60", "--json", str(report))
    profile = tempfile.mkdtemp(dir=tmp_path)
    browser = None
    try:
        wait_up(port, proc)
        browser = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={devtools}",
                "--remote-allow-origins=*",
                f"http://127.0.0.1:{port}/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes too: killed as one group below
        )

        async def drive() -> None:
            with trio.fail_after(60):
                while True:
                    tabs = await trio.to_thread.run_sync(page_tabs, devtools)
                    if tabs:
                        break
                    await trio.sleep(0.2)
                async with trio_websocket.open_websocket_url(tabs[0]["webSocketDebuggerUrl"]) as ws:
                    page = Page(ws)
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
                    # the stop button ends the run
                    await page.js("document.getElementById('stop').click()")

        trio.run(drive)
        stderr = finish(proc)
    finally:
        if browser is not None:
            try:
                os.killpg(browser.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            browser.wait()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    data = json.loads(report.read_text())["run"]
    assert data["interrupted"] is True
    assert data["bots_started"] == 5
    assert data["duration"] < 60


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
