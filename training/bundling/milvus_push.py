"""Push a built gallery into a Milvus collection (``latent-bridge index --backend milvus``).

The rows come from the gallery the bundle just wrote, opened through the service's own ``Gallery``: its ids,
samples, payload and raw rows, centred and normalised by the same mean, so Milvus' inner products are the
centred cosines FAISS serves. The index type follows the FAISS gallery's (flat → FLAT, hnsw → HNSW with the
same M, ivf and ivf-pq → IVF_FLAT with the same number of lists); the search effort is tuned on the
collection afterwards (``indexing``), since Milvus trains its own lists.
An existing collection of the same name is dropped first: it belongs to the bundle being rebuilt.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from latent_bridge.service.bundle.manifest import GallerySpec, MilvusCollection, MilvusIndexType
from latent_bridge.service.galleries.faiss_gallery import Gallery
from latent_bridge.service.galleries.milvus_gallery import GRPC_OPTIONS
from latent_bridge.training.bundling.galleries import HNSW_EF_CONSTRUCTION, HNSW_M, GalleryDataError

BATCH = 2000
MAX_RAW_DIM = 4096  # Milvus arrays hold at most 4096 elements (the raw row is an array field)
MAX_TEXT = 512


@dataclass(frozen=True)
class MilvusTarget:
    uri: str
    token: str | None = None
    prefix: str = "latent_bridge_"
    timeout: float = 60.0


def collection_name(prefix: str, bundle: str, modality: str) -> str:
    """``<prefix><bundle>_<modality>``, with every character Milvus refuses replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}{bundle}_{modality}")[:255]


def milvus_index(gallery: Gallery) -> tuple[MilvusIndexType, dict[str, int]]:
    kind = gallery.spec.index_type
    if kind == "flat":
        return "FLAT", {}
    if kind == "hnsw":
        return "HNSW", {"M": HNSW_M, "efConstruction": max(HNSW_EF_CONSTRUCTION, 64)}
    return "IVF_FLAT", {"nlist": int(getattr(gallery.inner, "nlist", 1))}


def _client(target: MilvusTarget) -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise GalleryDataError("--backend milvus needs pymilvus: pip install 'latent-bridge[milvus]'") from exc
    try:
        return MilvusClient(uri=target.uri, token=target.token or "", timeout=target.timeout, grpc_options=GRPC_OPTIONS)
    except Exception as exc:  # pymilvus raises its own types for an unreachable server
        raise GalleryDataError(f"Milvus at {target.uri} is unreachable: {exc}") from exc


def _create(client: Any, name: str, dim: int, index_type: str, params: dict[str, int]) -> None:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_TEXT)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("raw", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=dim)
    schema.add_field("sample", DataType.VARCHAR, max_length=MAX_TEXT)
    schema.add_field("payload", DataType.JSON)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=params)
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")


def _payload(record: dict[str, Any]) -> dict[str, Any]:
    return {c: v for c, v in record.items() if v is not None}


def push_gallery(
    gallery: Gallery, bundle_name: str, target: MilvusTarget, progress: Callable[[int], None] | None = None
) -> GallerySpec:
    """Write ``gallery``'s rows into its collection; return its spec naming the collection."""
    if gallery.dim > MAX_RAW_DIM:
        raise GalleryDataError(f"{gallery.modality}: {gallery.dim}-d rows; Milvus arrays hold at most {MAX_RAW_DIM}")
    name = collection_name(target.prefix, bundle_name, gallery.modality)
    index_type, params = milvus_index(gallery)
    client = _client(target)
    try:
        if client.has_collection(name):
            client.drop_collection(name)
        _create(client, name, gallery.dim, index_type, params)
        for start in range(0, gallery.size, BATCH):
            rows = np.arange(start, min(start + BATCH, gallery.size))
            raw = np.concatenate([gallery.vector(int(r)) for r in rows]) if gallery.vectors is None else np.asarray(
                gallery.vectors[rows], np.float32
            )
            units = gallery.units(raw)
            records = gallery.table.records(rows.tolist())
            data = [
                {"id": item, "vector": units[i].tolist(), "raw": raw[i].tolist(), "sample": sample or "",
                 "payload": _payload(payload)}
                for i, (item, sample, payload) in enumerate(records)
            ]
            client.insert(name, data=data)
            if progress is not None:
                progress(len(rows))
        client.flush(name)
        client.load_collection(name)
    finally:
        client.close()
    mean = None if gallery.mean is None else [float(v) for v in gallery.mean]
    collection = MilvusCollection(
        name=name, index_type=index_type, index_params=params, mean=mean, payload=gallery.payload_columns()
    )
    return gallery.spec.model_copy(update={"milvus": collection})
