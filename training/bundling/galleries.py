"""Write a modality's gallery from rows streamed in chunks: index, columns, raw vectors, id lookup.

Files, for modality ``m`` (all under ``index/``, all hashed in the manifest):

- ``m.faiss``: ``IndexPreTransform(centre, L2-normalise)`` over an inner-product index (flat, HNSW, IVF or
  IVF-PQ), so scores are the centred cosines that evaluation reports;
- ``m.arrow``: ``id``, optional ``sample`` and payload columns (Arrow IPC, memory-mapped by the server);
- ``m.vectors.npy``: the raw float32 rows (memory-mapped: exact query by id, exact re-scoring);
- ``m.lookup.npy``: sorted 64-bit id hashes and their rows (memory-mapped lookup by id).

Two passes over the rows: the first writes columns and raw vectors and sums the mean; the second adds
centred unit rows to the index from the memory-mapped raw vectors, one chunk at a time. Memory beyond the
index itself stays at one chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
from latent_bridge.service.bundle.files import sha256_file
from latent_bridge.service.bundle.manifest import GallerySearch, GallerySpec, IndexType, gallery_files
from latent_bridge.service.galleries.table import build_lookup

CHUNK_ROWS = 65_536
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
IVF_TRAIN_ROWS = 65_536
IVF_MAX_LISTS = 1024  # more lists search faster but train and fill slower; this keeps a 1M build in minutes
PQ_BITS = 8


class GalleryDataError(ValueError):
    """Rows that cannot become a gallery; the message names the source and the problem."""


@dataclass(frozen=True)
class Chunk:
    """Some rows of a gallery: ids, raw float32 embeddings, and a table of the other columns."""

    ids: pa.Array
    embeddings: np.ndarray
    columns: pa.Table


@dataclass(frozen=True)
class GalleryRows:
    """Where a gallery's rows come from: their count, dimension and a way to stream them (twice if needed)."""

    name: str
    source: str
    rows: int
    dim: int
    chunks: Callable[[], Iterator[Chunk]]


def units(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    y = np.asarray(x, np.float32) - mean
    norms = np.linalg.norm(y, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(y / norms, dtype=np.float32)


def _inner_index(index_type: IndexType, n: int, d: int) -> faiss.Index:
    if index_type == "flat":
        return faiss.IndexFlatIP(d)
    if index_type == "hnsw":
        inner = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return inner
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39 or 1, IVF_MAX_LISTS))
    if index_type == "ivf":
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.nprobe = min(nlist, 16)
        return ivf
    if index_type == "ivf-pq":
        m = next(m for m in (48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if d % m == 0 and m <= d)
        pq = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, m, PQ_BITS, faiss.METRIC_INNER_PRODUCT)
        pq.nprobe = min(nlist, 16)
        return pq
    raise ValueError(f"unknown index type {index_type!r}")


def centred_index(inner: faiss.Index, mean: np.ndarray) -> faiss.IndexPreTransform:
    """Wrap ``inner`` in the centring (with ``mean``, already known) and normalisation the server reads."""
    d = len(mean)
    centre = faiss.CenteringTransform(d)
    faiss.copy_array_to_vector(np.asarray(mean, np.float32), centre.mean)
    centre.is_trained = True
    index = faiss.IndexPreTransform(inner)
    index.prepend_transform(faiss.NormalizationTransform(d, 2.0))
    index.prepend_transform(centre)
    return index


def index_with_mean(
    vectors: np.ndarray, mean: np.ndarray, index_type: IndexType, progress: Callable[[int], None] | None = None
) -> faiss.IndexPreTransform:
    n, d = vectors.shape
    inner = _inner_index(index_type, n, d)
    if not inner.is_trained:
        sample = np.sort(np.random.default_rng(0).choice(n, size=min(n, IVF_TRAIN_ROWS), replace=False))
        inner.train(units(vectors[sample], mean))
    for start in range(0, n, CHUNK_ROWS):
        block = units(vectors[start : start + CHUNK_ROWS], mean)
        inner.add(block)
        if progress:
            progress(len(block))
    return centred_index(inner, mean)


def _check_chunk(rows: GalleryRows, chunk: Chunk, start: int) -> None:
    if chunk.embeddings.ndim != 2 or chunk.embeddings.shape[1] != rows.dim:
        raise GalleryDataError(f"{rows.source}: embeddings of shape {chunk.embeddings.shape} at row {start}, "
                               f"expected {rows.dim} values per row")
    bad = ~np.isfinite(chunk.embeddings).all(axis=1)
    if bad.any():
        raise GalleryDataError(f"{rows.source}: non-finite embedding (NaN or Inf) at row {start + int(bad.argmax())}")
    if chunk.ids.null_count:
        raise GalleryDataError(f"{rows.source}: a missing id near row {start}")


def _write_columns(rows: GalleryRows, staging: Path, files: dict[str, str]) -> tuple[np.ndarray, pa.Array]:
    """Pass 1: the Arrow table and the raw vectors; returns the mean and every id."""
    vectors = np.lib.format.open_memmap(staging / files["vectors"], mode="w+", dtype=np.float32,
                                        shape=(rows.rows, rows.dim))
    total = np.zeros(rows.dim, np.float64)
    ids: list[pa.Array] = []
    writer: pa.ipc.RecordBatchFileWriter | None = None
    schema: pa.Schema | None = None
    start = 0
    try:
        for chunk in rows.chunks():
            _check_chunk(rows, chunk, start)
            end = start + len(chunk.ids)
            if end > rows.rows:
                raise GalleryDataError(f"{rows.source}: more rows than the {rows.rows} announced")
            vectors[start:end] = chunk.embeddings
            total += chunk.embeddings.sum(axis=0, dtype=np.float64)
            table = chunk.columns.add_column(0, "id", chunk.ids.cast(pa.string()))
            if writer is None or schema is None:
                schema = table.schema
                writer = pa.ipc.new_file(str(staging / files["ids"]), schema)
            writer.write_table(table.cast(schema))
            ids.append(chunk.ids.cast(pa.string()))
            start = end
    finally:
        if writer is not None:
            writer.close()
    if start != rows.rows:
        raise GalleryDataError(f"{rows.source}: {start} rows, expected {rows.rows}")
    if rows.rows == 0:
        raise GalleryDataError(f"{rows.source}: no rows")
    vectors.flush()
    del vectors
    return (total / rows.rows).astype(np.float32), pa.chunked_array(ids, pa.string()).combine_chunks()


def _write_lookup(rows: GalleryRows, ids: pa.Array, path: Path) -> None:
    lookup = build_lookup(ids)
    same = np.flatnonzero(np.diff(lookup[0]) == 0)
    for i in same:
        a, b = (ids[int(lookup[1][j])].as_py() for j in (i, i + 1))
        if a == b:
            raise GalleryDataError(f"{rows.source}: duplicate id {a!r}")
    np.save(path, lookup)


def write_gallery_files(
    staging: Path,
    rows: GalleryRows,
    index_type: IndexType,
    tune: Callable[[faiss.Index, np.ndarray], GallerySearch] | None = None,
    progress: Callable[[int], None] | None = None,
) -> GallerySpec:
    """Write the four files of ``rows``' gallery into ``staging/index`` and return its manifest entry."""
    files = gallery_files(rows.name)
    (staging / "index").mkdir(parents=True, exist_ok=True)
    mean, ids = _write_columns(rows, staging, files)
    _write_lookup(rows, ids, staging / files["lookup"])
    del ids
    vectors = np.load(staging / files["vectors"], mmap_mode="r")
    index = index_with_mean(vectors, mean, index_type, progress)
    search = tune(index, vectors) if tune is not None else GallerySearch()
    faiss.write_index(index, str(staging / files["index"]))
    del index, vectors
    digests = {k: sha256_file(staging / f) for k, f in files.items()}
    return GallerySpec(
        modality=rows.name,
        index_file=files["index"],
        index_sha256=digests["index"],
        ids_file=files["ids"],
        ids_sha256=digests["ids"],
        index_type=index_type,
        size=rows.rows,
        vectors_file=files["vectors"],
        vectors_sha256=digests["vectors"],
        lookup_file=files["lookup"],
        lookup_sha256=digests["lookup"],
        search=search,
        source=rows.source,
    )


def in_memory_rows(
    name: str, source: str, ids: Iterable[str], embeddings: np.ndarray, columns: pa.Table
) -> GalleryRows:
    """Rows already in memory (training's own galleries) as one chunk."""
    chunk = Chunk(pa.array(list(ids), pa.string()), np.asarray(embeddings, np.float32), columns)
    return GalleryRows(name, source, len(chunk.ids), int(chunk.embeddings.shape[1]), lambda: iter([chunk]))
