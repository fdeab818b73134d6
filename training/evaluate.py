"""Held-out metrics of a translation: cosine to the true partner, cycle cosine, and cross-modal retrieval.

Retrieval ranks the gallery (every held-out row of the target modality) by cosine after subtracting the
gallery's mean, which is exactly how the service's FAISS galleries score. A query's rank is that of its
best-placed true partner (rows sharing its `sample`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from latent_bridge.service.manifest import EdgeMetrics
from latent_bridge.training.datasets.reader import ModalityData, shared_samples
from latent_bridge.training.datasets.splits import paired_rows

Translate = Callable[[np.ndarray], np.ndarray]


def centred_unit(x: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Rows minus ``mean`` (their own mean when None), scaled to unit norm."""
    c = x - (x.mean(axis=0) if mean is None else mean)
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = (a * b).sum(axis=1)
    return num / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def ranks(queries: np.ndarray, q_samples: np.ndarray, gallery: np.ndarray, g_samples: np.ndarray) -> np.ndarray:
    """1-based rank of the first true partner of each query in the centred-cosine gallery ordering."""
    g = centred_unit(gallery)
    q = centred_unit(queries, gallery.mean(axis=0))
    scores = q @ g.T
    relevant = q_samples[:, None] == g_samples[None, :]
    if not relevant.any(axis=1).all():
        raise ValueError("every query needs at least one partner in the gallery")
    best = np.where(relevant, scores, -np.inf).max(axis=1)
    return 1 + (scores > best[:, None]).sum(axis=1)


def retrieval_summary(r: np.ndarray) -> dict[str, float]:
    return {
        "r1": float((r <= 1).mean()),
        "r5": float((r <= 5).mean()),
        "r10": float((r <= 10).mean()),
        "mrr": float((1.0 / r).mean()),
        "median_rank": float(np.median(r)),
    }


def recall_curve(r: np.ndarray, ks: list[int]) -> list[float]:
    return [float((r <= k).mean()) for k in ks]


def edge_metrics(
    sources: np.ndarray,
    queries: np.ndarray,
    q_samples: np.ndarray,
    gallery: np.ndarray,
    g_samples: np.ndarray,
    cycle: np.ndarray,
    source_mean: np.ndarray,
    paired: tuple[np.ndarray, np.ndarray],
    n_train: int,
) -> EdgeMetrics:
    """All manifest metrics of an edge A→B on held-out rows.

    sources: A rows; queries: f(sources); cycle: f_BA(f_AB(sources)), compared after centring by the
    source training mean (raw cosine is inflated in anisotropic spaces such as Whisper's); paired: f(x)
    and its true B partner, row by row, for the direct cosine.
    """
    g_mean = gallery.mean(axis=0)
    cos = row_cosine(paired[0] - g_mean, paired[1] - g_mean)
    cyc = row_cosine(cycle - source_mean, sources - source_mean)
    r = ranks(queries, q_samples, gallery, g_samples)
    return EdgeMetrics(
        cosine=float(cos.mean()),
        cycle_cosine=float(cyc.mean()),
        n_train=n_train,
        n_test=len(set(g_samples.tolist())),
        **retrieval_summary(r),
    )


def evaluate_translation(
    a: ModalityData,
    b: ModalityData,
    samples: set[str],
    f: Translate,
    g: Translate,
    source_mean: np.ndarray,
    n_train: int,
    part: str = "test",
) -> EdgeMetrics:
    """Metrics of f: A→B on the rows of ``samples`` (g: B→A closes the cycle); the B gallery is those rows."""
    samples = samples & shared_samples(a, b)
    if not samples:
        raise ValueError(f"no {part} samples shared by {a.name} and {b.name}; add data or change the split")
    qa, gb = a.rows_of(samples), b.rows_of(samples)
    ia, ib = paired_rows(a, b, samples)
    x = a.embeddings[qa]
    fx = f(x)
    return edge_metrics(
        sources=x,
        queries=fx,
        q_samples=a.samples[qa],
        gallery=b.embeddings[gb],
        g_samples=b.samples[gb],
        cycle=g(fx),
        source_mean=source_mean,
        paired=(f(a.embeddings[ia]), b.embeddings[ib]),
        n_train=n_train,
    )
