"""Held-out metrics of a translation: cosine to the true partner, cycle cosine, and cross-modal retrieval.

Retrieval ranks the gallery (every held-out row of the target modality) by cosine after subtracting the
gallery's mean, with the engine's own scoring (``service/engine/scoring.py``), exactly as galleries score.
A query's rank is that of its best-placed true partner (rows sharing its `sample`). Ties and non-finite
scores count against the model: a row that scores as well as the partner ranks above it, and a query with
a non-finite score ranks last, so a constant or NaN map scores R@1 = 0, never 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from latent_bridge.service.bundle.manifest import EdgeMetrics, MetricSource
from latent_bridge.service.engine.scoring import ranks
from latent_bridge.training.datasets.reader import ModalityData, shared_samples
from latent_bridge.training.datasets.splits import paired_rows

Translate = Callable[[np.ndarray], np.ndarray]
FOLD_MEANS = ("cosine", "cycle_cosine", "r1", "r5", "r10", "mrr", "median_rank")


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = (a * b).sum(axis=1)
    return num / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def retrieval_summary(r: np.ndarray) -> dict[str, float]:
    return {
        "r1": float((r <= 1).mean()),
        "r5": float((r <= 5).mean()),
        "r10": float((r <= 10).mean()),
        "mrr": float((1.0 / r).mean()),
        "median_rank": float(np.median(r)),
    }


def _finite_or_worst(cos: np.ndarray) -> np.ndarray:
    """A non-finite cosine counts as the worst one, -1."""
    return np.where(np.isfinite(cos), cos, -1.0)


def mean_metrics(folds: list[EdgeMetrics], source: MetricSource = "cross_validation") -> EdgeMetrics:
    """Cross-validated metrics: the mean over folds; n_test counts every scored sample once."""
    means = {k: float(np.mean([getattr(m, k) for m in folds])) for k in FOLD_MEANS}
    return EdgeMetrics(
        **means,
        n_train=round(float(np.mean([m.n_train for m in folds]))),
        n_test=sum(m.n_test for m in folds),
        source=source,
    )


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
    source: MetricSource = "test",
) -> EdgeMetrics:
    """All manifest metrics of an edge A→B on held-out rows.

    sources: A rows; queries: f(sources); cycle: f_BA(f_AB(sources)), compared after centring by the
    source training mean (raw cosine is inflated in anisotropic spaces such as Whisper's); paired: f(x)
    and its true B partner, row by row, for the direct cosine.
    """
    g_mean = gallery.mean(axis=0)
    with np.errstate(invalid="ignore", over="ignore"):
        cos = _finite_or_worst(row_cosine(paired[0] - g_mean, paired[1] - g_mean))
        cyc = _finite_or_worst(row_cosine(cycle - source_mean, sources - source_mean))
    r = ranks(queries, q_samples, gallery, g_samples)
    return EdgeMetrics(
        cosine=float(cos.mean()),
        cycle_cosine=float(cyc.mean()),
        n_train=n_train,
        n_test=len(set(g_samples.tolist())),
        source=source,
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
    source: MetricSource = "test",
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
        source=source,
    )
