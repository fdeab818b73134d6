"""Index a corpus as a modality's gallery, or fold a gallery's run-time writes into it: a new bundle.

``latent-bridge index`` builds (or replaces) one modality's gallery from any embeddings of that modality
(``id``, ``embedding``, payload columns; no ``sample`` needed), read from Parquet in chunks. ``latent-bridge
compact`` rebuilds each gallery that has logged writes from its live rows. Either way the new bundle is
written atomically beside the old one, carries every translator and every other gallery byte for byte, and
records its lineage; the old bundle is untouched. Needs no torch: translators run through the service's
onnxruntime code, to make the held-out queries the search effort is tuned on.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from latent_bridge.service.bundle.loader import Bundle, load_bundle, pivot_gallery_spec
from latent_bridge.service.bundle.manifest import (
    GallerySpec,
    Lineage,
    Manifest,
    PivotGallerySpec,
    read_manifest,
    write_manifest,
)
from latent_bridge.service.engine.translate import run_route
from latent_bridge.service.errors import NoRoute
from latent_bridge.service.galleries.faiss_gallery import Gallery, open_gallery
from latent_bridge.service.galleries.milvus_gallery import MilvusGallery, MilvusLink
from latent_bridge.service.galleries.writelog import WriteLog, writes_dir
from latent_bridge.training.bundling.galleries import (
    CHUNK_ROWS,
    Chunk,
    GalleryDataError,
    GalleryRows,
    write_gallery_files,
)
from latent_bridge.training.bundling.milvus_push import MilvusTarget, push_gallery
from latent_bridge.training.bundling.pivots import build_pivot_gallery, with_means
from latent_bridge.training.bundling.tuning import choose_index_type, search_limits, tune, tune_elsewhere
from latent_bridge.training.bundling.writer import package_versions, staged_bundle
from latent_bridge.training.datasets.reader import load_modality

QUERIES = 500
DEFAULT_TARGET = 0.95

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexOptions:
    index_type: str = "auto"  # auto, flat, hnsw, ivf, ivf-pq; "same" keeps each gallery's (compaction)
    memory_budget: int | None = None  # bytes the index may take in memory (auto picks IVF-PQ above it)
    target_recall: float = DEFAULT_TARGET
    queries: Path | None = None  # raw query embeddings of the modality; default: translated training rows
    progress: bool = True
    milvus: MilvusTarget | None = None  # also push each new gallery into a Milvus collection


def _embedding_matrix(source: str, column: pa.ChunkedArray | pa.Array, dim: int, start: int) -> np.ndarray:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count:
        raise GalleryDataError(f"{source}: a missing embedding near row {start}")
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != dim).any():
        bad = int(np.flatnonzero(lengths != dim)[0])
        raise GalleryDataError(
            f"{source}: embedding of {int(lengths[bad])} values at row {start + bad}; the modality has {dim}"
        )
    values = array.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(values, np.float32).reshape(len(array), dim)


def corpus_rows(path: Path, modality: str, dim: int) -> GalleryRows:
    """A Parquet corpus as gallery rows, streamed in chunks of ``CHUNK_ROWS``."""
    source = str(path)
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise GalleryDataError(f"{source}: cannot be read ({type(exc).__name__}: {exc})") from exc
    names = parquet.schema_arrow.names
    missing = [c for c in ("id", "embedding") if c not in names]
    if missing:
        raise GalleryDataError(f"{source}: missing column(s) {missing} (found {names})")

    def chunks() -> Iterator[Chunk]:
        start = 0
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
            table = pa.Table.from_batches([batch])
            embeddings = _embedding_matrix(source, table.column("embedding"), dim, start)
            ids = table.column("id").combine_chunks()
            yield Chunk(ids, embeddings, table.drop_columns(["id", "embedding"]))
            start += table.num_rows

    return GalleryRows(modality, source, parquet.metadata.num_rows, dim, chunks)


def _progress(total: int, label: str, enabled: bool) -> Callable[[int], None] | None:
    if not enabled:
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="rows", unit_scale=True)
    return bar.update


@lru_cache(maxsize=1)
def _translating(parent: Path) -> Bundle:
    """The parent bundle, loaded (files checked, writes replayed) once for all the galleries one run tunes."""
    return load_bundle(parent)


def held_out_queries(parent: Path, manifest: Manifest, modality: str, limit: int,
                     items: str | None = None) -> tuple[np.ndarray, str] | None:
    """Training rows of other modalities translated into ``modality`` along the best routes (they are not
    gallery items), when the bundle's training data is at hand. For a pivot gallery in ``modality``'s space
    whose items are of modality ``items``: the pivot's own rows as they are (a direct edge's queries) and the
    other modalities' translated, never the items' own rows (translated, they would be the gallery's items)."""
    data = manifest.training.get("data")
    folder = Path(str(data)) if data else None
    if folder is None or not folder.is_dir():
        return None
    bundle = _translating(parent)
    found, names = [], []
    for m in manifest.modalities:
        file = folder / f"{m.name}.parquet"
        if m.name == (items or modality) or not file.is_file():
            continue
        try:
            route = bundle.graph.best(m.name, modality)
        except NoRoute:
            continue
        rows = load_modality(file).embeddings
        take = np.random.default_rng(0).permutation(len(rows))[: limit // 2]
        found.append(run_route(bundle.translators, route, rows[np.sort(take)], bundle.l2_inputs))
        names.append(m.name)
    if not found:
        return None
    queries = np.concatenate(found)[:limit]
    return queries, f"training rows of {', '.join(names)} translated into {modality} ({folder})"


def _queries(parent: Path, manifest: Manifest, gallery: Gallery, options: IndexOptions,
             items: str | None = None) -> tuple[np.ndarray, str]:
    if options.queries is not None:
        table = pq.read_table(options.queries, columns=["embedding"])
        rows = _embedding_matrix(str(options.queries), table.column("embedding"), gallery.dim, 0)
        return rows[:QUERIES], str(options.queries)
    translated = held_out_queries(parent, manifest, gallery.modality, QUERIES, items)
    if translated is not None:
        return translated
    assert gallery.vectors is not None
    pick = np.sort(np.random.default_rng(0).permutation(gallery.size)[:QUERIES])
    return np.asarray(gallery.vectors[pick]), "gallery rows themselves (no held-out queries at hand)"


def _tuned(staging: Path, manifest: Manifest, spec: GallerySpec, parent: Path, options: IndexOptions,
           items: str | None = None) -> GallerySpec:
    """Measure recall and latency through the service's gallery, opened from the staged files."""
    nlist = 1
    wide = spec.model_copy(update={"search": search_limits(spec.index_type, nlist)})
    gallery = open_gallery(wide, staging, manifest, replay=False)
    inner = gallery.inner
    if hasattr(inner, "nlist"):
        wide = spec.model_copy(update={"search": search_limits(spec.index_type, int(inner.nlist))})
        gallery = open_gallery(wide, staging, manifest, replay=False)
    queries, source = _queries(parent, manifest, gallery, options, items)
    return spec.model_copy(update={"search": tune(gallery, queries, source, options.target_recall)})


def _pivot_tuned(staging: Path, manifest: Manifest, pivot: PivotGallerySpec, items: GallerySpec, parent: Path,
                 options: IndexOptions) -> PivotGallerySpec:
    """A rebuilt pivot gallery with its own search effort, tuned like a gallery's on queries in the pivot's
    space (``held_out_queries``; ``--queries`` are in the items' space, so they do not apply)."""
    tuned = _tuned(staging, manifest, pivot_gallery_spec(pivot, items), parent, replace(options, queries=None),
                   items=pivot.modality)
    return pivot.model_copy(update={"search": tuned.search})


def _pushed(staging: Path, manifest: Manifest, spec: GallerySpec, parent: Path, options: IndexOptions) -> GallerySpec:
    """The gallery pushed into its Milvus collection, its effort tuned there; its spec then names the collection."""
    target = options.milvus
    assert target is not None
    gallery = open_gallery(spec, staging, manifest, replay=False)
    progress = _progress(gallery.size, f"push {spec.modality} to Milvus", options.progress)
    pushed = push_gallery(gallery, manifest.name, target, progress)
    assert pushed.milvus is not None
    nlist = int(pushed.milvus.index_params.get("nlist", 1))
    wide = pushed.model_copy(update={"search": search_limits(spec.index_type, nlist)})
    link = MilvusLink(target.uri, target.token, target.timeout)
    queries, source = _queries(parent, manifest, gallery, options)
    try:
        tuned = tune_elsewhere(MilvusGallery(wide, gallery.dim, link), gallery, queries, source, options.target_recall)
    finally:
        link.close()
    return pushed.model_copy(update={"milvus": pushed.milvus.model_copy(update={"search": tuned})})


def _rebuilt(
    parent_dir: Path,
    out: Path,
    new_rows: dict[str, GalleryRows],
    options: IndexOptions,
    lineage: Callable[[Manifest], Lineage],
) -> Manifest:
    """A new bundle: the parent's translators and other galleries byte for byte, new galleries for ``rows``."""
    parent = read_manifest(parent_dir)
    known = {m.name: m for m in parent.modalities}
    for name, rows in new_rows.items():
        if name not in known:
            raise GalleryDataError(f"modality {name!r} is not in bundle {parent.name} (known: {', '.join(known)})")
        if rows.dim != known[name].dim:
            raise GalleryDataError(
                f"{rows.source}: {rows.dim}-d embeddings, the bundle's {name} is {known[name].dim}-d"
            )
    types = {g.modality: g.index_type for g in parent.galleries}
    with staged_bundle(out) as staging:
        kept = [g for g in parent.galleries if g.modality not in new_rows]
        for file in parent.fixed_files() + [f for g in kept for f, _ in g.files()]:
            (staging / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(parent_dir / file, staging / file)
        built = {}
        for name, rows in new_rows.items():
            requested = types.get(name, "auto") if options.index_type == "same" else options.index_type
            index_type = choose_index_type(requested, rows.rows, rows.dim, options.memory_budget)
            progress = _progress(rows.rows, f"index {name} ({index_type})", options.progress)
            built[name] = write_gallery_files(staging, rows, index_type, progress=progress)
        manifest = parent.model_copy(
            update={
                "name": out.name,
                "created_at": datetime.now(UTC),
                "galleries": kept + list(built.values()),
                "versions": package_versions(),
                "lineage": lineage(parent),
            }
        )
        for name, spec in built.items():
            tuned = _tuned(staging, manifest, spec, parent_dir, options)
            if options.milvus is not None:
                tuned = _pushed(staging, manifest, tuned, parent_dir, options)
            manifest = manifest.model_copy(
                update={"galleries": [tuned if g.modality == name else g for g in manifest.galleries]}
            )
        manifest = _pivots_rebuilt(staging, parent_dir, manifest, set(new_rows), options)
    return manifest


def _pivots_rebuilt(staging: Path, parent_dir: Path, manifest: Manifest, rebuilt: set[str],
                    options: IndexOptions) -> Manifest:
    """Write the manifest with pivot galleries that mirror the new galleries: those of kept galleries are
    copied, those of rebuilt ones translated again from the new items (with the gallery's index type, their
    effort tuned on their own). A rebuilt gallery's routes keep their strategy; their CSLS terms are computed
    again from the route's bank against the new pivot gallery (a bundle written before banks existed loses
    CSLS on those routes, with a warning)."""
    kept = [p for p in manifest.pivot_galleries if p.modality not in rebuilt]
    stale = [p for p in manifest.pivot_galleries if p.modality in rebuilt]
    csls = {tuple(r.path): r for r in manifest.routes if r.target in rebuilt and r.hubness == "csls"}
    for r in csls.values():
        if r.bank_file is None:
            log.warning("route %s keeps %s without CSLS: this bundle has no CSLS bank to rebuild its terms from "
                        "(train it again to keep CSLS through index and compact)", "→".join(r.path), r.strategy)
    routes = [r if tuple(r.path) not in csls else
              r.model_copy(update={"hubness": "none", "hubness_file": None, "hubness_sha256": None,
                                   "bank_file": None, "bank_sha256": None})
              for r in manifest.routes]
    files = [f for p in kept for f, _ in p.files()] + [f for r in manifest.routes for f, _ in r.files()
                                                      if tuple(r.path) not in csls or f == r.bank_file]
    for file in files:
        shutil.copyfile(parent_dir / file, staging / file)
    update = {"pivot_galleries": kept, "routes": routes}
    manifest = Manifest.model_validate(manifest.model_copy(update=update).model_dump())
    write_manifest(manifest, staging)
    if not stale:
        return manifest
    bundle = load_bundle(staging)
    built = [build_pivot_gallery(staging, bundle, p.modality, p.pivot,
                                 _progress(bundle.galleries[p.modality].size, f"index {p.modality} in {p.pivot} space",
                                           options.progress))
             for p in stale]
    items = {g.modality: g for g in manifest.galleries}
    pivots = kept + [_pivot_tuned(staging, manifest, p, items[p.modality], parent_dir, options) for p in built]
    banked = {path: r for path, r in csls.items() if r.bank_file is not None}
    routes = [with_means(staging, banked[tuple(r.path)]) if tuple(r.path) in banked else r for r in manifest.routes]
    update = {"pivot_galleries": pivots, "routes": routes}
    manifest = Manifest.model_validate(manifest.model_copy(update=update).model_dump())
    write_manifest(manifest, staging)
    return manifest


def index_corpora(
    bundle: Path, corpora: dict[str, Path], out: Path, options: IndexOptions, same_run: bool = False
) -> Manifest:
    """``bundle`` with the gallery of each modality in ``corpora`` built from that corpus file (``same_run``:
    the bundle was only a step of training, so the new one keeps its lineage instead of naming it)."""
    parent = read_manifest(bundle)
    dims = {m.name: m.dim for m in parent.modalities}
    rows = {}
    for name, path in corpora.items():
        if name not in dims:
            raise GalleryDataError(f"modality {name!r} is not in bundle {parent.name} (known: {', '.join(dims)})")
        rows[name] = corpus_rows(path, name, dims[name])

    def lineage(p: Manifest) -> Lineage:
        if same_run:
            return p.lineage.model_copy(update={"new_galleries": sorted(corpora)})
        return Lineage(parent=p.name, parent_fingerprint=p.fingerprint, new_galleries=sorted(corpora))

    return _rebuilt(Path(bundle), Path(out), rows, options, lineage)


def live_rows(gallery: Gallery, source: str) -> GalleryRows:
    """A gallery's live items (base rows not deleted or replaced, then run-time writes) as rows."""

    def chunks() -> Iterator[Chunk]:
        for ids, vectors, columns in gallery.live_items(CHUNK_ROWS):
            yield Chunk(ids, vectors, columns)

    return GalleryRows(gallery.modality, source, gallery.live_count(), gallery.dim, chunks)


def compact(bundle: Path, out: Path, options: IndexOptions) -> Manifest:
    """``bundle`` with every gallery's logged writes folded in; the log itself is left as it was."""
    bundle = Path(bundle)
    parent = read_manifest(bundle)
    logs = writes_dir(bundle)
    rows: dict[str, GalleryRows] = {}
    folded: dict[str, int] = {}
    for spec in parent.galleries:
        path = logs / f"{spec.modality}.log"
        if not path.is_file():
            continue
        gallery = open_gallery(spec, bundle, parent, replay=False)
        log = WriteLog(path, parent.name, parent.fingerprint, repair=False)
        gallery.attach_log(log)
        folded[spec.modality] = log.records
        rows[spec.modality] = live_rows(gallery, f"{bundle.name} + {path}")
    if not rows:
        raise GalleryDataError(f"{bundle}: no run-time writes to fold in ({logs} holds no gallery log)")

    def lineage(p: Manifest) -> Lineage:
        return Lineage(
            parent=p.name, parent_fingerprint=p.fingerprint, new_galleries=sorted(rows), folded_writes=folded
        )

    return _rebuilt(bundle, out, rows, options, lineage)


def corpus_files(folder: Path) -> dict[str, Path]:
    """``<modality>.parquet`` files of a gallery-data folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GalleryDataError(f"{folder}: not a folder")
    files = {p.stem: p for p in sorted(folder.glob("*.parquet"))}
    if not files:
        raise GalleryDataError(f"{folder}: no corpus files (<modality>.parquet)")
    return files
