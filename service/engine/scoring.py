"""Scoring as the galleries rank, over whole score matrices: what training's strategy choice, evaluation and
the benches measure with, so that what is measured is what is served.

Every gallery ranks by cosine after subtracting its items' mean (``centred_unit``). A query's rank is that
of its best-placed true partner; ties and non-finite scores count against the model. ``pooled``, ``fused``
and ``csls`` are the matrix forms of the served search's candidate pool, fusion and hubness reduction
(``service/engine/strategy.py`` runs the same rules over one request's hits).
"""

from __future__ import annotations

import faiss
import numpy as np

POOL = 100  # candidates fetched from each space for ``fused`` and CSLS, whatever k (at least k)
CSLS_K = 10  # neighbours behind each item's hubness term
CHUNK_ROWS = 65_536  # items searched at once for their neighbourhood means


def centred_unit(x: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Rows minus ``mean`` (their own mean when None), scaled to unit norm (a zero row stays zero)."""
    c = x - (x.mean(axis=0) if mean is None else mean)
    out: np.ndarray = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return out


def centred_cosines(queries: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Cosine after the items' centring, queries × items, as a gallery of ``items`` scores (non-finite: worst)."""
    mean = items.mean(axis=0)
    with np.errstate(invalid="ignore", over="ignore"):
        s = centred_unit(queries, mean) @ centred_unit(items, mean).T
    return np.where(np.isfinite(s), s, -np.inf)


def partner_ranks(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of each query's best true partner (``relevant``: queries × items); ties count against,
    a query with no finite partner score ranks last."""
    best = np.where(relevant, scores, -np.inf).max(axis=1)
    above = ((scores >= best[:, None]) & ~relevant).sum(axis=1)
    found: np.ndarray = np.where(np.isfinite(best), 1 + above, scores.shape[1])
    return found


def ranks(queries: np.ndarray, q_samples: np.ndarray, gallery: np.ndarray, g_samples: np.ndarray) -> np.ndarray:
    """Rank of the first true partner (same sample) of each query in the centred-cosine gallery ordering.

    A query whose scores are not all finite, or whose translation is zero after centring, ranks last (a
    constant or NaN map scores R@1 = 0, never 1).
    """
    relevant = q_samples[:, None] == g_samples[None, :]
    if not relevant.any(axis=1).all():
        raise ValueError("every query needs at least one partner in the gallery")
    centred = queries - gallery.mean(axis=0)
    norms = np.linalg.norm(centred, axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        scores = (centred / norms[:, None]) @ centred_unit(gallery).T
    broken = ~np.isfinite(scores).all(axis=1) | (norms <= 1e-12 * max(1.0, float(np.abs(gallery).max())))
    return np.where(broken, len(gallery), partner_ranks(np.nan_to_num(scores, nan=-np.inf), relevant))


def csls(scores: np.ndarray, terms: np.ndarray, centre: float) -> np.ndarray:
    """CSLS: each score lowered by half its item's neighbourhood term less the gallery's mean term (the
    cosine keeps its scale). Ranks as 2·cos − r_item does."""
    return scores - (terms - centre) / 2


def pooled(scores: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
    """Per query, the ``POOL`` best items by cosine, as the server fetches them, CSLS-adjusted by ``means``;
    every other item -inf (not fetched)."""
    pool = min(POOL, scores.shape[1])
    rows = np.arange(len(scores))[:, None]
    top = np.argsort(-scores, axis=1, kind="stable")[:, :pool]
    kept = scores[rows, top]
    if means is not None:
        kept = csls(kept, means[top], float(means.mean()))
    out = np.full(scores.shape, -np.inf)
    out[rows, top] = kept
    return out


def fused(chain: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """Two candidate pools (-inf: not fetched) fused: an item in either scores the mean of its two scores, a
    pool it is missing from counting that pool's lowest score; items in neither stay -inf."""
    found = []
    for pool in (chain, pivot):
        fetched = np.isfinite(pool)
        floor = np.where(fetched, pool, np.inf).min(axis=1, keepdims=True)
        floor[~np.isfinite(floor)] = -np.inf  # nothing fetched (a non-finite query): it ranks last, never first
        found.append((np.where(fetched, pool, floor), fetched))
    (c, in_c), (p, in_p) = found
    with np.errstate(invalid="ignore"):
        return np.where(in_c | in_p, (c + p) / 2, -np.inf)


def neighbourhood_means(items: np.ndarray, bank: np.ndarray, k: int = CSLS_K) -> np.ndarray:
    """Each item's mean cosine to its ``k`` nearest ``bank`` rows (translated queries), both centred by the
    items' mean as the gallery scores them: CSLS's hubness term, one float32 per item."""
    mean = items.mean(axis=0)
    index = faiss.IndexFlatIP(items.shape[1])
    index.add(np.ascontiguousarray(centred_unit(bank, mean), np.float32))
    found = []
    for start in range(0, len(items), CHUNK_ROWS):
        block = np.ascontiguousarray(centred_unit(items[start : start + CHUNK_ROWS], mean), np.float32)
        sims, _ = index.search(block, min(k, len(bank)))
        found.append(sims.mean(axis=1))
    return np.concatenate(found).astype(np.float32)
