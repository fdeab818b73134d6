"""POST /translate: vectors of one modality into another, along the best or a pinned route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from latent_bridge.service.api import examples
from latent_bridge.service.api.deps import Served, ServedDep
from latent_bridge.service.api.embedding import has_raw, query_matrix
from latent_bridge.service.api.responses import json_bytes, problems
from latent_bridge.service.api.routes.forms import RawInputRoute, form_body
from latent_bridge.service.api.schemas import TranslateRequest, TranslateResponse
from latent_bridge.service.api.vectors import count_values, encode
from latent_bridge.service.engine.graph import Route
from latent_bridge.service.engine.translate import round_trip_cosine, run_route, unit_rows
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

router = APIRouter(tags=["translation"], route_class=RawInputRoute)


def hops_of(route: Route) -> list[dict[str, object]]:
    return [{"from": h.source, "to": h.target, "kind": h.kind, "fidelity": h.fidelity} for h in route.hops]


def translation(served: Served, request: TranslateRequest) -> bytes:
    """All the work of one request, from the parsed body to the response bytes."""
    bundle, metrics = served.bundle, served.metrics
    route = bundle.graph.resolve(request.source, request.target, request.path)
    source, target = bundle.modalities[request.source], bundle.modalities[request.target]
    x = query_matrix(
        bundle, served.settings, source.name, request, request.vectors, request.vector, request.encoding
    )
    y = run_route(bundle.translators, route, x, bundle.l2_inputs, metrics.observe_hop)
    confidence = None
    if request.confidence:
        back = run_route(
            bundle.translators, bundle.graph.back(route), y, bundle.l2_inputs, metrics.observe_hop
        )
        gallery = bundle.galleries.get(source.name)
        confidence = round_trip_cosine(x, back, None if gallery is None else gallery.mean).tolist()
    if request.normalize:
        y = unit_rows(y)
    metrics.count("translate", bundle.graph.label(route), len(x))
    return json_bytes(
        {
            "from": source.name,
            "to": target.name,
            "path": route.path,
            "hops": hops_of(route),
            "fidelity": route.fidelity,
            "count": len(y),
            "dim": target.dim,
            "encoding": request.encoding,
            "vectors": encode(y, request.encoding),
            "confidence": confidence,
        }
    )


@router.post(
    "/translate",
    response_model=TranslateResponse,
    responses=problems(404, 409, 413, 415, 422, 503),
    summary="Translate vectors from one modality to another",
    openapi_extra=form_body("TranslateRequest"),
)
async def translate(
    body: Annotated[TranslateRequest, Body(openapi_examples=examples.TRANSLATE)], served: ServedDep
) -> Response:
    """Translate one `vector` or a batch of `vectors` from `from` to `to`, along the route that preserves the
    most (or the pinned `path`). Returns the vectors, the path, its estimated fidelity and, with
    `confidence: true`, each input's round-trip cosine (centred by the source gallery's mean). Instead of
    vectors, raw `text`, `image` or `audio` (base64, or multipart/form-data uploads) is embedded first by
    the `from` modality's encoder, when the bundle has one."""
    route = served.bundle.graph.resolve(body.source, body.target, body.path)
    values = count_values(body.vectors, body.vector)
    passes = 2 if body.confidence else 1  # there and back
    if not has_raw(body) and served.inline(route, body.source, values, passes):
        content = translation(served, body)  # tiny work: cheaper than a thread hop
    else:
        content = await run_in_threadpool(translation, served, body)
    return Response(content, media_type="application/json")
