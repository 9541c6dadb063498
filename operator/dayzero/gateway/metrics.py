"""Prometheus metrics of the gateway, on a registry of its own (one per app, so tests stay apart).

Every label value comes from the routing document or a fixed set, never from a client's string,
except project, which is capped at ``MAX_PROJECTS`` distinct values (then "other").
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

MAX_PROJECTS = 200


class Metrics:
    """The gateway's metric families."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "dayzero_gateway_requests",
            "Requests answered.",
            [
                "project",
                "lane",
                "provider_tier",
                "endpoint",
                "model",
                "status",
                "fallback_reason",
            ],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dayzero_gateway_request_duration_seconds",
            "Time to the end of the answer.",
            ["lane", "endpoint", "model"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "dayzero_gateway_tokens",
            "Tokens reported by upstreams.",
            ["project", "lane", "model", "direction"],
            registry=self.registry,
        )
        self.cost = Counter(
            "dayzero_gateway_cost_usd",
            "Spend at the document's prices.",
            ["project", "lane", "model"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "dayzero_gateway_backend_failures",
            "Backend attempts that failed over.",
            ["lane", "backend", "reason"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "dayzero_gateway_in_flight", "Requests in flight.", ["lane"], registry=self.registry
        )
        self.rate_limited = Counter(
            "dayzero_gateway_rate_limited",
            "Requests refused by a rate limit (429).",
            ["lane"],
            registry=self.registry,
        )
        self.config_errors = Counter(
            "dayzero_gateway_config_errors",
            "Routing documents rejected.",
            registry=self.registry,
        )
        self.config_info = Gauge(
            "dayzero_gateway_config_info",
            "The routing document in force (value 1).",
            ["hash"],
            registry=self.registry,
        )
        self._projects: set[str] = set()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Counter | Histogram | Gauge, *values: str) -> Any:  # noqa: ANN401 - prometheus_client's child types are private
        """``metric.labels(*values)``, cached: label values are bounded, and the lookup with
        its validation is a measurable share of a request's CPU."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def project(self, project: str) -> str:
        """The project label, bounded."""
        if project in self._projects:
            return project
        if len(self._projects) < MAX_PROJECTS:
            self._projects.add(project)
            return project
        return "other"

    def config_loaded(self, config_hash: str) -> None:
        """Point the info metric at the document in force."""
        self.config_info.clear()
        self.config_info.labels(hash=config_hash).set(1)
