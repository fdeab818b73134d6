"""GET /healthz (the process is alive) and GET /readyz (a bundle is loaded and its translators warmed up)."""

from __future__ import annotations

from fastapi import APIRouter
from latent_bridge.service.deps import BundleDep
from latent_bridge.service.responses import problems
from latent_bridge.service.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """Answers as long as the process serves HTTP, bundle or not."""
    return Health()


@router.get("/readyz", response_model=Readiness, responses=problems(503), summary="Readiness")
async def readyz(bundle: BundleDep) -> Readiness:
    """200 once the bundle is validated, loaded and its translators warmed up; 503 before."""
    manifest = bundle.manifest
    return Readiness(
        bundle=manifest.name,
        fingerprint=bundle.fingerprint,
        modalities=len(manifest.modalities),
        edges=len(manifest.edges),
        galleries=len(bundle.galleries),
        load_seconds=round(bundle.load_seconds, 3),
    )
