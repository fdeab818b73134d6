"""Dependencies of the routes, as ``Annotated`` aliases (all async: a sync dependency costs a thread hop)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.bundle import Bundle
from service.errors import NotReady, Unauthorized
from service.metrics import ServiceMetrics
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_bundle(request: Request) -> Bundle:
    """The bundle being served, read once per request (a reload swaps ``app.state.bundle`` as a whole)."""
    bundle: Bundle | None = request.app.state.bundle
    if bundle is None:
        raise NotReady("the bundle is still loading")
    return bundle


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
BundleDep = Annotated[Bundle, Depends(get_bundle)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]


@dataclass(frozen=True, slots=True)
class Served:
    """What a compute route needs, in one dependency (each FastAPI dependency costs ~10 µs to solve)."""

    bundle: Bundle
    settings: Settings
    metrics: ServiceMetrics


async def get_served(request: Request) -> Served:
    state = request.app.state
    bundle: Bundle | None = state.bundle
    if bundle is None:
        raise NotReady("the bundle is still loading")
    return Served(bundle, state.settings, state.metrics)


ServedDep = Annotated[Served, Depends(get_served)]


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The server's API key.")
_bearer = HTTPBearer(auto_error=False, description="The server's API key as a bearer token.")


async def require_api_key(
    settings: SettingsDep,
    header_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """When ``LATENT_BRIDGE_API_KEY`` is set, API routes need it (health, readiness and metrics do not)."""
    if settings.api_key is None:
        return
    given = header_key or (bearer.credentials if bearer else None)
    if given is None or not secrets.compare_digest(
        given.encode(), settings.api_key.get_secret_value().encode()
    ):
        raise Unauthorized("send the API key as `X-API-Key: <key>` or `Authorization: Bearer <key>`")
