"""Retrieval strategies: chain the query into the target space, search in a pivot's space, or fuse both.

For a route from → … → pivot → to, ``chain`` translates the query all the way and searches the target
gallery; ``pivot`` translates the query only to the pivot and searches the target's items translated into
the pivot's space once, at bundle time (a pivot gallery, ``training/bundling/pivots.py``); ``fused`` searches both
and ranks the union of the two candidate pools by the mean of the two centred cosines. On a direct edge
from → to the pivot is ``from`` itself: the query is searched untranslated among the target's items
translated by the reverse edge. Training chooses per edge and route on cross-validated R@1
(``Manifest.routes``); a request may pin one.

Pivot galleries follow their gallery's run-time writes (``Gallery.mirror_into``): a written item is
translated into each pivot's space as it is written (and again when the log is replayed), a deleted one
leaves them. CSLS leaves written items unadjusted (their neighbourhood term was never computed). A gallery
served by Milvus has no in-process pivot galleries: its routes chain and say so, and a request that pins
``pivot`` or ``fused`` is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from latent_bridge.service.bundle.manifest import RetrievalStrategy, RouteStrategySpec
from latent_bridge.service.engine.graph import Route
from latent_bridge.service.engine.scoring import POOL, csls
from latent_bridge.service.errors import ServiceError
from latent_bridge.service.galleries.backend import GalleryBackend, Hit, Pool

__all__ = [
    "POOL", "Plan", "StrategyUnavailable", "csls_hits", "csls_pool", "fuse", "fuse_hits", "fuse_pools", "plan",
    "reduce_hubness",
]
K = TypeVar("K", bound=Hashable)


class StrategyUnavailable(ServiceError):
    status, slug, title = 409, "strategy-unavailable", "Retrieval strategy unavailable for this route"


@dataclass(frozen=True)
class Plan:
    """How one request searches: the strategy, its pivot, the bundle's choice, and why it fell back."""

    strategy: RetrievalStrategy
    pivot: str | None
    chosen: RouteStrategySpec | None
    note: str | None = None

    @property
    def hubness(self) -> str:
        """Hubness reduction of the pivot-space scores: the route's choice, for pivot and fused."""
        return self.chosen.hubness if self.chosen and self.strategy != "chain" else "none"


def pivot_unavailable(
    route: Route, pivots: Mapping[tuple[str, str], GalleryBackend], target: GalleryBackend
) -> str | None:
    """Why ``route`` cannot search in a pivot's space, or None when it can."""
    if len(route.path) < 2:
        return "a search within one modality has no pivot"
    to, pivot = route.path[-1], route.path[-2]
    if (to, pivot) not in pivots:
        return f"the bundle has no pivot gallery of {to!r} items in {pivot!r} space"
    if not target.in_process:
        return (f"the {to!r} gallery is served by {type(target).__name__}, out of process; pivot galleries are "
                "in-process FAISS indexes of the bundle's items, so the query is chained")
    return None


def plan(
    route: Route,
    choices: Mapping[tuple[str, ...], RouteStrategySpec],
    pivots: Mapping[tuple[str, str], GalleryBackend],
    target: GalleryBackend,
    pinned: RetrievalStrategy | None = None,
) -> Plan:
    """The strategy for ``route``: the pinned one (refused when it cannot run), else the bundle's choice for
    this path (chain when none, or when pivot galleries are unavailable)."""
    chosen = choices.get(route.path)
    reason = pivot_unavailable(route, pivots, target)
    wanted = pinned or (chosen.strategy if chosen else "chain")
    if wanted == "chain":
        return Plan("chain", None, chosen)
    if reason is not None:
        if pinned is not None:
            raise StrategyUnavailable(f"strategy {pinned!r} is unavailable for route {list(route.path)}: {reason}",
                                      route=list(route.path))
        return Plan("chain", None, chosen, reason)
    return Plan(wanted, route.path[-2], chosen)


def fuse(chain: Sequence[tuple[K, float]], pivot: Sequence[tuple[K, float]]) -> list[tuple[K, float]]:
    """The union of two candidate pools ranked by the mean of both scores, best first; an item missing from
    one pool gets that pool's lowest score there (it scored at most that). One request's form of
    ``scoring.fused`` (tests/training/test_pivot_scoring.py holds the two equal)."""
    floor_c = min((s for _, s in chain), default=0.0)
    floor_p = min((s for _, s in pivot), default=0.0)
    c, p = dict(chain), dict(pivot)
    fused = [(key, (c.get(key, floor_c) + p.get(key, floor_p)) / 2) for key in dict.fromkeys([*c, *p])]
    return sorted(fused, key=lambda kv: -kv[1])


def reduce_hubness(pool: Sequence[tuple[K, float]], means: Callable[[K], float], centre: float
                   ) -> list[tuple[K, float]]:
    """CSLS (``scoring.csls``) over one request's candidate pool, best first."""
    keys = [key for key, _ in pool]
    scores = csls(np.array([s for _, s in pool], np.float64), np.array([means(k) for k in keys], np.float64), centre)
    return sorted(zip(keys, scores.tolist(), strict=True), key=lambda kv: -kv[1])


def csls_hits(hits: list[Hit], means: np.ndarray, centre: float | None = None) -> list[Hit]:
    """``reduce_hubness`` over gallery hits, each item's term read at its base row (``Hit.row``, returned by
    the search itself: no lookup by id); an item written at run time (row None) is left unadjusted (its term
    is taken as the gallery's mean). ``centre``: ``means.mean()``, when the caller has it already."""
    mid = float(means.mean()) if centre is None else centre
    terms = [mid if h.row is None else float(means[h.row]) for h in hits]
    ranked = reduce_hubness([(i, h.score) for i, h in enumerate(hits)], terms.__getitem__, mid)
    return [Hit(hits[i].id, score, hits[i].sample, hits[i].payload, hits[i].row) for i, score in ranked]


def csls_pool(pool: Pool, means: np.ndarray, centre: float) -> Pool:
    """``csls_hits`` over a candidate pool's arrays (no object per candidate): the same float64 arithmetic and
    stable order, so the same scores and ranking; a run-time write (row < 0) keeps the mean term."""
    terms = np.full(len(pool), centre, np.float64)
    base = pool.rows >= 0
    terms[base] = means[pool.rows[base]]
    scores = csls(pool.scores, terms, centre)
    order = np.argsort(-scores, kind="stable")
    return pool.take(order, scores[order])


def _union_slots(chain: Pool, pivot: Pool, by_row: bool) -> tuple[np.ndarray, np.ndarray]:
    """Where each pivot candidate sits in the union (the chain pool's candidates first, then the pivot pool's
    others in their order), and which pivot candidates are those others. Base rows are matched as arrays."""
    m = len(chain)
    if by_row and m and (chain.rows >= 0).all() and (pivot.rows >= 0).all():
        by_rank = np.argsort(chain.rows, kind="stable")
        at = np.minimum(np.searchsorted(chain.rows[by_rank], pivot.rows), m - 1)
        shared = chain.rows[by_rank][at] == pivot.rows
        others = ~shared
        return np.where(shared, by_rank[at], m + np.cumsum(others) - 1), np.flatnonzero(others)
    chain_keys, pivot_keys = chain.keys(by_row), pivot.keys(by_row)
    in_chain = {item: i for i, item in enumerate(chain_keys)}
    only = [j for j, item in enumerate(pivot_keys) if item not in in_chain]
    slot = in_chain | {pivot_keys[j]: m + n for n, j in enumerate(only)}
    return np.array([slot[item] for item in pivot_keys], np.intp), np.array(only, np.intp)


def fuse_pools(chain: Pool, pivot: Pool, k: int, by_row: bool = False) -> tuple[Pool, Pool, list[bool]]:
    """``fuse_hits`` over two pools' arrays: the ``k`` best of the union by fused score, as the chain pool's
    candidates and the pivot pool's (an item in both is the chain's, as ``fuse_hits`` keeps it) and, in rank
    order, whether each comes from the chain pool. Items are matched by id, or by base row (``Pool.keys``)."""
    m = len(chain)
    floor_c = float(chain.scores.min()) if m else 0.0
    floor_p = float(pivot.scores.min()) if len(pivot) else 0.0
    slot, only_pivot = _union_slots(chain, pivot, by_row)
    c = np.full(m + len(only_pivot), floor_c, np.float64)
    c[:m] = chain.scores
    p = np.full(m + len(only_pivot), floor_p, np.float64)
    p[slot] = pivot.scores
    fused = (c + p) / 2
    best = np.argsort(-fused, kind="stable")[:k]
    from_chain = best < m
    picks_p = only_pivot[best[~from_chain] - m]
    return (chain.take(best[from_chain], fused[best[from_chain]]),
            pivot.take(picks_p, fused[best[~from_chain]]), from_chain.tolist())


def fuse_hits(chain: list[Hit], pivot: list[Hit], k: int) -> list[Hit]:
    """``fuse`` over gallery hits; the hit keeps its payload, its score becomes the fused one."""
    by_id = {h.id: h for h in [*pivot, *chain]}
    ranked = fuse([(h.id, h.score) for h in chain], [(h.id, h.score) for h in pivot])[:k]
    return [Hit(item, score, by_id[item].sample, by_id[item].payload) for item, score in ranked]
