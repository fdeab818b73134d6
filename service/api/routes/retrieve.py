"""GET /retrieve (a stored item as the query) and POST /retrieve (raw vectors): cross-modal search."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from latent_bridge.service.api import examples
from latent_bridge.service.api.deps import Served, ServedDep
from latent_bridge.service.api.embedding import has_raw, query_matrix
from latent_bridge.service.api.responses import json_bytes, problems
from latent_bridge.service.api.routes.forms import RawInputRoute, form_body
from latent_bridge.service.api.schemas import (
    EFFORT_CEILING,
    EFFORT_DOC,
    EXCLUDE_SELF_DOC,
    K_CEILING,
    K_DOC,
    STRATEGY_DOC,
    RetrieveRequest,
    RetrieveResponse,
)
from latent_bridge.service.api.vectors import count_values
from latent_bridge.service.bundle.manifest import RetrievalStrategy
from latent_bridge.service.engine.graph import Route
from latent_bridge.service.engine.retrieval import retrieve
from latent_bridge.service.errors import BatchTooLarge, KOutOfRange, MalformedVectors
from latent_bridge.service.galleries.backend import (
    GalleryBackend,
    Hit,
    Matrix,
    SearchOptions,
    check_ids,
    check_where_values,
)
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

router = APIRouter(tags=["retrieval"], route_class=RawInputRoute)
# A flat search with more multiply-adds than this goes to a worker thread instead of the event loop.
INLINE_SEARCH_WORK = 4_000_000


def check_k(k: int, limit: int) -> None:
    if not 1 <= k <= limit:
        raise KOutOfRange(k, limit)


def inline(served: Served, route: Route, gallery: GalleryBackend, values: int) -> bool:
    """Whether a request is small enough to run on the event loop: few input numbers, a route of small
    measured cost, and (for an exact gallery) a search of few multiply-adds; never a search over the network."""
    if not gallery.in_process:
        return False
    source = route.path[0]
    rows = max(1, values // served.bundle.modalities[source].dim)
    flat = gallery.spec.index_type == "flat"
    search_work = rows * gallery.size * served.bundle.modalities[gallery.modality].dim if flat else 0
    return search_work <= INLINE_SEARCH_WORK and served.inline(route, source, values)


def rendered(hit: Hit) -> dict[str, Any]:
    """A hit as the API answers it (its base row stays inside the service)."""
    return {"id": hit.id, "score": hit.score, "sample": hit.sample, "payload": hit.payload}


def search(
    served: Served,
    route: Route,
    x: Matrix,
    k: int,
    queries: list[int] | list[str],
    options: SearchOptions | None = None,
    strategy: RetrievalStrategy | None = None,
) -> bytes:
    """Retrieve through the engine (the route's strategy or the pinned one) and render the response bytes."""
    bundle, metrics = served.bundle, served.metrics
    how, results = retrieve(bundle, route, x, k, options, strategy, metrics.observe_hop, metrics.observe_search)
    served.metrics.count("retrieve", bundle.graph.label(route), len(x))
    return json_bytes(
        {
            "from": route.path[0],
            "to": route.path[-1],
            "path": route.path,
            "fidelity": route.fidelity,
            "k": k,
            "strategy": how.strategy,
            "pivot": how.pivot,
            "strategy_note": how.note,
            "hubness": how.hubness,
            "results": [
                {"query": q, "hits": [rendered(h) for h in hits]} for q, hits in zip(queries, results, strict=True)
            ],
        }
    )


@router.get(
    "/retrieve",
    response_model=RetrieveResponse,
    responses=problems(404, 409, 422, 503),
    summary="Search a gallery with a stored item as the query",
)
async def retrieve_by_id(
    served: ServedDep,
    source: Annotated[
        str, Query(alias="from", description="Modality of the query item.", openapi_examples=examples.param("audio"))
    ],
    target: Annotated[
        str,
        Query(alias="to", description="Modality whose gallery is searched.", openapi_examples=examples.param("text")),
    ],
    item: Annotated[
        str, Query(
            alias="id",
            description="Id of an item in the `from` gallery.",
            openapi_examples=examples.param(examples.BARK_ID),
        )
    ],
    k: Annotated[
        int,
        Query(ge=1, le=K_CEILING, description=K_DOC, openapi_examples=examples.param(5)),
    ] = 10,
    exclude_self: Annotated[bool, Query(description=EXCLUDE_SELF_DOC)] = False,
    effort: Annotated[int | None, Query(ge=1, le=EFFORT_CEILING, description=EFFORT_DOC)] = None,
    strategy: Annotated[RetrievalStrategy | None, Query(description=STRATEGY_DOC)] = None,
) -> Response:
    """Take item `id` of the `from` gallery, translate it along the best route to `to` and return the `k`
    nearest items of the `to` gallery with their scores and payloads. `from == to` is plain search."""
    check_k(k, served.settings.max_k)
    check_ids([item], served.settings.max_id_bytes, served.settings.max_request_id_bytes)
    route = served.bundle.graph.resolve(source, target)
    query_gallery, gallery = served.bundle.gallery(source), served.bundle.gallery(target)
    options = SearchOptions(exclude=[item] if exclude_self else None, effort=effort)
    if query_gallery.in_process and inline(served, route, gallery, served.bundle.modalities[source].dim):
        content = search(served, route, query_gallery.vectors_of([item]), k, [item], options, strategy)
    else:
        x = await run_in_threadpool(query_gallery.vectors_of, [item])
        content = await run_in_threadpool(search, served, route, x, k, [item], options, strategy)
    return Response(content, media_type="application/json")


def search_vectors(served: Served, body: RetrieveRequest) -> bytes:
    route = served.bundle.graph.resolve(body.source, body.target, body.path)
    limits = served.settings
    queries: list[int] | list[str]
    if body.ids is not None:
        if body.vector is not None or body.vectors is not None or has_raw(body):
            raise MalformedVectors("give `ids`, `vector`, `vectors` or raw input, only one of them")
        if len(body.ids) > limits.max_batch:
            raise BatchTooLarge(got=len(body.ids), limit=limits.max_batch)
        x = served.bundle.gallery(body.source).vectors_of(body.ids)
        queries = list(body.ids)
    else:
        x = query_matrix(served.bundle, limits, body.source, body, body.vectors, body.vector, body.encoding)
        queries = list(range(len(x)))
    exclude = list(body.ids) if body.exclude_self and body.ids is not None else None
    options = SearchOptions(where=body.where, exclude=exclude, effort=body.effort)
    return search(served, route, x, body.k, queries, options, body.strategy)


@router.post(
    "/retrieve",
    response_model=RetrieveResponse,
    responses=problems(404, 409, 413, 415, 422, 503),
    summary="Search a gallery with vectors, text, images or sound",
    openapi_extra=form_body("RetrieveRequest"),
)
async def retrieve_by_vectors(
    body: Annotated[RetrieveRequest, Body(openapi_examples=examples.RETRIEVE)], served: ServedDep
) -> Response:
    """Translate the query `vectors` (or one `vector`, or the stored items `ids` of the `from` gallery) from
    `from` to `to` (best or pinned route) and return the `k` nearest items of the `to` gallery per query,
    optionally only those whose payload matches `where`. Instead of vectors, raw `text`, `image` or `audio`
    (base64, or multipart/form-data uploads) is embedded first by the `from` modality's encoder."""
    limits = served.settings
    check_k(body.k, limits.max_k)
    if body.ids is not None:  # bounded before any lookup (ids are hashed byte by byte to be found)
        if len(body.ids) > limits.max_batch:
            raise BatchTooLarge(got=len(body.ids), limit=limits.max_batch)
        check_ids(body.ids, limits.max_id_bytes, limits.max_request_id_bytes)
    check_where_values(body.where, limits.max_where_values, limits.max_where_value_bytes)
    served.bundle.graph.require(body.source)
    gallery = served.bundle.gallery(body.target)
    route = served.bundle.graph.resolve(body.source, body.target, body.path)
    values = served.bundle.modalities[body.source].dim * len(body.ids) if body.ids else 0
    if not has_raw(body) and inline(served, route, gallery, values or count_values(body.vectors, body.vector)):
        content = search_vectors(served, body)
    else:
        content = await run_in_threadpool(search_vectors, served, body)
    return Response(content, media_type="application/json")
