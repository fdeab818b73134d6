"""Prometheus metrics: request counts and latency per route, plus our own per stage: translations by path,
time per translator hop and per gallery search, and bundle info.

Route metrics keep prometheus-fastapi-instrumentator's names and labels (``http_requests_total``,
``http_request_duration_seconds`` by method/handler/status) but come from a small ASGI middleware that
reads the route Starlette already matched: the instrumentator matches every route again and builds a
Response per request, about 80 µs, a quarter of a single-vector /translate.
Each app has its own registry, so several apps (tests) never clash over metric names.
"""

from __future__ import annotations

import time

from latent_bridge.service.bundle.loader import Bundle
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Methods counted by name; any other (HTTP allows any token) is counted as "other", so no request can
# add a label value.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.translations = Counter(
            "latent_bridge_translations",
            "Requests translated, by operation and modality path.",
            ["operation", "path"],
            registry=registry,
        )
        self.vectors = Counter(
            "latent_bridge_translated_vectors",
            "Vectors translated, by modality path.",
            ["path"],
            registry=registry,
        )
        self.hop_seconds = Histogram(
            "latent_bridge_hop_seconds",
            "Time of one translator run (one hop, one batch).",
            ["edge"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.search_seconds = Histogram(
            "latent_bridge_search_seconds",
            "Time of one gallery search (one batch of queries).",
            ["modality"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.bundle_info = Info("latent_bridge_bundle", "The bundle being served.", registry=registry)
        self.bundle_load_seconds = Gauge(
            "latent_bridge_bundle_load_seconds",
            "Time taken to validate and load the bundle.",
            registry=registry,
        )
        self.reloads = Counter(
            "latent_bridge_reloads",
            "Bundle reloads (POST /admin/reload or SIGHUP), by result: ok or refused.",
            ["result"],
            registry=registry,
        )

        self._hops: dict[str, Histogram] = {}
        self._searches: dict[str, Histogram] = {}
        self._paths: dict[tuple[str, str], tuple[Counter, Counter]] = {}

    def observe_hop(self, edge: str, seconds: float) -> None:
        child = self._hops.get(edge)
        if child is None:
            child = self._hops[edge] = self.hop_seconds.labels(edge)
        child.observe(seconds)

    def observe_search(self, modality: str, seconds: float) -> None:
        child = self._searches.get(modality)
        if child is None:
            child = self._searches[modality] = self.search_seconds.labels(modality)
        child.observe(seconds)

    def count(self, operation: str, label: str, vectors: int) -> None:
        """Count a request under a route label from a bounded set (``ModalityGraph.label``)."""
        children = self._paths.get((operation, label))
        if children is None:
            children = (self.translations.labels(operation, label), self.vectors.labels(label))
            self._paths[operation, label] = children
        children[0].inc()
        children[1].inc(vectors)

    def set_bundle(self, bundle: Bundle) -> None:
        manifest = bundle.manifest
        self.bundle_info.info(
            {
                "name": manifest.name,
                "fingerprint": bundle.fingerprint,
                "schema_version": str(manifest.schema_version),
                "created_at": manifest.created_at.isoformat(),
                "modalities": ",".join(m.name for m in manifest.modalities),
                "edges": str(len(manifest.edges)),
            }
        )
        self.bundle_load_seconds.set(bundle.load_seconds)


class RouteMetricsMiddleware:
    """Count requests and time them per (method, route template, status); /metrics itself is not counted."""

    def __init__(
        self, app: ASGIApp, registry: CollectorRegistry, exclude: frozenset[str] = frozenset({"/metrics"})
    ):
        self.app = app
        self.exclude = exclude
        self.requests = Counter(
            "http_requests",
            "Requests by method, route and status.",
            ["method", "handler", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Request latency by method and route.",
            ["method", "handler"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            handler = getattr(route, "path", None) or "unmatched"
            if handler not in self.exclude:
                method = scope["method"] if scope["method"] in METHODS else "other"
                self._observe(method, handler, status, time.perf_counter() - started)

    def _observe(self, method: str, handler: str, status: int, seconds: float) -> None:
        key = (method, handler, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, handler, str(status)),
                self.latency.labels(method, handler),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
