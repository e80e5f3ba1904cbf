"""Prometheus metrics of the live consumer (counters and latency histogram).

Each consumer owns a registry, served on ``consumer.metrics_port`` (0 = off)
at ``/metrics``. Labels carry no customer data.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server


class ConsumerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_in = Counter("fraudgraph_consumer_events_total", "Events received", registry=self.registry)
        self.rejected = Counter(
            "fraudgraph_consumer_rejected_total", "Events sent to the dead letter", ["reason"], registry=self.registry
        )
        self.duplicates = Counter(
            "fraudgraph_consumer_duplicates_total", "Redelivered events ignored", registry=self.registry
        )
        self.decisions = Counter(
            "fraudgraph_consumer_decisions_total", "Decisions emitted", ["decision"], registry=self.registry
        )
        self.latency = Histogram(
            "fraudgraph_consumer_event_latency_seconds",
            "Receive-to-decision latency per event (micro-batch)",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self._server: Any = None

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Start the HTTP endpoint; returns the bound port."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return server.server_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
