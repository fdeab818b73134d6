"""A gallery's ids and payload as columns: an Arrow IPC file memory-mapped, never one Python object per row.

Row ``i`` describes vector ``i`` of the gallery's index. Lookups by id go through a sorted table of 64-bit
id hashes (``index/<modality>.lookup.npy``, shape ``(2, n)``: hashes, then rows), memory-mapped too, so a
million-item gallery opens in the time it takes to map two files. Payload filters (``where``) run as Arrow
compute kernels over whole columns. Older bundles store the table as Parquet (read into memory, with the
lookup built at load); both give the same answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from latent_bridge.service.bundle.manifest import BundleError

RESERVED_COLUMNS = ("id", "sample", "embedding")
FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
FNV_OFFSET_INT, FNV_PRIME_INT, MASK64 = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1
# ``hash_ids`` hashes in Python when the ids' total bytes are at most this many times the longest id's (a
# numpy pass per byte position costs about as much as this many bytes hashed in Python)
PYTHON_HASH_RATIO = 40
WhereValue = str | int | float | bool | None
Where = Mapping[str, WhereValue | Sequence[WhereValue]]


def fnv1a(data: bytes) -> int:
    """FNV-1a 64-bit hash of ``data``, one id at a time (about 0.1 µs a byte: cheaper than ``hash_ids``'
    numpy passes, a few µs each, for a handful of short ids)."""
    h = FNV_OFFSET_INT
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME_INT) & MASK64
    return h


def hash_ids(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """FNV-1a 64-bit hash of each id's UTF-8 bytes: one numpy pass per byte position over all ids (none per
    row) for many ids, or byte by byte in Python where that costs less (few ids, or one long one among
    short ones: the numpy passes cost the longest id's length, the Python loop the total)."""
    array = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    array = pc.cast(array, pa.large_string())
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data = array.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    longest = int(lengths.max()) if len(lengths) else 0
    if int(lengths.sum()) <= PYTHON_HASH_RATIO * longest:
        spans = zip(starts.tolist(), lengths.tolist(), strict=True)
        return np.array([fnv1a(raw[s : s + n].tobytes()) for s, n in spans], dtype=np.uint64)
    hashes = np.full(len(array), FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(longest):
            live = np.flatnonzero(lengths > j)
            hashes[live] ^= raw[starts[live] + j].astype(np.uint64)
            hashes[live] *= FNV_PRIME
    return hashes


def hash_id(item: str) -> np.uint64:
    """``hash_ids`` of one id (``UnicodeEncodeError`` for a string that is not valid UTF-8)."""
    return np.uint64(fnv1a(item.encode("utf-8")))


def utf8_size(item: str) -> int | None:
    """The id's length in UTF-8 bytes, or None when it cannot be UTF-8 (a lone surrogate from JSON)."""
    try:
        return len(item.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def build_lookup(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The ``(2, n)`` uint64 lookup table: sorted id hashes and the row of each."""
    hashes = hash_ids(ids)
    order = np.argsort(hashes, kind="stable")
    return np.stack([hashes[order], order.astype(np.uint64)])


def jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class GalleryTable:
    """Ids, pairing keys and payload of a gallery's base rows; lookups by id and payload masks."""

    def __init__(self, table: pa.Table, lookup: np.ndarray, path: Path) -> None:
        if "id" not in table.column_names:
            raise BundleError(f"{path}: missing column 'id' (found {table.column_names})")
        if lookup.shape != (2, table.num_rows):
            raise BundleError(f"{path}: lookup table has shape {lookup.shape}, expected (2, {table.num_rows})")
        self.table = table
        self.path = path
        self.ids = table.column("id")
        self.id_chunks = self.ids.chunks
        self.id_starts = np.cumsum([0] + [len(c) for c in self.id_chunks])[:-1].astype(np.int64)
        self.hashes, self.hash_rows = lookup[0], lookup[1]
        self.payload_columns = [c for c in table.column_names if c not in RESERVED_COLUMNS]
        self.payload_types = {c: table.schema.field(c).type for c in self.payload_columns}
        self.has_sample = "sample" in table.column_names
        self.string_columns = frozenset(
            c for c, kind in self.payload_types.items() if pa.types.is_string(kind) or pa.types.is_large_string(kind)
        )
        self.batches = table.to_batches()
        self.batch_starts = np.cumsum([0] + [b.num_rows for b in self.batches])[:-1].astype(np.int64)
        self._longest_id: int | None = None
        self._same_rows: list[tuple[GalleryTable, bool]] = []

    @property
    def size(self) -> int:
        return int(self.table.num_rows)

    @property
    def longest_id(self) -> int:
        """The longest id's length in UTF-8 bytes (computed once, by an Arrow kernel over the offsets): a
        longer id cannot be in the table, so it is never hashed."""
        if self._longest_id is None:
            longest = pc.max(pc.binary_length(self.ids)).as_py() if self.size else 0
            self._longest_id = int(longest or 0)
        return self._longest_id

    def row_of(self, item: str) -> int | None:
        """The row holding ``item``, or None; equal hashes are told apart by the id itself. An id longer than
        any in the table (or not UTF-8) costs nothing."""
        if len(item) > self.longest_id:  # at least one byte per character
            return None
        size = utf8_size(item)
        if size is None or size > self.longest_id:
            return None
        h = hash_id(item)
        start = int(np.searchsorted(self.hashes, h, side="left"))
        for i in range(start, self.size):
            if self.hashes[i] != h:
                break
            row = int(self.hash_rows[i])
            if self.ids[row].as_py() == item:
                return row
        return None

    def rows_of(self, items: Sequence[str]) -> np.ndarray:
        """Rows of the ids that are present (a vectorised ``row_of`` for batches of writes)."""
        longest = self.longest_id
        items = [item for item in items if len(item) <= longest and (utf8_size(item) or longest + 1) <= longest]
        if not items or not self.size:
            return np.zeros(0, np.int64)
        hashes = hash_ids(pa.array(items, pa.string()))
        at = np.minimum(np.searchsorted(self.hashes, hashes), self.size - 1)
        found = [self.row_of(item) for item, hit in zip(items, self.hashes[at] == hashes, strict=True) if hit]
        return np.array([r for r in found if r is not None], dtype=np.int64)

    def take(self, rows: Sequence[int]) -> pa.Table:
        """Rows in the given order, taken batch by batch: ``Table.take`` on a table of many record batches
        first concatenates whole columns, milliseconds per query at a million rows."""
        wanted = np.asarray(rows, dtype=np.int64)
        chunk = np.searchsorted(self.batch_starts, wanted, side="right") - 1
        pieces = []
        for c in np.unique(chunk):
            at = np.flatnonzero(chunk == c)
            pieces.append((at, self.batches[c].take(pa.array(wanted[at] - self.batch_starts[c]))))
        order = np.argsort(np.concatenate([at for at, _ in pieces]), kind="stable")
        joined = pa.Table.from_batches([b for _, b in pieces], schema=self.table.schema)
        return joined.take(pa.array(order)) if len(pieces) > 1 else joined

    def same_rows(self, other: GalleryTable) -> bool:
        """Whether ``other`` holds the same records in the same rows (a pivot gallery reads its gallery's own
        file): a base row then names one item in both, and fusion matches candidates by row and reads their
        records once, without reading ids first. Compared once per pair."""
        for table, same in self._same_rows:
            if table is other:
                return same
        same = self.path.resolve() == other.path.resolve() or self.table.equals(other.table)
        self._same_rows.append((other, same))
        return same

    def ids_of(self, rows: np.ndarray) -> list[str]:
        """The ids of ``rows``, in order: only the id column is read (what ranking by id needs)."""
        if not len(rows):
            return []
        wanted = np.asarray(rows, dtype=np.int64)
        if len(self.id_chunks) == 1:
            return [str(v) for v in self.id_chunks[0].take(pa.array(wanted)).to_pylist()]
        chunk = np.searchsorted(self.id_starts, wanted, side="right") - 1  # as ``take``: never the whole column
        out: list[str] = [""] * len(wanted)
        for c in np.unique(chunk).tolist():
            at = np.flatnonzero(chunk == c)
            for n, v in zip(at.tolist(), self.id_chunks[c].take(pa.array(wanted[at] - self.id_starts[c])).to_pylist(),
                            strict=True):
                out[n] = str(v)
        return out

    def first_ids(self, n: int) -> list[str]:
        return [str(v) for v in self.ids.slice(0, n).to_pylist()]

    def records(self, rows: Sequence[int]) -> list[tuple[str, str, dict[str, Any]]]:
        """(id, sample, payload) of each row, in order; only these rows become Python objects. A table of one
        record batch takes from it directly, and string columns skip ``jsonable`` (their values are already
        JSON): both were most of the cost for a page of ten hits."""
        if not len(rows):
            return []
        picked: pa.Table | pa.RecordBatch
        if len(self.batches) == 1:
            picked = self.batches[0].take(pa.array(np.asarray(rows, dtype=np.int64)))
        else:
            picked = self.take(rows)
        ids = picked.column("id").to_pylist()
        samples = picked.column("sample").to_pylist() if self.has_sample else [""] * len(ids)
        columns = [(c, picked.column(c).to_pylist(), c in self.string_columns) for c in self.payload_columns]
        return [
            (str(i), "" if s is None else str(s), {c: v[n] if plain else jsonable(v[n]) for c, v, plain in columns})
            for n, (i, s) in enumerate(zip(ids, samples, strict=True))
        ]

    def mask(self, where: Where) -> np.ndarray:
        """Boolean mask of the rows whose payload matches every condition (equality, or ``in`` a list)."""
        return payload_mask(self.table, where)


def payload_mask(table: pa.Table, where: Where) -> np.ndarray:
    """Boolean mask of ``table``'s rows whose payload matches every condition of ``where`` (equality, or
    ``in`` a list; None matches a null), as Arrow kernels over whole columns: the base table's filter and
    that of the items written at run time."""
    size = table.num_rows
    keep = np.ones(size, dtype=bool)
    for column, wanted in where.items():
        values = list(wanted) if isinstance(wanted, list | tuple) else [wanted]
        data = table.column(column)
        present = [v for v in values if v is not None]
        try:
            hit = pc.is_in(data, value_set=pa.array(present, type=data.type)) if present else None
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            hit = None  # a value that cannot be of this column's type matches nothing
        column_mask = np.zeros(size, bool) if hit is None else hit.to_numpy(zero_copy_only=False).astype(bool)
        if None in values:
            column_mask |= pc.is_null(data).to_numpy(zero_copy_only=False).astype(bool)
        keep &= column_mask
    return keep


def _mapped_table(path: Path) -> pa.Table:
    try:
        return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise BundleError(f"{path}: not a readable Arrow IPC file ({exc})") from exc


def _parquet_table(path: Path) -> pa.Table:
    try:
        return pq.read_table(path, memory_map=True)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise BundleError(f"{path}: not a readable Parquet table ({type(exc).__name__}: {exc})") from exc


def _mapped_lookup(path: Path) -> np.ndarray:
    try:
        lookup: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise BundleError(f"{path}: not a readable .npy array ({exc})") from exc
    if lookup.dtype != np.uint64 or lookup.ndim != 2:
        raise BundleError(f"{path}: expected a (2, n) uint64 array, got {lookup.dtype} {lookup.shape}")
    return lookup


def open_table(ids_path: Path, lookup_path: Path | None) -> GalleryTable:
    """The table at ``ids_path`` (Arrow IPC, memory-mapped; or Parquet), with its id lookup."""
    if ids_path.suffix == ".parquet":
        table = _parquet_table(ids_path)
    else:
        table = _mapped_table(ids_path)
    if "id" in table.column_names and not pa.types.is_string(table.schema.field("id").type):
        table = table.set_column(table.column_names.index("id"), "id", pc.cast(table.column("id"), pa.string()))
    if "id" not in table.column_names:
        raise BundleError(f"{ids_path}: missing column 'id' (found {table.column_names})")
    lookup = _mapped_lookup(lookup_path) if lookup_path is not None else build_lookup(table.column("id"))
    gallery_table = GalleryTable(table, lookup, ids_path)
    duplicated: Sequence[int] = (
        np.flatnonzero(np.diff(gallery_table.hashes) == 0).tolist() if lookup_path is None else []
    )
    for i in duplicated:  # only older Parquet tables are checked here; `index` refuses duplicates itself
        a, b = (int(gallery_table.hash_rows[j]) for j in (i, i + 1))
        if gallery_table.ids[a].as_py() == gallery_table.ids[b].as_py():
            raise BundleError(f"{ids_path}: duplicate ids, e.g. {gallery_table.ids[a].as_py()!r}")
    return gallery_table
