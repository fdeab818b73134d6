"""Dependencies of the routes, as ``Annotated`` aliases (all async: a sync dependency costs a thread hop)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from latent_bridge.service.api.metrics import ServiceMetrics
from latent_bridge.service.bundle.loader import Bundle
from latent_bridge.service.engine.graph import Route
from latent_bridge.service.engine.translate import route_seconds
from latent_bridge.service.errors import NotReady
from latent_bridge.service.settings import Settings


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

    def inline(self, route: Route, source: str, values: int, passes: int = 1) -> bool:
        """Whether work this small may run on the event loop: few input numbers, and ``passes`` runs of a
        route whose translators' measured cost fits ``inline_max_seconds`` (a slow model never blocks)."""
        if values > self.settings.inline_max_values:
            return False
        rows = max(1, values // self.bundle.modalities[source].dim)
        return passes * route_seconds(self.bundle.translators, route, rows) <= self.settings.inline_max_seconds


async def get_served(request: Request) -> Served:
    state = request.app.state
    bundle: Bundle | None = state.bundle
    if bundle is None:
        raise NotReady("the bundle is still loading")
    return Served(bundle, state.settings, state.metrics)


ServedDep = Annotated[Served, Depends(get_served)]
