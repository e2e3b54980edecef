"""`GET /metrics`: the server's Prometheus counters, one registry per app."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """Requests, errors by cause, latency, and tokens and cost per upstream model."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "fusion_requests",
            "Chat-completion requests, by virtual model and HTTP status.",
            ["model", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "fusion_errors",
            "Requests that failed, by cause.",
            ["cause"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fusion_request_seconds",
            "Time to answer a chat-completion request, by virtual model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "fusion_tokens",
            "Tokens used by the fusions' member and judge calls, by upstream model and kind.",
            ["model", "kind"],
            registry=self.registry,
        )
        self.cost = Counter(
            "fusion_cost_usd",
            "Provider-reported cost of the fusions' calls, by upstream model.",
            ["model"],
            registry=self.registry,
        )
        self.in_flight = Gauge("fusion_in_flight", "Fusions running now.", registry=self.registry)

    def observe(
        self,
        model: str,
        status: int,
        seconds: float,
        cause: str | None,
        report: dict[str, Any] | None,
    ) -> None:
        """Count one finished request, and the usage of its fusion's report if any."""
        self.requests.labels(model=model, status=str(status)).inc()
        self.latency.labels(model=model).observe(seconds)
        if cause is not None:
            self.errors.labels(cause=cause).inc()
        if report is None:
            return
        for upstream, usage in (report.get("usage_by_model") or {}).items():
            self.tokens.labels(model=upstream, kind="input").inc(usage.get("input_tokens", 0))
            self.tokens.labels(model=upstream, kind="output").inc(usage.get("output_tokens", 0))
            if usage.get("cost_usd") is not None:
                self.cost.labels(model=upstream).inc(usage["cost_usd"])

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
