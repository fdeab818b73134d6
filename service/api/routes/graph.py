"""GET /graph, GET /route and GET /modalities: the modality graph, the routes through it and its nodes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from latent_bridge.service.api import examples
from latent_bridge.service.api.deps import BundleDep, SettingsDep
from latent_bridge.service.api.responses import problems
from latent_bridge.service.api.routes.galleries import gallery_info
from latent_bridge.service.api.schemas import (
    GraphEdge,
    GraphResponse,
    HopInfo,
    ModalitiesResponse,
    ModalityInfo,
    RouteInfo,
    RouteResponse,
    StrategyInfo,
)
from latent_bridge.service.bundle.loader import Bundle
from latent_bridge.service.engine.graph import Route
from latent_bridge.service.engine.strategy import pivot_unavailable, plan
from starlette.concurrency import run_in_threadpool

router = APIRouter(tags=["graph"])


def modality_infos(bundle: Bundle) -> list[ModalityInfo]:
    infos = []
    for m in bundle.manifest.modalities:
        gallery = bundle.galleries.get(m.name)
        infos.append(
            ModalityInfo(
                name=m.name,
                dim=m.dim,
                normalization=m.normalization,
                description=m.description,
                gallery=None if gallery is None else gallery_info(gallery),
                encoder=bundle.encoders[m.name].spec.input if m.name in bundle.encoders else None,
            )
        )
    return infos


def route_info(route: Route) -> RouteInfo:
    return RouteInfo(
        path=list(route.path),
        hops=[
            HopInfo.model_validate({"from": h.source, "to": h.target, "kind": h.kind, "fidelity": h.fidelity})
            for h in route.hops
        ],
        fidelity=route.fidelity,
        cost=route.cost,
    )


def strategy_info(bundle: Bundle, route: Route) -> StrategyInfo:
    """How a retrieval along ``route`` searches now, what the bundle chose, and what may be pinned."""
    chosen = bundle.strategies.get(route.path)
    scores = dict(chosen.scores) if chosen else {}
    gallery = bundle.galleries.get(route.path[-1])
    if gallery is None:
        note = f"modality {route.path[-1]!r} has no gallery"
        return StrategyInfo(strategy="chain", chosen=chosen.strategy if chosen else None, pivot=None,
                            available=[], note=note, scores=scores)
    how = plan(route, bundle.strategies, bundle.pivots, gallery)
    reason = pivot_unavailable(route, bundle.pivots, gallery)
    return StrategyInfo(
        strategy=how.strategy,
        chosen=chosen.strategy if chosen else None,
        pivot=route.path[-2] if reason is None else None,
        available=["chain"] if reason is not None else ["chain", "pivot", "fused"],
        note=how.note or (reason if len(route.path) > 1 else None),
        hubness=chosen.hubness if chosen else "none",
        scores=scores,
    )


@router.get(
    "/graph", response_model=GraphResponse, responses=problems(503), summary="The modality graph"
)
async def get_graph(bundle: BundleDep) -> GraphResponse:
    """Nodes (modalities) and directed edges (translators) with their kind, held-out metrics and
    routing cost."""
    graph = bundle.graph
    edges = [
        GraphEdge(
            source=a,
            target=b,
            kind=data["spec"].kind,
            fidelity=data["fidelity"],
            cost=data["cost"],
            metrics=data["spec"].metrics,
        )
        for a, b, data in sorted(graph.graph.edges(data=True))
    ]
    return GraphResponse(
        bundle=bundle.name,
        criterion=graph.criterion,
        nodes=modality_infos(bundle),
        edges=edges,
        components=graph.components(),
    )


@router.get(
    "/route",
    response_model=RouteResponse,
    response_model_by_alias=True,
    responses=problems(404, 409, 422, 503),
    summary="Explain the route between two modalities",
)
async def get_route(
    bundle: BundleDep,
    settings: SettingsDep,
    source: Annotated[
        str, Query(alias="from", description="Source modality.", openapi_examples=examples.param("audio"))
    ],
    target: Annotated[
        str, Query(alias="to", description="Target modality.", openapi_examples=examples.param("image"))
    ],
    alternatives: Annotated[
        int,
        Query(
            ge=0,
            le=100,
            description="How many next-best routes to list (at most the server's max_alternatives).",
        ),
    ] = 3,
) -> RouteResponse:
    """The path that preserves the most (lowest total `-log(fidelity)`), its per-hop fidelity, the estimate
    for the whole path, the next best simple paths, and how a retrieval along it searches (`strategy`:
    chained into the target space, in a pivot's space, or both fused, with the cross-validated scores)."""
    best = bundle.graph.best(source, target)
    ranked = bundle.graph.ranked(source, target, 1 + min(alternatives, settings.max_alternatives))
    others = [r for r in ranked if r.path != best.path][: min(alternatives, settings.max_alternatives)]
    return RouteResponse.model_validate(
        {
            "from": source,
            "to": target,
            "criterion": bundle.graph.criterion,
            "best": route_info(best),
            "alternatives": [route_info(r) for r in others],
            "strategy": strategy_info(bundle, best),
        }
    )


@router.get(
    "/modalities",
    response_model=ModalitiesResponse,
    responses=problems(503),
    summary="List the modalities of the bundle",
)
async def list_modalities(bundle: BundleDep) -> ModalitiesResponse:
    """Every modality with its dimension, input normalisation and retrieval gallery (if any)."""
    infos = await run_in_threadpool(modality_infos, bundle)  # a Milvus gallery's count is a network call
    return ModalitiesResponse(bundle=bundle.name, modalities=infos)
