"""The FastAPI application: ``create_app(settings)`` builds it; its lifespan loads the bundle once.

``app.state.bundle`` holds the one ``Bundle`` (manifest, translators, galleries, graph) every request
reads; a reload (``reload.py``: POST /admin/reload or SIGHUP) replaces it with a single assignment.
ASGI middleware guards every request before routing: API key (``auth.py``), deadline and body size
(``limits.py``), and the JSON access log (``accesslog.py``). Tests pass a ready ``Bundle`` or a
settings object pointing at a small bundle instead of monkeypatching.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import anyio.to_thread
from fastapi import FastAPI
from fastapi.routing import APIRoute
from latent_bridge.service.api.accesslog import AccessLogMiddleware, configure_access_log
from latent_bridge.service.api.auth import OPEN_PATHS, APIKeyMiddleware
from latent_bridge.service.api.docs import DOCS_PATHS, install_docs
from latent_bridge.service.api.headers import SecurityHeadersMiddleware
from latent_bridge.service.api.limits import BodyLimitMiddleware, TimeoutMiddleware
from latent_bridge.service.api.memory import HeapTrimMiddleware, release_memory
from latent_bridge.service.api.metrics import RouteMetricsMiddleware, ServiceMetrics
from latent_bridge.service.api.openapi import install_openapi
from latent_bridge.service.api.problems import install_error_handlers
from latent_bridge.service.api.protocol import configure as configure_protocol
from latent_bridge.service.api.reload import Reloader
from latent_bridge.service.api.routes import (
    admin,
    embed,
    galleries,
    graph,
    health,
    media,
    metrics,
    page,
    retrieve,
    translate,
)
from latent_bridge.service.bundle.loader import Bundle, load_bundle, load_limits
from latent_bridge.service.bundle.manifest import BundleError
from latent_bridge.service.settings import Settings
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
ADMIN_TAG = {"name": "admin", "description": "Hot reload. Present only when the server has an admin key."}
GALLERIES_TAG = {
    "name": "galleries",
    "description": "Writes to galleries at run time, durable before the answer. Present only when the server "
    "has an admin key.",
}


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
    return load_bundle(
        settings.bundle, settings.fidelity, settings.ort_threads, settings.faiss_threads, load_limits(settings)
    )


def create_app(settings: Settings | None = None, bundle: Bundle | None = None) -> FastAPI:
    """The app for ``settings``; with ``bundle`` it serves that one instead of loading ``settings.bundle``."""
    settings = settings or Settings()
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    service_metrics = ServiceMetrics(registry)

    # Handed over once and then forgotten: a reference kept here would pin the first bundle in memory
    # after a reload replaced it.
    given = [bundle] if bundle is not None else []
    del bundle

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if given:
            app.state.bundle = given.pop()
        else:
            app.state.bundle = await anyio.to_thread.run_sync(open_bundle, settings)
        await anyio.to_thread.run_sync(release_memory)
        service_metrics.set_bundle(app.state.bundle)
        if settings.api_key is None and settings.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("serving on %s without an API key (set LATENT_BRIDGE_API_KEY)", settings.host)
        sighup = reloader.install_sighup()
        try:
            yield
        finally:
            if sighup:
                reloader.remove_sighup()
            serving: Bundle | None = app.state.bundle
            app.state.bundle = None
            if serving is not None:  # its encoders' batcher threads end with the app
                await anyio.to_thread.run_sync(serving.close)
            del serving

    keyed = settings.api_key is not None
    with_admin = settings.admin_key is not None
    app = FastAPI(
        title="Latent Bridge",
        version=version("latent-bridge"),
        description=DESCRIPTION,
        openapi_tags=[*TAGS, ADMIN_TAG, GALLERIES_TAG] if with_admin else TAGS,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served from our own assets (docs.py), never from a CDN
        redoc_url=None,
    )
    reloader = Reloader(app)
    app.state.settings = settings
    app.state.bundle = None
    app.state.metrics = service_metrics
    app.state.reloader = reloader
    install_error_handlers(app)
    install_openapi(app, keyed=keyed, max_k=settings.max_k)
    install_docs(app)
    # Added innermost first: a request meets the request id, the access log, the route metrics, the key
    # check, the deadline and the body limit, in that order, before any route.
    app.add_middleware(HeapTrimMiddleware)  # innermost: trims once the route's objects are freed
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(TimeoutMiddleware, seconds=settings.request_timeout)
    # Always wired in: without any key the admin scope must still be closed (auth.py has the rule).
    app.add_middleware(
        APIKeyMiddleware,
        key=None if settings.api_key is None else settings.api_key.get_secret_value(),
        admin_key=None if settings.admin_key is None else settings.admin_key.get_secret_value(),
        open_paths=OPEN_PATHS | DOCS_PATHS | page.PAGE_PATHS,
    )
    app.add_middleware(RouteMetricsMiddleware, registry=registry)
    if settings.access_log:
        app.add_middleware(AccessLogMiddleware)
    app.add_middleware(RequestIdMiddleware)
    if settings.cors_origins:  # outermost: a preflight carries no API key and must not need one
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["content-type", "x-api-key", "authorization", "x-request-id"],
            expose_headers=["x-request-id"],
        )
    # Outermost of all: every answer, a middleware's refusal or a CORS preflight too, gets the headers.
    app.add_middleware(SecurityHeadersMiddleware)
    for router in (translate.router, retrieve.router, galleries.reader, graph.router, health.router):
        app.include_router(router)
    for router in (embed.router, media.router, page.router):
        app.include_router(router)
    app.include_router(metrics.router)
    if with_admin:  # admin routes, gallery writes included, exist only behind the admin key
        app.include_router(admin.router)
        app.include_router(galleries.writer)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings from the environment."""
    settings = Settings()
    if settings.access_log:
        configure_access_log()
    configure_protocol(settings)  # this worker's connection limits
    return create_app(settings)
