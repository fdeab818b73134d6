"""Retrieval: translate queries along a route, then search the target gallery as the route's strategy says.

The one implementation every caller uses: the HTTP routes, the CLI, evaluation and the benches. For a route
from → … → pivot → to, ``chain`` translates all the way and searches the target gallery; ``pivot`` stops at
the pivot and searches the target's items translated there (a pivot gallery, with CSLS where the bundle
chose it); ``fused`` does both and ranks the union (``service/engine/strategy.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from latent_bridge.service.bundle.loader import Bundle
from latent_bridge.service.bundle.manifest import RetrievalStrategy
from latent_bridge.service.engine.graph import Route
from latent_bridge.service.engine.strategy import POOL, Plan, csls_pool, fuse_pools, plan
from latent_bridge.service.engine.translate import HopTimer, run_route
from latent_bridge.service.galleries.backend import GalleryBackend, Hit, Matrix, Pool, SearchOptions, complete
from latent_bridge.service.galleries.faiss_gallery import Gallery

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
    else:  # ranked as arrays (``Pool``); hits are built only for the k kept
        pivoted = bundle.pivots[route.path[-1], route.path[-2]]
        means = bundle.hubness.get(route.path) if how.hubness == "csls" else None
        fused = how.strategy == "fused"
        pool = max(k, POOL) if fused or means is not None else k
        by_row = fused and isinstance(gallery, Gallery) and pivoted.table.same_rows(gallery.table)
        in_pivot = pivoted.pools(y, pool, options, ids=fused and not by_row)
        if means is not None:  # each candidate carries its base row: CSLS terms are read there, no id lookups
            centre = float(means.mean())
            in_pivot = [csls_pool(p, means, centre) for p in in_pivot]
        if not fused:
            results = complete([p.take(np.arange(min(k, len(p)))) for p in in_pivot], pivoted.table.records)
        else:
            tail = bundle.graph.along(list(route.path[-2:]), route.path[-2], route.path[-1])
            chained = run_route(bundle.translators, tail, y, bundle.l2_inputs, hop)
            results = fused_hits(gallery, chained, pool, options, in_pivot, pivoted, k, by_row)
    if searched is not None:
        searched(gallery.modality, time.perf_counter() - started)
    return results


def fused_hits(
    gallery: GalleryBackend, chained: Matrix, pool: int, options: SearchOptions | None, in_pivot: list[Pool],
    pivoted: Gallery, k: int, by_row: bool = False,
) -> list[list[Hit]]:
    """The ``k`` best of each query's two pools fused (``fuse_pools``), their records read in one call per table
    (``by_row``: both galleries' tables hold the same records in the same rows; one call)."""
    if isinstance(gallery, Gallery):
        in_chain, records = gallery.pools(chained, pool, options, ids=not by_row), gallery.table.records
    else:  # a backend without pools: its hits, whole
        in_chain, records = [Pool.of_hits(hits) for hits in gallery.search(chained, pool, options)], None
    picked = [fuse_pools(c, p, k, by_row) for c, p in zip(in_chain, in_pivot, strict=True)]
    if by_row:  # one file holds both galleries' records: read them once
        done = complete([c for c, _, _ in picked] + [p for _, p, _ in picked], records, keep_rows=False)
        from_c, from_p = done[: len(picked)], done[len(picked) :]
    else:
        from_c = complete([c for c, _, _ in picked], records, keep_rows=False)
        from_p = complete([p for _, p, _ in picked], pivoted.table.records, keep_rows=False)
    results = []
    for hits_c, hits_p, (_, _, order) in zip(from_c, from_p, picked, strict=True):
        ic, ip = iter(hits_c), iter(hits_p)
        results.append([next(ic) if chain else next(ip) for chain in order])
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
