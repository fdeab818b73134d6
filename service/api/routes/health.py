"""GET /healthz (the process is alive) and GET /readyz (a bundle is loaded and its translators warmed up)."""

from __future__ import annotations

from fastapi import APIRouter
from latent_bridge.service.api.deps import BundleDep, SettingsDep
from latent_bridge.service.api.responses import problems
from latent_bridge.service.api.schemas import Health, Readiness
from latent_bridge.service.bundle.loader import Bundle
from latent_bridge.service.errors import NotReady
from starlette.concurrency import run_in_threadpool

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """Answers as long as the process serves HTTP, bundle or not."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    response_model_exclude_none=True,
    responses=problems(503),
    summary="Readiness",
)
async def readyz(bundle: BundleDep, settings: SettingsDep) -> Readiness:
    """200 once the bundle is validated, loaded and its translators warmed up; 503 before. Names the
    bundle unless the server keeps that to keyed routes (`LATENT_BRIDGE_READYZ_DETAILS=false`). A gallery in
    Milvus that cannot serve (unreachable, collection missing) makes it 503 with the reason."""
    if any(not g.in_process for g in bundle.galleries.values()):
        reasons = await run_in_threadpool(unavailable, bundle)
        if reasons:
            raise NotReady("; ".join(f"gallery {m!r}: {r}" for m, r in reasons.items()), galleries=reasons)
    if not settings.readyz_details:
        return Readiness()
    manifest = bundle.manifest
    return Readiness(
        bundle=manifest.name,
        fingerprint=bundle.fingerprint,
        modalities=len(manifest.modalities),
        edges=len(manifest.edges),
        galleries=len(bundle.galleries),
        load_seconds=round(bundle.load_seconds, 3),
    )


def unavailable(bundle: Bundle) -> dict[str, str]:
    """Why each gallery that cannot serve now cannot (network calls, each bounded by its backend)."""
    reasons = {m: g.unavailable() for m, g in bundle.galleries.items()}
    return {m: r for m, r in reasons.items() if r is not None}
