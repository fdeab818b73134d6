"""The FastAPI application: ``create_app(settings)`` builds it; its lifespan loads the bundle once.

``app.state.bundle`` holds the one ``Bundle`` (manifest, translators, galleries, graph) every request
reads; a reload can replace it with a single assignment. Tests pass a ready ``Bundle`` or a settings
object pointing at a small bundle instead of monkeypatching.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from latent_bridge import __version__
from service.bundle import Bundle, load_bundle
from service.deps import require_api_key
from service.errors import install_error_handlers
from service.manifest import BundleError
from service.metrics import RouteMetricsMiddleware, ServiceMetrics
from service.openapi import install_openapi
from service.routes import graph, health, metrics, modalities, retrieve, translate
from service.settings import Settings

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = b"x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

DESCRIPTION = """Translate embeddings between modalities through a graph of small learned translators, and
search any modality's gallery from any other. Errors are `application/problem+json` (RFC 9457)."""
TAGS = [
    {"name": "translation", "description": "Vectors from one modality's embedding space into another's."},
    {"name": "retrieval", "description": "Cross-modal search over the bundle's galleries."},
    {"name": "graph", "description": "Modalities, translators and the routes between them."},
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics."},
]


def operation_id(route: APIRoute) -> str:
    """Stable operation ids for generated clients: the endpoint function's name."""
    return route.name


class RequestIdMiddleware:
    """Give every request an id (the caller's X-Request-ID when sane), echo it, expose it to handlers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                candidate = value.decode("latin-1")
                request_id = candidate if _SAFE_REQUEST_ID.match(candidate) else None
                break
        request_id = request_id or secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


def open_bundle(settings: Settings) -> Bundle:
    if settings.bundle is None:
        raise BundleError("no bundle given: set LATENT_BRIDGE_BUNDLE or pass --bundle")
    return load_bundle(settings.bundle, settings.fidelity, settings.ort_threads, settings.faiss_threads)


def create_app(settings: Settings | None = None, bundle: Bundle | None = None) -> FastAPI:
    """The app for ``settings``; with ``bundle`` it serves that one instead of loading ``settings.bundle``."""
    settings = settings or Settings()
    registry = CollectorRegistry()
    service_metrics = ServiceMetrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = bundle if bundle is not None else await anyio.to_thread.run_sync(open_bundle, settings)
        service_metrics.set_bundle(loaded)
        app.state.bundle = loaded
        if settings.api_key is None and settings.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("serving on %s without an API key (set LATENT_BRIDGE_API_KEY)", settings.host)
        yield
        app.state.bundle = None

    app = FastAPI(
        title="Latent Bridge",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.bundle = None
    app.state.metrics = service_metrics
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(RouteMetricsMiddleware, registry=registry)
    app.add_middleware(RequestIdMiddleware)
    # The key check is only wired in when a key is set: an unused dependency still costs every request.
    protected = [Depends(require_api_key)] if settings.api_key is not None else []
    for router in (translate.router, retrieve.router, graph.router, modalities.router):
        app.include_router(router, dependencies=protected)
    app.include_router(health.router)
    app.include_router(metrics.router)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings from the environment."""
    return create_app(Settings())
