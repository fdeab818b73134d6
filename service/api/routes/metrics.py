"""GET /metrics: Prometheus text exposition of this app's registry."""

from __future__ import annotations

from fastapi import APIRouter
from latent_bridge.service.api.deps import MetricsDep
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text format.",
        }
    },
)
async def metrics(service_metrics: MetricsDep) -> Response:
    """Request counts and latency per route, translations by path, time per hop and search, bundle info."""
    return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)
