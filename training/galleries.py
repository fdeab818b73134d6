"""Build a modality's retrieval gallery: a FAISS inner-product index over centred, unit-norm rows.

The centring and normalisation live inside the index as pre-transforms, so the service searches raw
translated vectors and the scores are the same centred cosines that evaluation reports.
"""

from __future__ import annotations

import faiss
import numpy as np
from latent_bridge.service.manifest import IndexType


def build_index(vectors: np.ndarray, index_type: IndexType = "flat") -> faiss.Index:
    n, d = vectors.shape
    if index_type == "flat":
        inner: faiss.Index = faiss.IndexFlatIP(d)
    elif index_type == "hnsw":
        inner = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    elif index_type == "ivf":
        nlist = max(1, int(np.sqrt(n)))
        inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        inner.nprobe = min(nlist, 16)
    else:
        raise ValueError(f"unknown index type {index_type!r}")
    index = faiss.IndexPreTransform(inner)
    index.prepend_transform(faiss.NormalizationTransform(d, 2.0))
    index.prepend_transform(faiss.CenteringTransform(d))
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index.train(x)
    index.add(x)
    return index


def serialize(index: faiss.Index) -> bytes:
    return faiss.serialize_index(index).tobytes()
