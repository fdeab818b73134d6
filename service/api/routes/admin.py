"""POST /admin/reload: swap in a new bundle without downtime. Mounted only when an API key is set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Request
from latent_bridge.service.api.reload import Reloader
from latent_bridge.service.api.responses import problems
from latent_bridge.service.api.routes.base import JSONBodyRoute
from latent_bridge.service.api.schemas import BundleRef, ReloadRequest, ReloadResponse

router = APIRouter(prefix="/admin", tags=["admin"], route_class=JSONBodyRoute)
RESPONSES = problems(413, 415, 422)
RESPONSES[422]["description"] = (
    "The bundle was refused (the body names the file and the reason; the old one keeps serving), "
    "or the request body is invalid."
)


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses=RESPONSES,
    summary="Load, check and swap in a bundle",
)
async def reload_bundle(request: Request, body: Annotated[ReloadRequest | None, Body()] = None) -> ReloadResponse:
    """Load the bundle named in the body (or the configured one), validate it fully, warm it up and swap it
    in atomically: requests in flight finish on the old bundle. A bundle that fails validation is refused
    (422, naming the file and the reason) and the old one keeps serving. SIGHUP does the same."""
    reloader: Reloader = request.app.state.reloader
    path = Path(body.bundle) if body is not None and body.bundle is not None else None
    new, old = await reloader.reload(path)
    return ReloadResponse(
        bundle=new.name,
        fingerprint=new.fingerprint,
        path=str(new.path),
        load_seconds=round(new.load_seconds, 3),
        previous=None if old is None else BundleRef(bundle=old[0], fingerprint=old[1]),
    )
