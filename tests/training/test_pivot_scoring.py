"""Training scores each retrieval strategy the way the server ranks: the pooled, CSLS-adjusted and fused
score matrices of ``training/bundling/pivots.py`` hold exactly the candidates and scores that the service's
``fuse`` and ``reduce_hubness`` produce, query by query."""

from __future__ import annotations

import numpy as np
import pytest
from latent_bridge.service.engine.scoring import fused, pooled
from latent_bridge.service.engine.strategy import POOL, fuse, reduce_hubness


def service_pool(row: np.ndarray) -> list[tuple[int, float]]:
    """The ``POOL`` best items of one query, as a gallery search returns them."""
    return [(int(i), float(row[i])) for i in np.argsort(-row, kind="stable")[:POOL]]


@pytest.mark.parametrize("csls", [False, True])
def test_fused_pools_hold_the_services_candidates_and_scores(csls: bool) -> None:
    rng = np.random.default_rng(0)
    chain, pivot = rng.standard_normal((2, 30, 3 * POOL))  # more items than a pool: some fall out of both
    means = rng.random(3 * POOL).astype(np.float32) if csls else None
    got = fused(pooled(chain), pooled(pivot, means))
    for q in range(len(chain)):
        in_pivot = service_pool(pivot[q])
        if means is not None:
            in_pivot = reduce_hubness(in_pivot, lambda i: float(means[i]), float(means.mean()))  # noqa: B023
        want = dict(fuse(service_pool(chain[q]), in_pivot))
        kept = np.flatnonzero(np.isfinite(got[q]))
        assert set(kept.tolist()) == set(want) and len(want) < chain.shape[1]
        assert np.allclose(got[q, kept], [want[int(i)] for i in kept], atol=1e-6)
