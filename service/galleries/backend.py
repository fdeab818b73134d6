"""What the service asks of a gallery, whatever engine holds it (FAISS in the process today; a vector
database such as Milvus later): search with filters, get by id, upsert, delete, count, health.

Vectors cross this interface raw, in the modality's own space; each backend applies the gallery's
centring and L2 normalisation itself, so scores are the same centred cosines everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from latent_bridge.service.bundle.manifest import GallerySpec
from latent_bridge.service.errors import (
    EffortOutOfRange,
    InvalidFilter,
    InvalidId,
    InvalidWrite,
    UnknownPayloadColumn,
    echo,
)
from latent_bridge.service.galleries.table import Where, WhereValue, utf8_size

# A filtered search raises its effort by the share of rows the filter leaves, up to this (both backends).
FILTERED_EF_MAX = 4096
Matrix = npt.NDArray[np.float32]  # a batch of vectors, one per row: the one array type of every layer


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass(frozen=True)
class Hit:
    """One search result. ``row``: the item's row in the bundle's own files (what per-row terms computed at
    bundle time, such as CSLS's, are indexed by); None for an item written at run time or a backend that
    does not say. Not part of the HTTP answer."""

    id: str
    score: float
    sample: str
    payload: dict[str, Any]
    row: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Pool:
    """One query's candidates, best first, as arrays: fusion and CSLS rank a pool of ``POOL`` this way without
    a ``Hit`` per candidate (that cost more than the search itself); ``complete`` builds hits only for the
    candidates kept. ``rows``: the base row, or -1 - slot for an item whose record is in ``known`` (written
    at run time, or found by a backend that returns whole hits). ``ids``: None where the gallery was not
    asked for them (a plain search without exclusions reads them with the records)."""

    scores: npt.NDArray[np.float64]
    rows: npt.NDArray[np.int64]
    ids: list[str] | None
    known: Mapping[int, tuple[str, str, dict[str, Any]]]  # slot → (id, sample, payload)

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, picks: npt.NDArray[np.intp], scores: npt.NDArray[np.float64] | None = None) -> Pool:
        """The candidates at ``picks``, in that order, with new ``scores`` (else their own)."""
        ids = None if self.ids is None else [self.ids[i] for i in picks.tolist()]
        return Pool(self.scores[picks] if scores is None else scores, self.rows[picks], ids, self.known)

    def keys(self, by_row: bool) -> list[Any]:
        """What fusion matches candidates by: their ids, or (``by_row``, for two galleries whose base rows hold
        the same items) the base row, and the id of an item written at run time."""
        if not by_row:
            assert self.ids is not None, "ask the gallery for the pool's ids"
            return self.ids
        return [r if r >= 0 else self.known[-1 - r][0] for r in self.rows.tolist()]

    @staticmethod
    def of_hits(hits: Sequence[Hit]) -> Pool:
        """A pool of ready hits (a backend without ``pools``): every record is known."""
        return Pool(np.array([h.score for h in hits], np.float64), -1 - np.arange(len(hits), dtype=np.int64),
                    [h.id for h in hits], {i: (h.id, h.sample, h.payload) for i, h in enumerate(hits)})


BaseRecords = Callable[[Sequence[int]], list[tuple[str, str, dict[str, Any]]]]


def complete(pools: Sequence[Pool], records: BaseRecords | None, keep_rows: bool = True) -> list[list[Hit]]:
    """Every candidate of each pool as a ``Hit``: base rows' records read in one call for all pools
    (``records``: the gallery table's), the others from the pool. ``keep_rows``: the hits carry their base
    row (False for fused hits, which rank items of two galleries)."""
    rows = sorted({r for pool in pools for r in pool.rows.tolist() if r >= 0})
    base = dict(zip(rows, records(rows), strict=True)) if rows and records is not None else {}
    out = []
    for pool in pools:
        hits = []
        for score, r in zip(pool.scores.tolist(), pool.rows.tolist(), strict=True):
            item, sample, payload = base[r] if r >= 0 else pool.known[-1 - r]
            hits.append(Hit(item, score, sample, payload, r if keep_rows and r >= 0 else None))
        out.append(hits)
    return out


@dataclass(frozen=True)
class SearchOptions:
    """Per-request search options: payload filter, ids to leave out per query, search effort."""

    where: Where | None = None
    exclude: Sequence[str | None] | None = None
    effort: int | None = None


@dataclass(frozen=True)
class WriteResult:
    written: int
    missing: list[str] = field(default_factory=list)
    count: int = 0


def centred_units(x: Matrix, mean: Matrix | None) -> Matrix:
    """Raw rows → centred, unit-norm rows (what every backend stores and searches; a zero row stays zero)."""
    y = np.asarray(x, dtype=np.float32)
    if mean is not None:
        y = y - mean
    norms = np.linalg.norm(y, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Matrix = np.ascontiguousarray(y / norms, dtype=np.float32)
    return out


def payload_per_id(n: int, payload: Sequence[Mapping[str, Any]] | None) -> Sequence[Mapping[str, Any]]:
    """One payload object per written id (empty ones when none is given); ``InvalidWrite`` otherwise, and for
    a string value holding a NUL character (no file name, uri or caption has one; a file API refuses it)."""
    if payload is None:
        return [{} for _ in range(n)]
    if len(payload) != n:
        raise InvalidWrite(f"{len(payload)} payload objects for {n} ids; give one per id (or none)")
    for i, p in enumerate(payload):
        for column, value in p.items():
            if isinstance(value, str) and "\0" in value:
                raise InvalidWrite(f"payload column {echo(column)} of item {i} holds a NUL character", item=i)
    return payload


def check_ids(ids: Sequence[str], max_bytes: int, max_total: int) -> None:
    """``InvalidId`` unless every id is valid UTF-8 of at most ``max_bytes`` bytes, free of NUL characters,
    and all of them together at most ``max_total`` bytes: what bounds the cost of looking ids up (hashed
    byte by byte) before any lookup runs. The id itself is never quoted back."""
    total = 0
    for i, item in enumerate(ids):
        size = utf8_size(item) if len(item) <= max_bytes else len(item)  # a character is at least a byte
        if size is None:
            raise InvalidId(f"id {i} is not valid UTF-8 (it holds a lone surrogate)", index=i)
        if size > max_bytes:
            unit = "bytes" if len(item) <= max_bytes else "characters"
            raise InvalidId(f"id {i} has {size} {unit}; an id may have at most {max_bytes} bytes (UTF-8)",
                            index=i, limit=max_bytes, got=size)
        if "\0" in item:
            raise InvalidId(f"id {i} holds a NUL character", index=i)
        total += size
        if total > max_total:
            raise InvalidId(f"the ids of this request have more than {max_total} bytes (UTF-8) together; "
                            "send fewer ids per request", limit=max_total)


def _where_values(wanted: WhereValue | Sequence[WhereValue]) -> list[WhereValue]:
    return list(wanted) if isinstance(wanted, list | tuple) else [wanted]  # type: ignore[list-item]


def check_where_values(where: Where | None, max_values: int | None = None, max_value_bytes: int | None = None
                       ) -> None:
    """``InvalidFilter`` for a ``where`` value no backend can compare: an integer outside the 64-bit range
    (payload integers are int64 in Arrow and Milvus); and, where limits are given, more values than
    ``max_values`` in all or a string value over ``max_value_bytes`` (UTF-8)."""
    count = 0
    for column, wanted in (where or {}).items():
        values = _where_values(wanted)
        count += len(values)
        if max_values is not None and count > max_values:
            raise InvalidFilter(f"`where` lists more than {max_values} values; the limit is {max_values}",
                                limit=max_values)
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
                raise InvalidFilter(
                    f"a `where` value of column {echo(column)} is an integer outside the 64-bit range "
                    "[-2^63, 2^63 - 1]; no payload column holds it")
            if isinstance(value, str) and max_value_bytes is not None and len(value) > max_value_bytes // 4:
                size = utf8_size(value) if len(value) <= max_value_bytes else len(value)
                if size is None or size > max_value_bytes:
                    raise InvalidFilter(
                        f"a `where` value of column {echo(column)} is longer than {max_value_bytes} bytes (UTF-8) "
                        "or not valid UTF-8", limit=max_value_bytes)


def unknown_column(modality: str, column: str, columns: list[str]) -> UnknownPayloadColumn:
    """The error for a payload column the gallery does not have, naming those it has."""
    return UnknownPayloadColumn(
        f"the {modality!r} gallery has no payload column {column!r}; columns: {columns}", columns=columns
    )


def search_effort(spec: GallerySpec, effort: int | None) -> int | None:
    """The search effort of one request: the tuned value by default, else ``effort`` once it is within the
    tuned value and the gallery's limit (``EffortOutOfRange`` otherwise); None for exact galleries."""
    tuning = spec.search
    if effort is None or tuning.parameter is None:
        return tuning.value if tuning.parameter else None
    lowest, limit = tuning.value or 1, tuning.limit or tuning.value or 1
    if not lowest <= effort <= limit:
        raise EffortOutOfRange(
            f"effort ({tuning.parameter}) for the {spec.modality!r} gallery must be between its tuned "
            f"value {lowest} and {limit}, got {effort}",
            minimum=lowest,
            limit=limit,
            got=effort,
        )
    return effort


class GalleryBackend(Protocol):
    spec: GallerySpec
    modality: str
    dim: int
    mean: Matrix | None  # the centring mean (None: not centred)
    in_process: bool  # False: every call may wait on the network (never run it on the event loop)

    @property
    def size(self) -> int:
        """Items the bundle's index holds; ``count()`` is what is served now."""
        ...

    def count(self) -> int: ...

    def unavailable(self) -> str | None:
        """Why the gallery cannot serve now (None when it can); readiness reports it."""
        ...

    def check_where(self, where: Where | None) -> None:
        """``UnknownPayloadColumn`` when a filter names a column the gallery lacks."""
        ...

    def health(self) -> Mapping[str, Any]: ...

    def payload_columns(self) -> list[str]: ...

    def vectors_of(self, ids: Sequence[str]) -> Matrix:
        """The raw (n, dim) embeddings of stored items; ``UnknownItem`` names the first missing one."""
        ...

    def get(self, item: str) -> tuple[Hit, Matrix]:
        """A stored item (score 1) and its raw vector; ``UnknownItem`` when absent."""
        ...

    def search(self, x: Matrix, k: int, options: SearchOptions | None = None) -> list[list[Hit]]:
        """The ``k`` best items per raw query row, best first."""
        ...

    def upsert(self, ids: Sequence[str], vectors: Matrix, payload: Sequence[Mapping[str, Any]] | None) -> WriteResult:
        """Insert or replace items; durable when it returns."""
        ...

    def delete(self, ids: Sequence[str]) -> WriteResult:
        """Remove items (absent ids are listed, not an error); durable when it returns."""
        ...
