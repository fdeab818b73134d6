"""A modality's retrieval gallery: its FAISS index (centring + L2 normalisation + inner product) and its ids.

Row ``i`` of ``index/<modality>.parquet`` describes vector ``i`` of the index: its ``id``, its ``sample``
and payload columns (e.g. a caption) that retrieval returns. Scores are cosines after the gallery's own
centring, the same quantity training's retrieval metrics rank by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from latent_bridge.service.errors import UnknownItem, echo
from latent_bridge.service.manifest import BundleError, GallerySpec
from latent_bridge.service.translate import Matrix

EMBEDDING_COLUMN = "embedding"
_INDEX_CLASSES: dict[str, tuple[type, ...]] = {
    "flat": (faiss.IndexFlat,),
    "hnsw": (faiss.IndexHNSW,),
    "ivf": (faiss.IndexIVF,),
}


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    sample: str
    payload: dict[str, Any]


def _read_flags() -> list[int]:
    mmap = getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP)
    return [mmap | faiss.IO_FLAG_READ_ONLY, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY, 0]


def read_index(path: Path) -> faiss.Index:
    """Memory-map the index read-only where this FAISS build allows it, else read it into memory."""
    error: Exception | None = None
    for flags in _read_flags():
        try:
            return faiss.read_index(str(path), flags)
        except RuntimeError as exc:
            error = exc
    raise BundleError(f"{path}: not a readable FAISS index ({error})")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _centring_mean(index: faiss.Index) -> Matrix | None:
    if not isinstance(index, faiss.IndexPreTransform):
        return None
    chain: Any = index.chain  # a SWIG std::vector, not the list the stubs say
    for i in range(chain.size()):
        transform = faiss.downcast_VectorTransform(chain.at(i))
        if isinstance(transform, faiss.CenteringTransform):
            mean: Matrix = faiss.vector_to_array(transform.mean).astype(np.float32)
            return mean
    return None


class Gallery:
    """Search one modality's gallery; look items up by id."""

    def __init__(
        self,
        spec: GallerySpec,
        index: faiss.Index,
        table: pa.Table,
        dim: int,
        index_path: Path,
        ids_path: Path,
    ) -> None:
        self.spec = spec
        self.modality = spec.modality
        self.index = index  # keeps the C++ object (and its inner index) alive
        self._check(table, dim, index_path, ids_path)
        self.ids: list[str] = [str(v) for v in table.column("id").to_pylist()]
        self.rows = {item: row for row, item in enumerate(self.ids)}
        if len(self.rows) != len(self.ids):
            raise BundleError(f"{ids_path}: duplicate ids")
        self.samples: list[str] = (
            [str(v) for v in table.column("sample").to_pylist()]
            if "sample" in table.column_names
            else [""] * len(self.ids)
        )
        self.payload = {
            str(c): [_jsonable(v) for v in table.column(c).to_pylist()]
            for c in table.column_names
            if c not in ("id", "sample", EMBEDDING_COLUMN)
        }
        self.mean = _centring_mean(index)
        self._stored = self._stored_vectors(table, dim, ids_path)

    @property
    def size(self) -> int:
        return len(self.ids)

    def _check(self, table: pa.Table, dim: int, index_path: Path, ids_path: Path) -> None:
        if self.index.d != dim:
            raise BundleError(
                f"{index_path}: index dimension {self.index.d}, modality {self.modality!r} has {dim}"
            )
        if "id" not in table.column_names:
            raise BundleError(f"{ids_path}: missing column 'id' (found {table.column_names})")
        if self.index.ntotal != table.num_rows:
            raise BundleError(
                f"{index_path}: {self.index.ntotal} vectors but {ids_path.name} has {table.num_rows} rows"
            )
        if self.spec.size != table.num_rows:
            raise BundleError(f"{ids_path}: {table.num_rows} rows, the manifest says size {self.spec.size}")
        inner = (
            faiss.downcast_index(self.index.index)
            if isinstance(self.index, faiss.IndexPreTransform)
            else None
        )
        expected = _INDEX_CLASSES[self.spec.index_type]
        if inner is None or not isinstance(inner, expected):
            found = type(inner or self.index).__name__
            raise BundleError(
                f"{index_path}: a {found}, the manifest says index_type {self.spec.index_type!r}"
            )
        if isinstance(inner, faiss.IndexIVF):
            inner.make_direct_map()  # lets a stored item be read back by row

    def _stored_vectors(self, table: pa.Table, dim: int, ids_path: Path) -> Matrix | None:
        """Raw embeddings when the id table carries them; else items are read back from the index."""
        if EMBEDDING_COLUMN not in table.column_names:
            return None
        try:
            rows = table.column(EMBEDDING_COLUMN).to_numpy(zero_copy_only=False)
            stored: Matrix = np.ascontiguousarray(np.stack(list(rows)), dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise BundleError(
                f"{ids_path}: column {EMBEDDING_COLUMN!r} is not a float matrix ({exc})"
            ) from exc
        if stored.shape != (table.num_rows, dim):
            raise BundleError(
                f"{ids_path}: column {EMBEDDING_COLUMN!r} has shape {stored.shape}, "
                f"expected ({table.num_rows}, {dim})"
            )
        return stored

    def row_of(self, item: str) -> int:
        row = self.rows.get(item)
        if row is None:
            examples = ", ".join(self.ids[:3])
            raise UnknownItem(
                f"no item {echo(item)} in the {self.modality!r} gallery (ids look like: {examples})",
                modality=self.modality,
            )
        return row

    def vector(self, row: int) -> Matrix:
        """The (1, d) query vector of a stored item.

        With raw embeddings in the id table it is exact. Otherwise it is read back from the index, which
        stores the centred unit direction: ``mean + direction``. Search in the same modality is then exact
        and affine translators give the same centred direction; only the item's norm is lost.
        """
        if self._stored is not None:
            return self._stored[row : row + 1]
        out: Matrix = np.asarray(self.index.reconstruct(int(row)), dtype=np.float32).reshape(1, -1)
        return out

    def search(self, x: Matrix, k: int) -> tuple[Matrix, np.ndarray]:
        """Scores and rows of the ``k`` best items per query (rows of -1 mean fewer than k were found)."""
        scores, rows = self.index.search(x, min(k, self.size))
        return scores, rows

    def hits(self, scores: Matrix, rows: np.ndarray) -> list[Hit]:
        """One query's results, skipping empty slots."""
        return [
            Hit(self.ids[r], float(s), self.samples[r], {c: values[r] for c, values in self.payload.items()})
            for s, r in zip(scores.tolist(), rows.tolist(), strict=True)
            if r >= 0
        ]


def open_gallery(spec: GallerySpec, bundle_dir: Path, dim: int) -> Gallery:
    index_path, ids_path = bundle_dir / spec.index_file, bundle_dir / spec.ids_file
    index = read_index(index_path)
    try:
        table = pq.read_table(ids_path)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise BundleError(f"{ids_path}: not a readable Parquet table ({type(exc).__name__}: {exc})") from exc
    return Gallery(spec, index, table, dim, index_path, ids_path)
