"""A modality's gallery in FAISS, in the process: the bundle's immutable base plus run-time writes.

The base is what ``latent-bridge index`` (or training) wrote: a FAISS index over centred, unit-norm rows
(exact, HNSW, IVF or IVF-PQ), the ids and payload as memory-mapped Arrow columns (``gallery_table.py``)
and the raw embeddings as a memory-mapped ``.npy`` (exact query-by-id; exact re-scoring). Writes made
while serving go first to the gallery's log (``writelog.py``, fsynced), then to a small exact delta index;
a replaced or deleted base row is masked out of every search. ``latent-bridge compact`` folds the log
into a new bundle. Scores are cosines after the gallery's own centring, what training's metrics rank by.

Searches never wait for the base: it is immutable. The delta and the mask change under a short lock,
which searches take only to read the delta, so a search sees every write acknowledged before it began.
"""

from __future__ import annotations

import mmap
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
from latent_bridge.service.bundle.manifest import BundleError, GallerySpec, Manifest
from latent_bridge.service.errors import (
    InvalidWrite,
    UnknownItem,
    UnknownPayloadColumn,
    WritesUnavailable,
    echo,
)
from latent_bridge.service.galleries.backend import (
    FILTERED_EF_MAX,
    GalleryBackend,
    Hit,
    Matrix,
    Pool,
    SearchOptions,
    WriteResult,
    centred_units,
    check_where_values,
    complete,
    payload_per_id,
    search_effort,
    unknown_column,
)
from latent_bridge.service.galleries.table import GalleryTable, Where, jsonable, open_table, payload_mask
from latent_bridge.service.galleries.writelog import Record, WriteLog, writes_dir

EMBEDDING_COLUMN = "embedding"
# A filtered search that leaves at most this many base rows scores them exactly instead of asking the ANN
# index to skip the rest (HNSW recall falls when most of the graph is filtered away).
EXACT_SUBSET_MAX = 20_000
_INDEX_CLASSES: dict[str, tuple[type, ...]] = {
    "flat": (faiss.IndexFlat,),
    "hnsw": (faiss.IndexHNSW,),
    "ivf": (faiss.IndexIVFFlat,),
    "ivf-pq": (faiss.IndexIVFPQ,),
}


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


def _payload_table(payload: Sequence[Mapping[str, Any]], types: Mapping[str, pa.DataType]) -> pa.Table:
    """Written items' payload as Arrow columns of the gallery's types (a column whose stored values do not
    convert, e.g. timestamps kept as ISO strings, as strings), for ``payload_mask``."""
    columns = {}
    for column, kind in types.items():
        values = [p.get(column) for p in payload]
        try:
            columns[column] = pa.array(values, type=kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            columns[column] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.table(columns)


def _selector(mask: np.ndarray) -> tuple[Any, np.ndarray]:
    """A FAISS selector over ``mask`` and the bit array it points into (keep both alive while searching)."""
    bits = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits)), bits


class Delta:
    """Items written at run time: raw rows, their centred unit rows in an exact index, ids and payload (as
    Python objects, and as Arrow columns built on demand for filters)."""

    def __init__(self, dim: int, types: Mapping[str, pa.DataType]) -> None:
        self.index = faiss.IndexFlatIP(dim)
        self.raw = np.zeros((0, dim), np.float32)
        self.alive = np.zeros(0, bool)
        self.ids: list[str] = []
        self.payload: list[dict[str, Any]] = []
        self.slots: dict[str, int] = {}
        self.live = 0
        self.longest_id = 0  # UTF-8 bytes: a longer id cannot be here
        self.types = dict(types)
        self._table: tuple[int, pa.Table] | None = None  # the payload of the first n slots as Arrow columns

    def _grow(self, extra: int) -> None:
        n = len(self.ids)
        if n + extra <= len(self.raw):
            return
        capacity = max(1024, 2 * (n + extra))
        raw = np.zeros((capacity, self.raw.shape[1]), np.float32)
        raw[:n] = self.raw[:n]
        alive = np.zeros(capacity, bool)
        alive[:n] = self.alive[:n]
        self.raw, self.alive = raw, alive

    def add(self, ids: Sequence[str], raw: Matrix, units: Matrix, payload: Sequence[dict[str, Any]]) -> None:
        for item in ids:
            self.kill(item)
        start = len(self.ids)
        self._grow(len(ids))
        self.raw[start : start + len(ids)] = raw
        self.alive[start : start + len(ids)] = True
        self.index.add(units)
        self.ids.extend(ids)
        self.payload.extend(payload)
        self.slots.update((item, start + i) for i, item in enumerate(ids))
        self.live += len(ids)
        self.longest_id = max([self.longest_id, *(len(item.encode("utf-8", "surrogatepass")) for item in ids)])

    def kill(self, item: str) -> bool:
        slot = self.slots.pop(item, None)
        if slot is None:
            return False
        self.alive[slot] = False
        self.live -= 1
        return True

    def payload_columns(self, n: int) -> pa.Table:
        """The payload of slots ``0..n`` as Arrow columns; extends the cached table by the slots written since
        it was built. Needs no lock: slots below ``n`` never change (a replaced item takes a new slot)."""
        cached = self._table
        if cached is not None and cached[0] >= n:
            return cached[1] if cached[0] == n else cached[1].slice(0, n)
        if cached is not None and cached[0] < n:
            added = _payload_table(self.payload[cached[0] : n], self.types)
            try:
                table = pa.concat_tables([cached[1], added])
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                table = _payload_table(self.payload[:n], self.types)
        else:
            table = _payload_table(self.payload[:n], self.types)
        if table.num_columns and table.column(0).num_chunks > 32:
            table = table.combine_chunks()
        self._table = (n, table)
        return table

    def matching(self, where: Where | None) -> np.ndarray | None:
        """The slots whose payload matches ``where`` (None: no filter), over the slots written so far: call it
        outside the gallery's lock, before ``search`` (which ANDs it with the live slots then)."""
        if not where:
            return None
        n = len(self.payload)  # a write extends ids, then payload: these n slots are complete
        return payload_mask(self.payload_columns(n), where) if n else np.zeros(0, bool)

    def search(self, q: Matrix, want: int, matching: np.ndarray | None) -> tuple[Matrix, np.ndarray] | None:
        """The ``want`` best live slots per query among ``matching`` (slots written after it was computed
        are left out of a filtered search: they were written after the search began)."""
        n = len(self.ids)
        if self.live == 0:
            return None
        mask = self.alive[:n].copy()
        if matching is not None:
            mask[len(matching) :] = False
            mask[: len(matching)] &= matching
        if not mask.any():
            return None
        if mask.all():
            scores, slots = self.index.search(q, min(want, n))
        else:
            selector, _bits = _selector(mask)
            params: Any = faiss.SearchParameters()
            params.sel = selector
            scores, slots = self.index.search(q, min(want, n), params=params)
        return scores, slots


class Gallery:
    """One modality's gallery: search, get by id, upsert, delete, count, health (``GalleryBackend``)."""

    in_process = True

    def __init__(
        self,
        spec: GallerySpec,
        index: faiss.Index,
        table: GalleryTable,
        vectors: Matrix | None,
        dim: int,
        index_path: Path,
    ) -> None:
        self.spec = spec
        self.modality = spec.modality
        self.dim = dim
        self.index = index  # keeps the C++ object (and its inner index) alive
        self.table = table
        self._check(index_path)
        wrapped: Any = index
        self.inner = faiss.downcast_index(wrapped.index)
        self.mean = _centring_mean(index)
        self.vectors = vectors
        self._alive: np.ndarray | None = None  # base rows still served; None while all are
        self._base_live = table.size
        self.delta = Delta(dim, table.payload_types)
        self._lock = threading.Lock()  # the delta and the base mask
        self._write_lock = threading.Lock()  # one write at a time, so the log's order is the applied order
        self.log: WriteLog | None = None
        self.mirrors: list[tuple[Gallery, Callable[[Matrix], Matrix]]] = []
        if isinstance(self.inner, faiss.IndexIVF):
            self.inner.make_direct_map()  # lets a stored item be read back by row

    # -- loading -----------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Rows of the base (what the bundle holds); ``count()`` is what is served now."""
        return self.table.size

    @property
    def payload(self) -> dict[str, pa.DataType]:
        return self.table.payload_types

    def payload_columns(self) -> list[str]:
        return list(self.table.payload_columns)

    def _check(self, index_path: Path) -> None:
        if self.index.d != self.dim:
            raise BundleError(
                f"{index_path}: index dimension {self.index.d}, modality {self.modality!r} has {self.dim}"
            )
        if self.index.ntotal != self.table.size:
            raise BundleError(
                f"{index_path}: {self.index.ntotal} vectors but {self.table.path.name} has {self.table.size} rows"
            )
        if self.spec.size != self.table.size:
            raise BundleError(
                f"{self.table.path}: {self.table.size} rows, the manifest says size {self.spec.size}"
            )
        inner = (
            faiss.downcast_index(self.index.index) if isinstance(self.index, faiss.IndexPreTransform) else None
        )
        expected = _INDEX_CLASSES[self.spec.index_type]
        if inner is None or not isinstance(inner, expected):
            found = type(inner or self.index).__name__
            raise BundleError(f"{index_path}: a {found}, the manifest says index_type {self.spec.index_type!r}")

    def mirror_into(self, other: Gallery, translate: Callable[[Matrix], Matrix]) -> None:
        """Apply every write, replayed or new, to ``other`` too, its vectors through ``translate``: a pivot
        gallery (these items in another space) then keeps holding exactly this gallery's items."""
        self.mirrors.append((other, translate))

    def attach_log(self, log: WriteLog) -> None:
        """Replay the gallery's logged writes, then log new ones there."""
        for record in log.replay():
            self._apply(record)
        self.log = log

    # -- reading -----------------------------------------------------------------------------------

    def count(self) -> int:
        return self._base_live + self.delta.live

    def live_base_rows(self) -> np.ndarray:
        """Rows of the base neither deleted nor replaced since the bundle was written."""
        alive = self._alive
        return np.arange(self.size) if alive is None else np.flatnonzero(alive)

    def live_items(self, chunk_rows: int) -> Iterator[tuple[pa.Array, Matrix, pa.Table]]:
        """The live items (base rows not deleted or replaced, then run-time writes) as chunks of ids, raw
        vectors and the other columns, in the base table's schema: what ``index`` and ``compact`` rebuild
        a gallery from."""
        base = self.live_base_rows()
        delta, table = self.delta, self.table.table
        slots = np.flatnonzero(delta.alive[: len(delta.ids)])
        keep = [c for c in table.column_names if c not in ("id", "embedding")]
        for start in range(0, len(base), chunk_rows):
            rows = base[start : start + chunk_rows]
            picked = table.take(pa.array(rows, pa.int64()))
            vectors = np.vstack([self.vector(int(r)) for r in rows]) if self.vectors is None else self.vectors[rows]
            yield picked.column("id").combine_chunks(), np.asarray(vectors, np.float32), picked.select(keep)
        if len(slots):
            written = {c: pa.array([delta.payload[s].get(c) for s in slots], table.schema.field(c).type)
                       for c in self.payload_columns()}
            if "sample" in table.column_names:
                written["sample"] = pa.array([""] * len(slots), table.schema.field("sample").type)
            yield (pa.array([delta.ids[s] for s in slots], pa.string()), delta.raw[slots],
                   pa.table({c: written[c] for c in keep}))

    def live_count(self) -> int:
        return len(self.live_base_rows()) + int(np.count_nonzero(self.delta.alive[: len(self.delta.ids)]))

    def health(self) -> dict[str, Any]:
        return {
            "backend": "faiss",
            "count": self.count(),
            "base": self.size,
            "written": self.delta.live,
            "removed": self.size - self._base_live,
            "log_records": 0 if self.log is None else self.log.records,
        }

    def units(self, x: Matrix) -> Matrix:
        """Raw rows → centred, unit-norm rows (what the index holds; a zero row stays zero, as in FAISS)."""
        return centred_units(x, self.mean)

    def unavailable(self) -> str | None:
        return None  # in the process: serves whenever the bundle is loaded

    def vector(self, row: int) -> Matrix:
        """The (1, d) raw vector of base row ``row`` (read back from the index in bundles without raw rows:
        the centred direction plus the mean; only the norm is lost)."""
        if self.vectors is not None:
            return np.asarray(self.vectors[row : row + 1], dtype=np.float32)
        out: Matrix = np.asarray(self.inner.reconstruct(int(row)), dtype=np.float32).reshape(1, -1)
        return out if self.mean is None else out + self.mean

    def _base_row(self, item: str) -> int | None:
        row = self.table.row_of(item)
        alive = self._alive
        return None if row is None or (alive is not None and not alive[row]) else row

    def _unknown(self, item: str) -> UnknownItem:
        examples = ", ".join(self.table.first_ids(3) or self.delta.ids[:3])
        return UnknownItem(
            f"no item {echo(item)} in the {self.modality!r} gallery (ids look like: {examples})", modality=self.modality
        )

    def get(self, item: str) -> tuple[Hit, Matrix]:
        if len(item) > max(self.table.longest_id, self.delta.longest_id):  # at least a byte per character
            raise self._unknown(item)
        with self._lock:
            slot = self.delta.slots.get(item)
            if slot is not None:
                hit = Hit(item, 1.0, "", dict(self.delta.payload[slot]))
                return hit, self.delta.raw[slot : slot + 1].copy()
        row = self._base_row(item)
        if row is None:
            raise self._unknown(item)
        (record,) = self.table.records([row])
        return Hit(record[0], 1.0, record[1], record[2]), self.vector(row)

    def vectors_of(self, ids: Sequence[str]) -> Matrix:
        return np.concatenate([self.get(item)[1] for item in ids]) if ids else np.zeros((0, self.dim), np.float32)

    def row_of(self, item: str) -> int:
        row = self._base_row(item)
        if row is None:
            raise self._unknown(item)
        return row

    # -- search ------------------------------------------------------------------------------------

    def check_where(self, where: Where | None) -> None:
        check_where_values(where)
        for column in where or {}:
            if column not in self.table.payload_types:
                raise UnknownPayloadColumn(
                    f"the {self.modality!r} gallery has no payload column {column!r}; "
                    f"columns: {self.payload_columns()}",
                    columns=self.payload_columns(),
                )

    def _params(self, selector: Any, effort: int | None, fraction: float) -> Any:
        """Search parameters for one call: effort (raised when a filter leaves a fraction of the rows)."""
        engine: Any = faiss  # the stubs lack the search-parameter classes of FAISS ≥ 1.7.3
        params: Any
        if isinstance(self.inner, faiss.IndexHNSW):
            ef = effort or int(self.inner.hnsw.efSearch)
            params = engine.SearchParametersHNSW()
            params.efSearch = min(int(ef / fraction), max(ef, FILTERED_EF_MAX))
        elif isinstance(self.inner, faiss.IndexIVF):
            nprobe = effort or int(self.inner.nprobe)
            params = engine.SearchParametersIVF()
            params.nprobe = min(int(nprobe / fraction), int(self.inner.nlist))
        else:
            params = engine.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params

    def _exact(self, q: Matrix, want: int, rows: np.ndarray) -> tuple[Matrix, np.ndarray]:
        """Score ``rows`` exactly (raw rows re-centred and normalised); the ``want`` best per query."""
        if self.vectors is not None:
            units = self.units(self.vectors[np.sort(rows)])
            rows = np.sort(rows)
        else:
            units = self.inner.reconstruct_batch(rows.astype(np.int64))
        scores = q @ units.T
        take = min(want, len(rows))
        if take == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        best = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
        best = np.take_along_axis(best, order, axis=1)
        return np.take_along_axis(scores, best, axis=1), rows[best]

    def _search_base(
        self, q: Matrix, want: int, mask: np.ndarray | None, effort: int | None
    ) -> tuple[Matrix, np.ndarray]:
        n = self.size
        if n == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        fraction = 1.0
        selector: Any = None
        bits = None
        if mask is not None:
            selected = int(np.count_nonzero(mask))
            if selected <= EXACT_SUBSET_MAX or self.spec.index_type == "flat":
                return self._exact(q, want, np.flatnonzero(mask))
            fraction = selected / n
            selector, bits = _selector(mask)
        rerank = self.spec.search.rerank if self.vectors is not None else 1
        fetch = min(n, want * rerank)
        scores, rows = self.inner.search(q, fetch, params=self._params(selector, effort, fraction))
        del bits
        if rerank > 1:
            return self._rerank(q, want, rows)
        return scores, rows

    def _rerank(self, q: Matrix, want: int, rows: np.ndarray) -> tuple[Matrix, np.ndarray]:
        out_scores = np.full((len(q), want), -np.inf, np.float32)
        out_rows = np.full((len(q), want), -1, np.int64)
        for i, candidates in enumerate(rows):
            found = candidates[candidates >= 0]
            scores, best = self._exact(q[i : i + 1], want, found)
            out_scores[i, : best.shape[1]], out_rows[i, : best.shape[1]] = scores[0], best[0]
        return out_scores, out_rows

    def _base_mask(self, where: Where | None) -> np.ndarray | None:
        alive = self._alive
        if not where:
            return None if alive is None else alive.copy()
        mask = self.table.mask(where)
        return mask if alive is None else mask & alive

    def search(self, x: Matrix, k: int, options: SearchOptions | None = None) -> list[list[Hit]]:
        """The ``k`` best live items per raw query row, best first (base and run-time writes merged)."""
        return complete(self.pools(x, k, options, ids=False), self.table.records)

    def pools(self, x: Matrix, k: int, options: SearchOptions | None = None, ids: bool = True) -> list[Pool]:
        """``search``'s candidates as arrays, records not yet read (``complete`` reads them); ``ids``: read
        the candidates' ids too (what fusion matches items by). Exclusion needs them, whatever ``ids``."""
        o = options or SearchOptions()
        self.check_where(o.where)
        effort = search_effort(self.spec, o.effort)
        q = self.units(x)
        want = k + (1 if o.exclude else 0)
        base_scores, base_rows = self._search_base(q, want, self._base_mask(o.where), effort)
        known: dict[int, tuple[str, str, dict[str, Any]]] = {}
        written: list[tuple[np.ndarray, np.ndarray]] = []
        matching = self.delta.matching(o.where)  # outside the lock: writes never wait on a filter
        with self._lock:
            found = self.delta.search(q, want, matching)
            if found is not None:
                for scores, slots in zip(*found, strict=True):
                    live = slots >= 0
                    written.append((scores[live], -1 - slots[live]))
                    for slot in slots[live].tolist():
                        known[slot] = (self.delta.ids[slot], "", dict(self.delta.payload[slot]))
        pools = []
        for i, (scores, rows) in enumerate(zip(base_scores, base_rows, strict=True)):
            live = rows >= 0
            all_scores, all_rows = scores[live].astype(np.float64), rows[live].astype(np.int64)
            if written:
                all_scores = np.concatenate([all_scores, written[i][0].astype(np.float64)])
                all_rows = np.concatenate([all_rows, written[i][1].astype(np.int64)])
                order = np.argsort(-all_scores, kind="stable")
                all_scores, all_rows = all_scores[order], all_rows[order]
            pools.append(Pool(all_scores, all_rows, None, known))
        if not (ids or o.exclude):
            return [Pool(p.scores[:k], p.rows[:k], None, known) for p in pools]
        names = self.table.ids_of(np.concatenate([p.rows[p.rows >= 0] for p in pools]))
        out, at = [], 0
        for i, p in enumerate(pools):
            if known:
                pool_ids = []
                for r in p.rows.tolist():
                    pool_ids.append(names[at] if r >= 0 else known[-1 - r][0])
                    at += r >= 0
            else:
                pool_ids, at = names[at : at + len(p)], at + len(p)
            skip = o.exclude[i] if o.exclude else None
            if skip is None or skip not in pool_ids:
                out.append(Pool(p.scores[:k], p.rows[:k], pool_ids[:k], known))
            else:
                keep = np.array([n for n, item in enumerate(pool_ids) if item != skip][:k], np.intp)
                out.append(Pool(p.scores, p.rows, pool_ids, known).take(keep))
        return out

    # -- writes ------------------------------------------------------------------------------------

    def _check_payload(self, n: int, payload: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
        payload = payload_per_id(n, payload)
        columns = sorted({c for p in payload for c in p})
        for column in columns:
            kind = self.table.payload_types.get(column)
            if kind is None:
                raise unknown_column(self.modality, column, self.payload_columns())
            try:
                pa.array([p.get(column) for p in payload], type=kind)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise InvalidWrite(f"payload column {column!r} holds {kind} values; {exc}") from exc
        return [{c: jsonable(p.get(c)) for c in self.payload_columns()} for p in payload]

    def _require_log(self) -> WriteLog:
        if self.log is None:
            raise WritesUnavailable(f"the {self.modality!r} gallery was opened read-only")
        return self.log

    def upsert(
        self, ids: Sequence[str], vectors: Matrix, payload: Sequence[Mapping[str, Any]] | None
    ) -> WriteResult:
        ids = list(ids)
        if len(ids) != len(vectors):
            raise InvalidWrite(f"{len(ids)} ids for {len(vectors)} vectors; give one id per vector")
        if len(set(ids)) != len(ids):
            raise InvalidWrite("an id appears twice in one write")
        if any(not item for item in ids):
            raise InvalidWrite("ids must be non-empty strings")
        rows = self._check_payload(len(ids), payload)
        with self._write_lock:
            self._require_log().append(Record("upsert", ids, rows, np.asarray(vectors, np.float32)))
            self._upsert(ids, vectors, rows)
        return WriteResult(len(ids), count=self.count())

    def delete(self, ids: Sequence[str]) -> WriteResult:
        with self._write_lock:
            log = self._require_log()
            present = [i for i in dict.fromkeys(ids) if i in self.delta.slots or self._base_row(i) is not None]
            if present:
                log.append(Record("delete", present))
                self._delete(present)
        missing = [item for item in ids if item not in set(present)]
        return WriteResult(len(present), missing=missing, count=self.count())

    def _apply(self, record: Record) -> None:
        if record.op == "upsert" and record.vectors is not None:
            self._upsert(record.ids, record.vectors, record.payload or [{} for _ in record.ids])
        elif record.op == "delete":
            self._delete(record.ids)

    def _tombstone(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        alive = self._alive if self._alive is not None else np.ones(self.size, bool)
        self._base_live -= int(np.count_nonzero(alive[rows]))
        alive[rows] = False
        self._alive = alive

    def _upsert(self, ids: Sequence[str], vectors: Matrix, payload: Sequence[dict[str, Any]]) -> None:
        units = self.units(vectors)
        rows = self.table.rows_of(ids)
        with self._lock:
            self._tombstone(rows)
            self.delta.add(ids, np.asarray(vectors, np.float32), units, payload)
        for other, translate in self.mirrors:
            other._upsert(ids, translate(np.asarray(vectors, np.float32)), payload)

    def _delete(self, ids: Sequence[str]) -> None:
        rows = self.table.rows_of(ids)
        with self._lock:
            self._tombstone(rows)
            for item in ids:
                self.delta.kill(item)
        for other, _ in self.mirrors:
            other._delete(ids)


def _random_access(vectors: np.ndarray) -> None:
    """Rows are read a few at a time, at random (query by id, re-scoring): without this hint the kernel
    reads around every page fault and the whole file ends up resident."""
    mapped = getattr(vectors, "_mmap", None)
    advice = getattr(mmap, "MADV_RANDOM", None)
    if mapped is not None and advice is not None:
        mapped.madvise(advice)


def _raw_vectors(spec: GallerySpec, bundle_dir: Path, table: GalleryTable, dim: int) -> Matrix | None:
    """The raw embeddings: a memory-mapped .npy, or (older bundles) the id table's embedding column."""
    if spec.vectors_file is not None:
        path = bundle_dir / spec.vectors_file
        try:
            vectors: Matrix = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise BundleError(f"{path}: not a readable .npy array ({exc})") from exc
        if vectors.dtype != np.float32 or vectors.shape != (table.size, dim):
            raise BundleError(f"{path}: {vectors.dtype} {vectors.shape}, expected float32 ({table.size}, {dim})")
        _random_access(vectors)
        return vectors
    if EMBEDDING_COLUMN not in table.table.column_names:
        return None
    column = table.table.column(EMBEDDING_COLUMN)
    try:
        stored = np.asarray(column.combine_chunks().flatten().to_numpy(zero_copy_only=False), np.float32)
        stored = stored.reshape(table.size, -1)
    except (pa.ArrowInvalid, ValueError) as exc:
        raise BundleError(f"{table.path}: column {EMBEDDING_COLUMN!r} is not a float matrix ({exc})") from exc
    if stored.shape != (table.size, dim):
        raise BundleError(
            f"{table.path}: column {EMBEDDING_COLUMN!r} has shape {stored.shape}, expected ({table.size}, {dim})"
        )
    return stored


def open_gallery(spec: GallerySpec, bundle_dir: Path, manifest: Manifest, replay: bool = True) -> Gallery:
    """Open one gallery of a bundle and replay its run-time writes (``replay``), ready for new ones."""
    index_path = bundle_dir / spec.index_file
    index = read_index(index_path)
    lookup = None if spec.lookup_file is None else bundle_dir / spec.lookup_file
    table = open_table(bundle_dir / spec.ids_file, lookup)
    dim = manifest.modality(spec.modality).dim
    gallery = Gallery(spec, index, table, _raw_vectors(spec, bundle_dir, table, dim), dim, index_path)
    if replay:
        attach_writes(gallery, bundle_dir, manifest)
    return gallery


def attach_writes(gallery: Gallery, bundle_dir: Path, manifest: Manifest) -> None:
    """Replay the gallery's run-time writes from its log beside the bundle, and log new ones there."""
    gallery.attach_log(WriteLog(writes_dir(bundle_dir) / f"{gallery.modality}.log", manifest.name,
                                manifest.fingerprint))


def _conforms(gallery: Gallery) -> GalleryBackend:
    """mypy checks here that the FAISS gallery implements the backend interface."""
    return gallery
