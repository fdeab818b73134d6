"""POST /embed: raw text, images or sound in, the modality's own embeddings out (no translation)."""

from __future__ import annotations

from fastapi import APIRouter
from latent_bridge.service.api.deps import Served, ServedDep
from latent_bridge.service.api.embedding import embed_raw
from latent_bridge.service.api.responses import json_bytes, problems
from latent_bridge.service.api.routes.forms import RawInputRoute, form_body
from latent_bridge.service.api.schemas import EmbedRequest, EmbedResponse
from latent_bridge.service.api.vectors import encode
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

router = APIRouter(tags=["translation"], route_class=RawInputRoute)


def embedding(served: Served, body: EmbedRequest) -> bytes:
    x = embed_raw(served.bundle, served.settings, body.modality, body)
    served.metrics.count("embed", body.modality, len(x))  # a known modality: bounded
    return json_bytes(
        {
            "modality": body.modality,
            "count": len(x),
            "dim": int(x.shape[1]),
            "encoding": body.encoding,
            "vectors": encode(x, body.encoding),
        }
    )


@router.post(
    "/embed",
    response_model=EmbedResponse,
    responses=problems(404, 413, 415, 422, 503),
    summary="Embed raw text, images or sound with a modality's encoder",
    openapi_extra=form_body("EmbedRequest"),
)
async def embed(body: EmbedRequest, served: ServedDep) -> Response:
    """Run the `modality`'s encoder (named in the bundle) on raw `text`, `image` or `audio` (base64, or
    multipart/form-data uploads) and return the embeddings exactly as the training dataset holds them."""
    return Response(await run_in_threadpool(embedding, served, body), media_type="application/json")
