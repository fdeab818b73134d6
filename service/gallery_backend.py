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
from latent_bridge.service.gallery_table import Where
from latent_bridge.service.manifest import GallerySpec

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


class GalleryBackend(Protocol):
    spec: GallerySpec
    modality: str
    dim: int

    def count(self) -> int: ...

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
