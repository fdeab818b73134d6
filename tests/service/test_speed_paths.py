"""The array paths of pooled retrieval (``Pool``, ``csls_pool``, ``fuse_pools``) answer exactly as the per-hit
rules (``csls_hits``, ``fuse_hits``) they replace on the hot path: same ids, scores, order, samples and
payloads, ties and run-time writes included."""

from __future__ import annotations

import numpy as np
import pytest
from latent_bridge.service.engine.strategy import csls_hits, csls_pool, fuse_hits, fuse_pools
from latent_bridge.service.galleries.backend import Hit, Pool, complete


def records(rows: list[int] | tuple[int, ...]) -> list[tuple[str, str, dict[str, object]]]:
    return [(f"item-{r}", f"s{r}", {"caption": f"c{r}", "row": r}) for r in rows]


def pool_and_hits(rng: np.random.Generator, n: int, size: int, written: int) -> tuple[Pool, list[Hit]]:
    """A pool of ``n`` base rows (scores rounded so that ties occur) plus ``written`` run-time items, best
    first, and the same candidates as the hits a gallery's search returns."""
    rows = rng.choice(size, n, replace=False).astype(np.int64)
    slots = np.arange(written, dtype=np.int64)
    scores = np.round(rng.uniform(-1, 1, n + written), 2).astype(np.float32).astype(np.float64)
    all_rows = np.concatenate([rows, -1 - slots])
    order = np.argsort(-scores, kind="stable")
    known = {int(s): (f"new-{s}", "", {"caption": f"w{s}", "row": None}) for s in slots}
    pool = Pool(scores[order], all_rows[order], None, known)
    (hits,) = complete([pool], records)
    ids = [h.id for h in hits]
    return Pool(pool.scores, pool.rows, ids, known), hits


def as_tuples(hits: list[Hit]) -> list[tuple[object, ...]]:
    return [(h.id, h.score, h.sample, h.payload, h.row) for h in hits]


@pytest.mark.parametrize("written", [0, 3])
def test_csls_pool_ranks_and_scores_as_csls_hits(written: int) -> None:
    rng = np.random.default_rng(written)
    means = rng.uniform(0, 0.5, 300).astype(np.float32)
    centre = float(means.mean())
    for _ in range(20):
        pool, hits = pool_and_hits(rng, 100, 300, written)
        (pooled,) = complete([csls_pool(pool, means, centre)], records)
        assert as_tuples(pooled) == as_tuples(csls_hits(hits, means, centre))


@pytest.mark.parametrize(("written", "by_row"), [(0, False), (0, True), (3, False), (3, True)])
def test_fuse_pools_ranks_and_scores_as_fuse_hits(written: int, by_row: bool) -> None:
    rng = np.random.default_rng(10 + written)
    for k in (1, 10, 150):
        chain, chain_hits = pool_and_hits(rng, 100, 150, written)
        pivot, pivot_hits = pool_and_hits(rng, 100, 150, written)
        from_chain, from_pivot, order = fuse_pools(chain, pivot, k, by_row)
        hits_c, hits_p = (iter(h) for h in complete([from_chain, from_pivot], records, keep_rows=False))
        fused = [next(hits_c) if c else next(hits_p) for c in order]
        assert as_tuples(fused) == as_tuples(fuse_hits(chain_hits, pivot_hits, k))


def test_a_pool_of_ready_hits_completes_to_the_same_hits() -> None:
    hits = [Hit("a", 0.5, "s", {"x": 1}), Hit("b", 0.25, "", {})]
    (again,) = complete([Pool.of_hits(hits)], None)
    assert [(h.id, h.score, h.sample, h.payload) for h in again] == [(h.id, h.score, h.sample, h.payload) for h in hits]
