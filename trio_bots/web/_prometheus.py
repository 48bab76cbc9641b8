"""The Prometheus series of one swarm, from its once-a-second tick.

`MetricsExporter` keeps its own `prometheus_client.CollectorRegistry` (one per
swarm, never the global one) with one custom collector. Each `Tick` adds that
second's counts to the counters and replaces the latency gauges with that
second's percentiles; a scrape only reads the figures of the last tick, which
are swapped in as one object, so a scrape from the server's thread never sees
half a tick.

The series:

- ``trio_bots_requests_total{name}``: successes plus failures;
- ``trio_bots_failures_total{name}``;
- ``trio_bots_bots``: the live bots;
- ``trio_bots_dropped_arrivals_total``: open-model arrivals dropped;
- ``trio_bots_latency_seconds{name,quantile}``: 0.5, 0.9, 0.99 and 0.999 over the
  last tick (coordinated-omission corrected in the open model);
- ``trio_bots_latency_raw_seconds{name,quantile}``: the open model's uncorrected ones.

Example:
    >>> from trio_bots._core.runtime import Tick
    >>> exporter = MetricsExporter()
    >>> entry = {"count": 9, "failures": 1, "p50": 0.01, "p90": 0.02, "p99": 0.03,
    ...          "p99.9": 0.04}
    >>> exporter.tick(Tick(0, {"names": {"get": entry}}, bots_running=3))
    >>> text = exporter.text().decode()
    >>> 'trio_bots_requests_total{name="get"} 10.0' in text, "trio_bots_bots 3.0" in text
    (True, True)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._core.runtime import Tick
from .._errors import ConfigError

WEB_MISSING = "--web and --prometheus need the web extra: pip install 'trio-bots[web]'"

#: (the quantile label, the tick entry's key)
QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"), ("0.999", "p99.9"))


def _client() -> Any:
    try:
        import prometheus_client
        import prometheus_client.core
    except ImportError:
        raise ConfigError(WEB_MISSING) from None
    return prometheus_client


@dataclass(frozen=True)
class _Figures:
    requests: Mapping[str, float] = field(default_factory=dict)
    failures: Mapping[str, float] = field(default_factory=dict)
    latency: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    raw: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    bots: int = 0
    dropped_arrivals: int = 0


class MetricsExporter:
    """One swarm's Prometheus series, updated by `tick` (hook it with `watch`).

    Attributes:
        registry: this exporter's own ``CollectorRegistry``.

    Example:
        >>> import trio, trio_bots
        >>> async def worker(bot):
        ...     async with bot.measure("work"):
        ...         await trio.sleep(0.5)
        >>> exporter = MetricsExporter()
        >>> async def main():
        ...     async with trio_bots.open_swarm(worker, 4) as swarm:
        ...         exporter.watch(swarm)
        >>> trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        >>> 'trio_bots_requests_total{name="work"} 4.0' in exporter.text().decode()
        True
    """

    def __init__(self) -> None:
        client = _client()
        self._client = client
        self._figures = _Figures()
        self._statistics: Callable[[], Any] | None = None
        self.registry = client.CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def watch(self, swarm: Any) -> Callable[[], None]:
        """Follow `swarm` (a `trio_bots.Swarm`, or a run over shards): its ticks feed
        the series. Returns the remover of the hook."""
        self._statistics = _counters_of(swarm)
        return swarm.on_tick(self.tick)  # type: ignore[no-any-return]

    def tick(self, tick: Tick) -> None:
        """Add one second's figures (called in the swarm's loop, once a second)."""
        old = self._figures
        requests, failures = dict(old.requests), dict(old.failures)
        latency: dict[str, dict[str, float]] = {}
        raw: dict[str, dict[str, float]] = {}
        for name, entry in tick.bucket.get("names", {}).items():
            count, failed = int(entry.get("count", 0)), int(entry.get("failures", 0))
            requests[name] = requests.get(name, 0) + count + failed
            failures[name] = failures.get(name, 0) + failed
            if count:
                latency[name] = {q: entry[key] for q, key in QUANTILES if key in entry}
                uncorrected = tick.raw_percentiles.get(name)
                if uncorrected is not None:
                    raw[name] = {q: uncorrected[k] for q, k in QUANTILES if k in uncorrected}
        dropped = old.dropped_arrivals
        if self._statistics is not None:
            dropped = int(self._statistics().dropped_arrivals)
        self._figures = _Figures(requests, failures, latency, raw, tick.bots_running, dropped)

    def collect(self) -> Iterator[Any]:
        """The series, for the registry (prometheus-client's collector protocol)."""
        core = self._client.core
        figures = self._figures  # one object: a whole tick
        requests = core.CounterMetricFamily(
            "trio_bots_requests", "Requests (successes plus failures) by name.", labels=["name"]
        )
        failures = core.CounterMetricFamily(
            "trio_bots_failures", "Failed requests by name.", labels=["name"]
        )
        for name in sorted(figures.requests):
            requests.add_metric([name], figures.requests[name])
            failures.add_metric([name], figures.failures.get(name, 0))
        yield requests
        yield failures
        yield core.GaugeMetricFamily("trio_bots_bots", "Live bots.", value=figures.bots)
        yield core.CounterMetricFamily(
            "trio_bots_dropped_arrivals",
            "Open-model arrivals dropped (no bot and no room in the queue).",
            value=figures.dropped_arrivals,
        )
        for metric, help_text, table in (
            (
                "trio_bots_latency_seconds",
                "Latency percentiles over the last second, by name (corrected for "
                "coordinated omission in the open model).",
                figures.latency,
            ),
            (
                "trio_bots_latency_raw_seconds",
                "The open model's uncorrected latency percentiles over the last second.",
                figures.raw,
            ),
        ):
            family = core.GaugeMetricFamily(metric, help_text, labels=["name", "quantile"])
            for name in sorted(table):
                for quantile, value in table[name].items():
                    family.add_metric([name, quantile], value)
            yield family

    def text(self) -> bytes:
        """The exposition text of the series, as a scrape gets it."""
        return self._client.generate_latest(self.registry)  # type: ignore[no-any-return]


def _counters_of(swarm: Any) -> Callable[[], Any]:
    """The swarm's counters-only statistics, as a call (no histogram is read)."""

    def statistics() -> Any:
        return swarm.statistics(metrics=False)

    return statistics


class MetricsServer:
    """``/metrics`` of one exporter over HTTP, on its own port, in a thread of its own
    (prometheus-client's server); `close` stops it and joins the thread.

    Attributes:
        port: the port it listens on.
    """

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.port: int = server.server_address[1]

    def close(self) -> None:
        """Stop serving and join the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve_metrics(exporter: MetricsExporter, host: str, port: int) -> MetricsServer:
    """Serve `exporter` at ``http://host:port/metrics`` until `MetricsServer.close`.

    Raises:
        ConfigError: without the web extra.
        OSError: when the address cannot be bound (a busy port).

    Example:
        >>> import urllib.request
        >>> server = serve_metrics(MetricsExporter(), "127.0.0.1", 0)
        >>> url = f"http://127.0.0.1:{server.port}/metrics"
        >>> b"trio_bots_bots 0.0" in urllib.request.urlopen(url, timeout=5).read()
        True
        >>> server.close()
    """
    client = _client()
    server, thread = client.start_http_server(port, addr=host, registry=exporter.registry)
    return MetricsServer(server, thread)
