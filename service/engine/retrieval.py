"""Retrieval: translate queries along a route, then search the target gallery as the route's strategy says.

The one implementation every caller uses: the HTTP routes, the CLI, evaluation and the benches. For a route
from → … → pivot → to, ``chain`` translates all the way and searches the target gallery; ``pivot`` stops at
the pivot and searches the target's items translated there (a pivot gallery, with CSLS where the bundle
chose it); ``fused`` does both and ranks the union (``service/engine/strategy.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from latent_bridge.service.bundle.loader import Bundle
from latent_bridge.service.bundle.manifest import RetrievalStrategy
from latent_bridge.service.engine.graph import Route
from latent_bridge.service.engine.strategy import POOL, Plan, csls_hits, fuse_hits, plan
from latent_bridge.service.engine.translate import HopTimer, run_route
from latent_bridge.service.galleries.backend import GalleryBackend, Hit, Matrix, SearchOptions

SearchTimer = Callable[[str, float], None]  # (gallery modality, seconds)


def search_planned(
    bundle: Bundle, route: Route, x: Matrix, gallery: GalleryBackend, k: int, options: SearchOptions | None,
    how: Plan, hop: HopTimer | None = None, searched: SearchTimer | None = None,
) -> list[list[Hit]]:
    """Translate the queries and search as ``how`` says: chained, in the pivot's space, or both fused."""
    hops = len(route.path) - 1 if how.strategy == "chain" else len(route.path) - 2
    head = bundle.graph.along(list(route.path[: hops + 1]), route.path[0], route.path[hops])
    y = run_route(bundle.translators, head, x, bundle.l2_inputs, hop)
    started = time.perf_counter()
    if how.strategy == "chain":
        results = gallery.search(y, k, options)
    else:
        pivoted = bundle.pivots[route.path[-1], route.path[-2]]
        means = bundle.hubness.get(route.path) if how.hubness == "csls" else None
        pool = max(k, POOL) if how.strategy == "fused" or means is not None else k
        in_pivot = pivoted.search(y, pool, options)
        if means is not None:  # each hit carries its base row: CSLS terms are read there, no id lookups
            centre = float(means.mean())
            in_pivot = [csls_hits(hits, means, centre) for hits in in_pivot]
        if how.strategy == "pivot":
            results = [hits[:k] for hits in in_pivot]
        else:
            tail = bundle.graph.along(list(route.path[-2:]), route.path[-2], route.path[-1])
            chained = run_route(bundle.translators, tail, y, bundle.l2_inputs, hop)
            both = zip(gallery.search(chained, pool, options), in_pivot, strict=True)
            results = [fuse_hits(c, p, k) for c, p in both]
    if searched is not None:
        searched(gallery.modality, time.perf_counter() - started)
    return results


def retrieve(
    bundle: Bundle, route: Route, x: Matrix, k: int, options: SearchOptions | None = None,
    strategy: RetrievalStrategy | None = None, hop: HopTimer | None = None, searched: SearchTimer | None = None,
) -> tuple[Plan, list[list[Hit]]]:
    """The ``k`` nearest items of the route's target gallery for each query row of ``x`` (in the route's
    source space), searched by the pinned ``strategy`` or else the bundle's choice for the route; with the
    plan that was followed (strategy, pivot, hubness, and why it fell back to chain, if it did)."""
    gallery = bundle.gallery(route.path[-1])
    how = plan(route, bundle.strategies, bundle.pivots, gallery, strategy)
    return how, search_planned(bundle, route, x, gallery, k, options, how, hop, searched)
