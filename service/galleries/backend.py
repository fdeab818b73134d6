"""What the service asks of a gallery, whatever engine holds it (FAISS in the process today; a vector
database such as Milvus later): search with filters, get by id, upsert, delete, count, health.

Vectors cross this interface raw, in the modality's own space; each backend applies the gallery's
centring and L2 normalisation itself, so scores are the same centred cosines everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from latent_bridge.service.bundle.manifest import GallerySpec
from latent_bridge.service.errors import EffortOutOfRange, InvalidWrite, UnknownPayloadColumn
from latent_bridge.service.galleries.table import Where

Matrix = np.ndarray


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    sample: str
    payload: dict[str, Any]


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
    """One payload object per written id (empty ones when none is given); ``InvalidWrite`` otherwise."""
    if payload is None:
        return [{} for _ in range(n)]
    if len(payload) != n:
        raise InvalidWrite(f"{len(payload)} payload objects for {n} ids; give one per id (or none)")
    return payload


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
