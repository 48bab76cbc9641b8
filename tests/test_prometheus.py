"""The Prometheus endpoint: its series, scraped over HTTP during real runs, parsed with
prometheus-client's own text parser."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trio

import trio_bots

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families

from trio_bots.web import MetricsExporter, serve_metrics

SCENARIOS = Path(__file__).parent / "scenarios"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def napper(bot: trio_bots.Bot) -> None:
    async for it in bot.iterations():
        with it:
            async with bot.measure("nap"):
                await trio.sleep(0.01)
                if it.index % 4 == 3:
                    raise ConnectionResetError("every fourth nap fails")


def test_scraped_counts_match_the_final_result() -> None:
    exporter = MetricsExporter()
    server = serve_metrics(exporter, "127.0.0.1", 0)
    mid: list[Any] = []
    try:

        async def main() -> trio_bots.SwarmResult:
            with trio.fail_after(30):
                async with trio_bots.open_swarm(napper, 3, duration=2.5, stop_grace=0.2) as s:
                    exporter.watch(s)
                    await trio.sleep(1.5)
                    mid.append(await trio.to_thread.run_sync(scrape, server.port))
            assert s.result is not None
            return s.result

        result = trio.run(main)
        final = scrape(server.port)  # the last values stay served after the run
    finally:
        server.close()
    during = mid[0]
    assert during[("trio_bots_bots", ())] == 3
    assert 0 < during[("trio_bots_requests_total", (("name", "nap"),))] < result.stats[
        "nap"
    ].count + result.stats["nap"].failure_count
    for q in ("0.5", "0.9", "0.99", "0.999"):
        assert 0.005 < during[("trio_bots_latency_seconds", (("name", "nap"), ("quantile", q)))]
    stats = result.stats["nap"]
    assert final[("trio_bots_requests_total", (("name", "nap"),))] == stats.count + (
        stats.failure_count
    )
    assert final[("trio_bots_failures_total", (("name", "nap"),))] == stats.failure_count > 0
    assert final[("trio_bots_dropped_arrivals_total", ())] == 0
    assert not any(name == "trio_bots_latency_raw_seconds" for name, _ in final)  # closed model


def test_the_open_model_serves_raw_latency_and_dropped_arrivals() -> None:
    exporter = MetricsExporter()

    async def stall(bot: trio_bots.Bot) -> None:
        async for it in bot.iterations():
            with it:
                async with bot.measure("slow"):
                    await trio.sleep(0.3)

    async def main() -> trio_bots.SwarmResult:
        async with trio_bots.open_swarm(stall, 1, rate=20, max_bots=1, duration=3) as s:
            exporter.watch(s)
        assert s.result is not None
        return s.result

    result = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    families = {f.name: f for f in text_string_to_metric_families(exporter.text().decode())}
    dropped = families["trio_bots_dropped_arrivals"].samples[0].value
    assert dropped == result.dropped_arrivals > 0
    def quantiles(metric: str) -> dict[str, float]:
        return {s.labels["quantile"]: s.value for s in families[metric].samples}

    raw = quantiles("trio_bots_latency_raw_seconds")
    corrected = quantiles("trio_bots_latency_seconds")
    assert raw["0.5"] == pytest.approx(0.3, rel=0.01)
    assert corrected["0.5"] > raw["0.5"]  # queued behind a stalled server: corrected is worse


def test_the_cli_serves_metrics_during_the_run(tmp_path: Path) -> None:
    port = free_port()
    report = tmp_path / "run.json"
    command = [sys.executable, "-m", "trio_bots.cli", "run", "live.py", "--quiet"]
    command += ["--prometheus", f"127.0.0.1:{port}", "--json", str(report)]
    proc = subprocess.Popen(command, cwd=SCENARIOS, stderr=subprocess.PIPE, text=True)
    scraped: list[Any] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                scraped.append(scrape(port))
            except OSError:
                pass
            time.sleep(0.2)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert f"http://127.0.0.1:{port}/metrics" in stderr
    assert any(s.get(("trio_bots_bots", ())) == 3 for s in scraped)
    stats = json.loads(report.read_text())["stats"]["nap"]
    last = scraped[-1][("trio_bots_requests_total", (("name", "nap"),))]
    assert 0 < last <= stats["count"] + stats["failure_count"]


def test_prometheus_flag_errors_are_usage_errors() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for value, message in (
            (f"127.0.0.1:{port}", "cannot listen"),
            ("127.0.0.1", "HOST:PORT"),
            ("127.0.0.1:99999", "port"),
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "trio_bots.cli", "run", "live.py", "--prometheus", value],
                cwd=SCENARIOS,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 2, proc.stderr
            assert message in proc.stderr and "Traceback" not in proc.stderr


def test_no_thread_outlives_the_server() -> None:
    before = threading.active_count()
    serve_metrics(MetricsExporter(), "127.0.0.1", 0).close()
    assert threading.active_count() == before


def test_the_grafana_dashboard_plots_the_served_series() -> None:
    import re

    path = Path(__file__).parent.parent / "examples" / "grafana-dashboard.json"
    dashboard = json.loads(path.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"trio_bots_\w+", expr)}
    served = {
        "trio_bots_requests_total",
        "trio_bots_failures_total",
        "trio_bots_bots",
        "trio_bots_dropped_arrivals_total",
        "trio_bots_latency_seconds",
        "trio_bots_latency_raw_seconds",
    }
    assert used == served
    exporter = MetricsExporter()
    text = exporter.text().decode()
    for name in served - {"trio_bots_requests_total", "trio_bots_failures_total"}:
        assert f"# TYPE {name.removesuffix('_total')}" in text
