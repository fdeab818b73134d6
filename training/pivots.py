"""Pivot-space retrieval at bundle time: choose each route's strategy, build the pivot galleries it needs.

For a route from → … → pivot → to, retrieval can chain the query into the target space, search in the
pivot's space (the query to the pivot, the target's items translated to the pivot by the edge to → pivot)
or fuse both (``service/strategy.py``). The choice is made per route on cross-validated R@1: the same
folds as selection, each scored with the translators that fold fitted (never the shipped ones, never a
test split). Pivot galleries are the target gallery's raw rows translated by the shipped edge, written
beside the gallery as an exact index with the same centring as every gallery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import faiss
import numpy as np
from latent_bridge.service.bundle import Bundle
from latent_bridge.service.errors import NoRoute
from latent_bridge.service.manifest import (
    STRATEGIES,
    PivotGallerySpec,
    RetrievalStrategy,
    RouteStrategySpec,
    StrategyScore,
    pivot_files,
)
from latent_bridge.service.strategy import POOL, fuse
from latent_bridge.service.translate import run_route
from latent_bridge.training.datasets.reader import ModalityData, shared_samples
from latent_bridge.training.datasets.splits import Fold
from latent_bridge.training.evaluate import centred_unit, retrieval_summary
from latent_bridge.training.galleries import CHUNK_ROWS, index_with_mean, sha256_file

Run = Callable[[Sequence[str], np.ndarray], np.ndarray]  # translate rows along a path


def _scores(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Cosine after the gallery's centring, as the server's galleries score (non-finite: worst)."""
    g = centred_unit(gallery)
    q = centred_unit(queries, gallery.mean(axis=0))
    with np.errstate(invalid="ignore", over="ignore"):
        s = q @ g.T
    return np.where(np.isfinite(s), s, -np.inf)


def _ranks(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Rank of each query's best true partner; ties count against."""
    best = np.where(relevant, scores, -np.inf).max(axis=1)
    above = ((scores >= best[:, None]) & ~relevant).sum(axis=1)
    return np.where(np.isfinite(best), 1 + above, scores.shape[1])


def _fused_ranks(chain: np.ndarray, pivot: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Ranks under ``fuse`` of the two ``POOL``-best candidate lists, as the server fuses them; a partner in
    neither pool ranks last."""
    pool = min(POOL, chain.shape[1])
    found = []
    for sc, sp, rel in zip(chain, pivot, relevant, strict=True):
        top_c, top_p = np.argsort(-sc)[:pool], np.argsort(-sp)[:pool]
        fused = fuse([(int(i), float(sc[i])) for i in top_c], [(int(i), float(sp[i])) for i in top_p])
        scored = [s for i, s in fused if rel[i]]
        if not scored:
            found.append(len(sc))
            continue
        found.append(1 + sum(1 for i, s in fused if s >= max(scored) and not rel[i]))
    return np.asarray(found)


def score_strategies(path: Sequence[str], a: ModalityData, c: ModalityData, samples: frozenset[str],
                     run: Run) -> dict[str, dict[str, float]]:
    """Retrieval from ``a`` to ``c`` along ``path`` on ``samples``, by each strategy (the gallery: those
    samples' ``c`` rows)."""
    shared = set(samples & shared_samples(a, c))
    qa, gc = a.rows_of(shared), c.rows_of(shared)
    items = c.embeddings[gc]
    relevant = a.samples[qa][:, None] == c.samples[gc][None, :]
    in_pivot = run(path[:-1], a.embeddings[qa])
    chain = _scores(run(path[-2:], in_pivot), items)
    pivot = _scores(in_pivot, run([path[-1], path[-2]], items))
    return {
        "chain": retrieval_summary(_ranks(chain, relevant)),
        "pivot": retrieval_summary(_ranks(pivot, relevant)),
        "fused": retrieval_summary(_fused_ranks(chain, pivot, relevant)),
    }


def _key(strategy: str, s: StrategyScore) -> tuple[float, int, float]:
    """R@1 first; on a tie the simpler strategy (chain, then pivot), then MRR."""
    return (s.r1, -STRATEGIES.index(strategy), s.mrr)  # type: ignore[arg-type, unused-ignore]


def choose(path: Sequence[str], data: Mapping[str, ModalityData], folds: list[Fold],
           runs: list[Run]) -> RouteStrategySpec | None:
    """The strategy of route ``path`` with the best mean R@1 over the folds (``runs[i]``: fold i's
    translators), or None where no fold has a validation sample shared by both ends."""
    a, c = data[path[0]], data[path[-1]]
    scored, n = [], 0
    for fold, run in zip(folds, runs, strict=True):
        if fold.val & shared_samples(a, c):
            scored.append(score_strategies(path, a, c, fold.val, run))
            n += len(a.rows_of(set(fold.val & shared_samples(a, c))))
    if not scored:
        return None
    means: dict[str, StrategyScore] = {s: StrategyScore(**{m: float(np.mean([f[s][m] for f in scored])) for m in ("r1", "r10", "mrr")})
             for s in STRATEGIES}
    best: RetrievalStrategy = max(STRATEGIES, key=lambda s: _key(s, means[s]))
    return RouteStrategySpec(source=path[0], target=path[-1], path=list(path), pivot=path[-2], strategy=best,
                             scores=means, n_queries=n)


FoldMaps = Mapping[tuple[str, str], list[Callable[[np.ndarray], np.ndarray]]]


def fold_runs(maps: FoldMaps, folds: int) -> list[Run]:
    """Per fold, translation along a path by that fold's translators."""
    def runner(i: int) -> Run:
        def run(path: Sequence[str], x: np.ndarray) -> np.ndarray:
            for s, t in zip(path, path[1:], strict=False):
                x = maps[s, t][i](x)
            return x
        return run
    return [runner(i) for i in range(folds)]


def choose_strategies(bundle: Bundle, data: Mapping[str, ModalityData], folds: list[Fold],
                      maps: FoldMaps) -> list[RouteStrategySpec]:
    """A strategy for every routed pair of modalities whose hops (and pivot edge) have fold translators."""
    found = []
    for src in sorted(data):
        for dst in sorted(set(data) & set(bundle.galleries)):
            if src == dst:
                continue
            try:
                path = bundle.graph.best(src, dst).path
            except NoRoute:
                continue
            hops = [*zip(path, path[1:], strict=False), (path[-1], path[-2])]
            if len(path) < 3 or any(h not in maps for h in hops):
                continue
            chosen = choose(path, data, folds, fold_runs(maps, len(folds)))
            if chosen is not None:
                found.append(chosen)
    return found


def build_pivot_gallery(staging: Path, bundle: Bundle, modality: str, pivot: str) -> PivotGallerySpec:
    """``modality``'s gallery translated by the shipped edge ``modality`` → ``pivot``, with the service's
    code, written as an exact index beside it."""
    gallery = bundle.galleries[modality]
    assert gallery.vectors is not None, "training's galleries keep their raw rows"
    route = bundle.graph.along([modality, pivot], modality, pivot)
    files = pivot_files(modality, pivot)
    dim = bundle.modalities[pivot].dim
    out = np.lib.format.open_memmap(staging / files["vectors"], mode="w+", dtype=np.float32,
                                    shape=(gallery.size, dim))
    for start in range(0, gallery.size, CHUNK_ROWS):
        rows = np.ascontiguousarray(gallery.vectors[start : start + CHUNK_ROWS], dtype=np.float32)
        out[start : start + len(rows)] = run_route(bundle.translators, route, rows, bundle.l2_inputs)
    out.flush()
    index = index_with_mean(out, out.mean(axis=0, dtype=np.float64).astype(np.float32), "flat")
    faiss.write_index(index, str(staging / files["index"]))
    del out, index
    spec = next(g for g in bundle.manifest.galleries if g.modality == modality)
    return PivotGallerySpec(
        modality=modality, pivot=pivot, path=[modality, pivot],
        index_file=files["index"], index_sha256=sha256_file(staging / files["index"]),
        vectors_file=files["vectors"], vectors_sha256=sha256_file(staging / files["vectors"]),
        size=gallery.size, items_sha256=spec.ids_sha256,
    )
