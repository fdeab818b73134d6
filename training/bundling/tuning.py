"""Choose a gallery's index type and tune its search effort by measurement, not by rule of thumb.

``auto`` keeps exact search while a flat scan is cheap, HNSW above that, and IVF-PQ when the HNSW index
would not fit ``memory_budget``. Then the effort knob (efSearch, nprobe) is raised step by step until
recall@10 against exact search reaches the target on held-out queries, measured through the service's
own ``Gallery.search`` (what is measured is what is served), with single-query latency at that value.
"""

from __future__ import annotations

import time

import faiss
import numpy as np
from latent_bridge.service.bundle.manifest import GallerySearch, IndexType
from latent_bridge.service.galleries.backend import GalleryBackend, SearchOptions
from latent_bridge.service.galleries.faiss_gallery import Gallery
from latent_bridge.training.bundling.galleries import CHUNK_ROWS, HNSW_M, units

AUTO_FLAT_MAX = 50_000
EF_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
NPROBE_STEPS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)
IVF_PQ_RERANK = 8
RERANK_STEPS = (16, 64)  # IVF-PQ candidates per wanted result re-scored exactly from the raw rows
K = 10
LATENCY_QUERIES = 200


def hnsw_bytes(n: int, d: int) -> int:
    return n * (4 * d + 2 * 4 * HNSW_M) + n * 4 * HNSW_M // 2


def choose_index_type(requested: str, n: int, d: int, memory_budget: int | None) -> IndexType:
    if requested != "auto":
        return requested  # type: ignore[return-value]
    if n <= AUTO_FLAT_MAX:
        return "flat"
    if memory_budget is not None and hnsw_bytes(n, d) > memory_budget:
        return "ivf-pq"
    return "hnsw"


def exact_neighbours(vectors: np.ndarray, mean: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """Rows of the exact top-``k`` centred cosines, scanning the raw rows chunk by chunk."""
    q = units(queries, mean)
    heap = faiss.ResultHeap(len(q), k, keep_max=True)
    for start in range(0, len(vectors), CHUNK_ROWS):
        block = units(vectors[start : start + CHUNK_ROWS], mean)
        scores = q @ block.T
        take = min(k, block.shape[0])
        top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        heap.add_result(np.take_along_axis(scores, top, axis=1), (top + start).astype(np.int64))
    heap.finalize()
    return heap.I


def recall_at_k(gallery: GalleryBackend, queries: np.ndarray, truth: list[set[str]], effort: int | None) -> float:
    results = gallery.search(queries, K, SearchOptions(effort=effort))
    found = sum(len({h.id for h in hits} & expected) for hits, expected in zip(results, truth, strict=True))
    return found / max(1, sum(len(t) for t in truth))


def latency_ms(gallery: GalleryBackend, queries: np.ndarray, effort: int | None) -> tuple[float, float]:
    times = []
    for row in queries[:LATENCY_QUERIES]:
        started = time.perf_counter()
        gallery.search(row[None, :], K, SearchOptions(effort=effort))
        times.append(time.perf_counter() - started)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def search_limits(index_type: IndexType, nlist: int) -> GallerySearch:
    """The effort knob of an index type, open wide for tuning (``tune`` narrows it)."""
    if index_type == "hnsw":
        return GallerySearch(parameter="efSearch", value=1, limit=EF_STEPS[-1])
    if index_type in ("ivf", "ivf-pq"):
        return GallerySearch(
            parameter="nprobe", value=1, limit=nlist, rerank=IVF_PQ_RERANK if index_type == "ivf-pq" else 1
        )
    return GallerySearch()


def _sweep(gallery: GalleryBackend, queries: np.ndarray, truth: list[set[str]], steps: tuple[int | None, ...],
           target: float) -> tuple[int | None, float]:
    """The smallest step whose recall reaches ``target``, or the last one, with its recall."""
    chosen, recall = steps[-1], 0.0
    for step in steps:
        recall = recall_at_k(gallery, queries, truth, step)
        chosen = step
        if recall >= target:
            break
    return chosen, recall


def exact_truth(gallery: Gallery, queries: np.ndarray) -> list[set[str]]:
    """The ids of each query's exact top 10 over the gallery's raw rows."""
    mean = gallery.mean if gallery.mean is not None else np.zeros(gallery.dim, np.float32)
    assert gallery.vectors is not None
    rows = exact_neighbours(gallery.vectors, mean, queries)
    return [{h[0] for h in gallery.table.records([int(r) for r in row if r >= 0])} for row in rows]


def tune_elsewhere(engine: GalleryBackend, exact: Gallery, queries: np.ndarray, source: str,
                   target: float) -> GallerySearch:
    """Tune the effort of another engine holding ``exact``'s rows (a Milvus collection, which trains its own
    IVF lists) against exact search over the rows; ``engine.spec.search`` must be open wide."""
    wide = engine.spec.search
    if wide.parameter is None:
        return wide
    steps: tuple[int | None, ...] = EF_STEPS
    if wide.parameter == "nprobe":
        steps = tuple(s for s in NPROBE_STEPS if s <= (wide.limit or 1)) or (1,)
    chosen, recall = _sweep(engine, queries, exact_truth(exact, queries), steps, target)
    p50, p99 = latency_ms(engine, queries, chosen)
    return wide.model_copy(update={
        "value": chosen, "limit": wide.limit, "target_recall": target, "recall_at_10": round(recall, 4),
        "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "queries": len(queries), "query_source": source,
    })


def tune(gallery: Gallery, queries: np.ndarray, source: str, target: float) -> GallerySearch:
    """The smallest effort whose recall@10 reaches ``target`` (the largest tried if none does). IVF-PQ also
    tries how many candidates per result to re-score exactly, and keeps the fastest setting that reaches it."""
    open_wide = gallery.spec.search
    if open_wide.parameter is None:  # exact search: recall 1 by definition, only latency to measure
        p50, p99 = latency_ms(gallery, queries, None)
        return open_wide.model_copy(
            update={"recall_at_10": 1.0, "p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
                    "queries": len(queries[:LATENCY_QUERIES]), "query_source": source}
        )
    truth = exact_truth(gallery, queries)
    steps: tuple[int | None, ...] = EF_STEPS
    if open_wide.parameter == "nprobe":
        steps = tuple(s for s in NPROBE_STEPS if s <= (open_wide.limit or 1)) or (1,)
    reranks = RERANK_STEPS if open_wide.rerank > 1 else (1,)
    tried = []
    for rerank in reranks:
        gallery.spec = gallery.spec.model_copy(update={"search": open_wide.model_copy(update={"rerank": rerank})})
        chosen, recall = _sweep(gallery, queries, truth, steps, target)
        p50, p99 = latency_ms(gallery, queries, chosen)
        tried.append((recall < target, p50 if recall >= target else -recall, rerank, chosen, recall, p50, p99))
    _, _, rerank, chosen, recall, p50, p99 = min(tried)
    widest = max(s or 1 for s in steps)
    limit = None if chosen is None else min(open_wide.limit or chosen, max(4 * chosen, widest // 4))
    return open_wide.model_copy(
        update={
            "value": chosen,
            "limit": limit,
            "rerank": rerank,
            "target_recall": target,
            "recall_at_10": round(recall, 4),
            "p50_ms": round(p50, 3),
            "p99_ms": round(p99, 3),
            "queries": len(queries),
            "query_source": source,
        }
    )
