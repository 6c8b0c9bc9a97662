"""Prometheus metrics of the recursive resolver, served on an opt-in HTTP port.

Owns: the metric names (aligned with unbound_exporter and the PowerDNS Recursor where
they overlap: queries, cache hits/misses, answer rcodes, response time, unwanted replies,
upstream queries), reading the resolver's existing counters at scrape time, the
response-time histogram of resolutions that needed the network, and the HTTP endpoint.
Must never: add work to the query path beyond one histogram update per resolution that
went to the network (cache hits are not timed), or listen anywhere it was not told to.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from poisonproof.net.base import Address
from poisonproof.resolver.frontend import Frontend

BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
"""Upper bounds in seconds (PowerDNS's answers0-1/1-10/10-100/100-1000 ms fall on them)."""

RCODES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
}

NAMED = {
    # frontend counters
    "queries": ("queries", "Client queries received (unbound_queries_total)."),
    "cache_hits": ("cache_hits", "Client queries answered from the cache."),
    "cache_misses": ("cache_misses", "Client queries that needed a resolution."),
    # resolver counters
    "unwanted_replies": (
        "unwanted_replies",
        "Upstream replies that matched no outstanding query (unbound_unwanted_replies_total).",
    ),
    "case_mismatches": ("case_mismatches", "Upstream replies whose 0x20 case did not match."),
    "near_misses": ("near_misses", "Forged-looking replies that nearly matched a query."),
    "spoof_alarms": ("spoof_alarms", "Times the unwanted-reply alarm switched a zone to TCP."),
    "scrubbed_records": ("scrubbed_records", "Records the scrubber dropped from replies."),
    "timeouts": ("upstream_timeouts", "Upstream queries that got no reply in time."),
    "servfail": ("resolution_failures", "Resolutions that ended in SERVFAIL."),
}


class Stats(Protocol):
    """What the collector reads: the server's current frontend (swapped on reload)."""

    @property
    def frontend(self) -> Frontend: ...


class LatencyHistogram:
    """Bucket counts of resolution times, updated on the event loop, read by the scraper."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.total += seconds


class ResolverCollector(Collector):
    """Turns the frontend's and resolver's counter dicts into Prometheus metrics."""

    def __init__(
        self, source: Stats, latency: LatencyHistogram, prefix: str = "poisonproof"
    ) -> None:
        self.source = source
        self.latency = latency
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        frontend = self.source.frontend
        resolver = frontend.resolver
        front = dict(frontend.stats)  # one C-level copy: safe against the loop thread
        back = dict(resolver.stats)
        p = self.prefix
        seen = set()
        for key, (name, text) in NAMED.items():
            seen.add(key)
            value = front.get(key, back.get(key, 0))
            yield CounterMetricFamily(f"{p}_{name}", text, value=value)
        upstream = CounterMetricFamily(
            f"{p}_upstream_queries",
            "Queries sent to authoritative servers (PowerDNS all-outqueries).",
            labels=["protocol"],
        )
        upstream.add_metric(["udp"], back.get("upstream_udp", 0))
        upstream.add_metric(["tcp"], back.get("upstream_tcp", 0))
        seen.update(("upstream_udp", "upstream_tcp"))
        yield upstream
        rcodes = CounterMetricFamily(
            f"{p}_answer_rcodes",
            "Replies built by the full path, by rcode (cache-hit replays of a stored"
            " NOERROR/NXDOMAIN reply are counted in cache_hits only).",
            labels=["rcode"],
        )
        for code, count in sorted(dict(getattr(frontend, "rcodes", {})).items()):
            rcodes.add_metric([RCODES.get(code, str(code))], count)
        yield rcodes
        yield self._histogram(front.get("cache_hits", 0))
        events = CounterMetricFamily(
            f"{p}_events", "Every other resolver and frontend counter, by name.", labels=["event"]
        )
        for key, count in sorted({**back, **front}.items()):
            if key not in seen:
                events.add_metric([key], count)
        yield events
        yield GaugeMetricFamily(
            f"{p}_cache_entries",
            "RRsets and negative answers in the cache.",
            value=len(resolver.cache),
        )
        if frontend.answers is not None:
            yield GaugeMetricFamily(
                f"{p}_answer_cache_entries",
                "Rendered replies kept for the cache-hit fast path.",
                value=len(frontend.answers),
            )

    def _histogram(self, cache_hits: int) -> HistogramMetricFamily:
        counts = list(self.latency.counts)
        counts[0] += cache_hits  # answered in the packet handler, without a wait: not timed
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.latency.buckets, float("inf")), counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return HistogramMetricFamily(
            f"{self.prefix}_response_time_seconds",
            "Time from client query to reply. Resolutions that needed the network are timed;"
            " cache hits are counted in the first bucket without being timed.",
            buckets=buckets,
            sum_value=self.latency.total,
        )


class MetricsEndpoint:
    """The HTTP listener serving /metrics from its own thread."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def address(self) -> Address:
        host, port = self._server.server_address[:2]
        return (str(host), int(port))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve_metrics(address: Address, collectors: Iterable[Collector]) -> MetricsEndpoint:
    """Serve the collectors on http://address/metrics (raises OSError when it cannot bind)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    server, thread = start_http_server(address[1], addr=address[0], registry=registry)
    return MetricsEndpoint(server, thread)
