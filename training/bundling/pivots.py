"""Pivot-space retrieval at bundle time: choose each route's strategy, build the pivot galleries it needs.

For a route from → … → pivot → to, retrieval can chain the query into the target space, search in the
pivot's space (the query to the pivot, the target's items translated to the pivot by the edge to → pivot)
or fuse both (``service/engine/strategy.py``). A direct edge from → to is a route whose pivot is the query's own
modality: its items are translated into the query's space by the reverse edge, and the query is searched
there untranslated (where the reverse translator is the better one, this beats chaining). The choice
is made per route on cross-validated R@1: the same folds as selection, each scored with the translators
that fold fitted (never the shipped ones, never a test split). Pivot galleries are the target gallery's
raw rows translated by the shipped edge, written beside the gallery as an index of its type with the
same centring as every gallery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from latent_bridge.service.bundle.loader import Bundle
from latent_bridge.service.bundle.manifest import (
    STRATEGIES,
    GallerySearch,
    PivotGallerySpec,
    RetrievalStrategy,
    RouteStrategySpec,
    StrategyScore,
    bank_file,
    hubness_file,
    pivot_files,
)
from latent_bridge.service.engine.scoring import centred_cosines, fused, neighbourhood_means, partner_ranks, pooled
from latent_bridge.service.engine.translate import run_route
from latent_bridge.service.errors import NoRoute
from latent_bridge.service.galleries.faiss_gallery import Gallery
from latent_bridge.training.bundling.galleries import CHUNK_ROWS, index_with_mean, sha256_file
from latent_bridge.training.datasets.reader import ModalityData, shared_samples
from latent_bridge.training.datasets.splits import Fold
from latent_bridge.training.evaluate import retrieval_summary

BANK_ROWS = 20_000  # training queries at most in a CSLS bank
Run = Callable[[Sequence[str], np.ndarray], np.ndarray]  # translate rows along a path


def score_strategies(path: Sequence[str], a: ModalityData, c: ModalityData, samples: frozenset[str],
                     run: Run, bank: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Retrieval from ``a`` to ``c`` along ``path`` on ``samples``, by each strategy (the gallery: those
    samples' ``c`` rows); with a ``bank`` of ``a`` rows (training queries), also with CSLS in pivot space."""
    shared = set(samples & shared_samples(a, c))
    qa, gc = a.rows_of(shared), c.rows_of(shared)
    items = c.embeddings[gc]
    relevant = a.samples[qa][:, None] == c.samples[gc][None, :]
    in_pivot = run(path[:-1], a.embeddings[qa])
    items_pivot = run([path[-1], path[-2]], items)
    chain = centred_cosines(run(path[-2:], in_pivot), items)
    pivot = centred_cosines(in_pivot, items_pivot)
    chain_pool = pooled(chain)
    found = {
        "chain": retrieval_summary(partner_ranks(chain, relevant)),
        "pivot": retrieval_summary(partner_ranks(pivot, relevant)),
        "fused": retrieval_summary(partner_ranks(fused(chain_pool, pooled(pivot)), relevant)),
    }
    if bank is not None:
        means = neighbourhood_means(items_pivot, run(path[:-1], bank))
        reduced = pooled(pivot, means)
        found["pivot+csls"] = retrieval_summary(partner_ranks(reduced, relevant))
        found["fused+csls"] = retrieval_summary(partner_ranks(fused(chain_pool, reduced), relevant))
    return found


VARIANTS = ("chain", "pivot", "fused", "pivot+csls", "fused+csls")  # simplest first: ties go to the left


def rank_key(variant: str, s: StrategyScore) -> tuple[float, int, float]:
    """R@1 first; on a tie the simpler variant (chain, pivot, fused, then with CSLS), then MRR."""
    return (s.r1, -VARIANTS.index(variant), s.mrr)


def bank_rows(data: ModalityData, samples: frozenset[str], limit: int = BANK_ROWS) -> np.ndarray:
    """Rows of ``samples`` as a query bank for CSLS (at most ``limit``, a seeded choice)."""
    rows = data.rows_of(set(samples))
    if len(rows) > limit:
        rows = np.sort(np.random.default_rng(0).choice(rows, limit, replace=False))
    return data.embeddings[rows]


def choose(path: Sequence[str], data: Mapping[str, ModalityData], folds: list[Fold],
           runs: list[Run]) -> tuple[RouteStrategySpec, bool] | None:
    """The variant of route ``path`` with the best mean R@1 over the folds (``runs[i]``: fold i's
    translators; CSLS's bank: the fold's training rows), or None where no fold has a validation sample
    shared by both ends; and whether CSLS won (its file is written with the pivot galleries)."""
    a, c = data[path[0]], data[path[-1]]
    scored, n = [], 0
    for fold, run in zip(folds, runs, strict=True):
        if fold.val & shared_samples(a, c):
            scored.append(score_strategies(path, a, c, fold.val, run, bank_rows(a, fold.train)))
            n += len(a.rows_of(set(fold.val & shared_samples(a, c))))
    if not scored:
        return None
    means = {v: StrategyScore(**{m: float(np.mean([f[v][m] for f in scored])) for m in ("r1", "r10", "mrr")})
             for v in VARIANTS}
    best = max(VARIANTS, key=lambda v: rank_key(v, means[v]))
    strategy: RetrievalStrategy = next(s for s in STRATEGIES if best.split("+")[0] == s)
    return RouteStrategySpec(source=path[0], target=path[-1], path=list(path), pivot=path[-2], strategy=strategy,
                             scores=means, n_queries=n), best.endswith("+csls")


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


@dataclass(frozen=True)
class RouteChoice:
    """A route's chosen strategy, and for CSLS the query bank its shipped hubness file is computed from."""

    spec: RouteStrategySpec
    bank: np.ndarray | None = None


def choose_strategies(bundle: Bundle, data: Mapping[str, ModalityData], folds: list[Fold],
                      maps: FoldMaps, usable: frozenset[str]) -> list[RouteChoice]:
    """A strategy for every pair of modalities, direct or routed, whose hops and pivot edge (for a direct
    edge, its reverse) have fold translators; CSLS, where chosen, ships with a bank of the source's usable
    rows."""
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
            if any(h not in maps for h in hops):
                continue
            chosen = choose(path, data, folds, fold_runs(maps, len(folds)))
            if chosen is not None:
                spec, csls = chosen
                found.append(RouteChoice(spec, bank_rows(data[src], usable) if csls else None))
    return found


def with_hubness(staging: Path, bundle: Bundle, choice: RouteChoice) -> RouteStrategySpec:
    """The route's spec, with its CSLS files when chosen: the bank translated to the pivot by the shipped
    translators (kept, so a rebuilt gallery gets its terms again) and the neighbourhood means of the (already
    written) pivot gallery's rows against it."""
    route = choice.spec
    if choice.bank is None:
        return route
    head = bundle.graph.along(route.path[:-1], route.source, route.pivot)
    queries = run_route(bundle.translators, head, np.ascontiguousarray(choice.bank, np.float32), bundle.l2_inputs)
    bank = bank_file(route.source, route.target, route.pivot)
    np.save(staging / bank, queries)
    return with_means(staging, route.model_copy(update={"bank_file": bank, "bank_sha256": sha256_file(staging / bank),
                                                        "hubness": "csls"}))


def with_means(staging: Path, route: RouteStrategySpec) -> RouteStrategySpec:
    """``route`` with its CSLS means computed from its bank (in ``staging``) against its pivot gallery's rows
    as written in ``staging`` now: at training, and again for a gallery rebuilt by ``index`` or ``compact``."""
    assert route.bank_file is not None, "CSLS means come from a bank"
    queries = np.load(staging / route.bank_file, allow_pickle=False)
    items = np.load(staging / pivot_files(route.target, route.pivot)["vectors"], mmap_mode="r")
    file = hubness_file(route.source, route.target, route.pivot)
    np.save(staging / file, neighbourhood_means(np.asarray(items), queries))
    return route.model_copy(update={"hubness": "csls", "hubness_file": file,
                                    "hubness_sha256": sha256_file(staging / file)})


def build_pivot_gallery(staging: Path, bundle: Bundle, modality: str, pivot: str,
                        progress: Callable[[int], None] | None = None) -> PivotGallerySpec:
    """``modality``'s gallery translated by the shipped edge ``modality`` → ``pivot``, with the service's
    code, written beside it as an index of the gallery's own type, searched with its effort (a large HNSW
    gallery gets an HNSW pivot gallery, not an exact scan)."""
    gallery = bundle.galleries[modality]
    assert isinstance(gallery, Gallery) and gallery.vectors is not None, "training's galleries: FAISS, raw rows kept"
    route = bundle.graph.along([modality, pivot], modality, pivot)
    files = pivot_files(modality, pivot)
    dim = bundle.modalities[pivot].dim
    out = np.lib.format.open_memmap(staging / files["vectors"], mode="w+", dtype=np.float32,
                                    shape=(gallery.size, dim))
    for start in range(0, gallery.size, CHUNK_ROWS):
        rows = np.ascontiguousarray(gallery.vectors[start : start + CHUNK_ROWS], dtype=np.float32)
        out[start : start + len(rows)] = run_route(bundle.translators, route, rows, bundle.l2_inputs)
    out.flush()
    spec = next(g for g in bundle.manifest.galleries if g.modality == modality)
    index = index_with_mean(out, out.mean(axis=0, dtype=np.float64).astype(np.float32), spec.index_type, progress)
    faiss.write_index(index, str(staging / files["index"]))
    del out, index
    effort = spec.search.model_dump(include={"parameter", "value", "limit", "rerank"})
    return PivotGallerySpec(
        modality=modality, pivot=pivot, path=[modality, pivot],
        index_file=files["index"], index_sha256=sha256_file(staging / files["index"]),
        vectors_file=files["vectors"], vectors_sha256=sha256_file(staging / files["vectors"]),
        size=gallery.size, items_sha256=spec.ids_sha256, index_type=spec.index_type,
        search=GallerySearch(**effort),
    )
