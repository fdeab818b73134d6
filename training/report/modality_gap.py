"""The seeds' progress metrics of the modality gap: inter-modality distance and cluster separability.

Both compare rows of a source modality with rows of a target modality, before translation (raw source
rows, only where the two spaces have the same dimension) and after (translated rows, in the target's
space). Rows are unit-normalised and never centred: the gap *is* the offset between the modalities'
centres ("Mind the Gap", Liang et al. 2022), which centring would remove.

- distance: over paired rows (same ``sample``), the mean cosine distance ``1 - cos`` and mean Euclidean
  distance between the unit rows, and the distance between the two modalities' centres of unit rows;
- separability: the silhouette (cosine) of the modality labels over a bounded, balanced, seeded sample
  of rows: near 1 when the modalities form separate clusters, near 0 when they are mixed.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import silhouette_score

SILHOUETTE_ROWS = 1000  # per modality: the silhouette costs O(n²) distances


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def distance(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Distances between paired rows ``x[i]`` and ``y[i]`` (same dimension), and between the two centres."""
    if x.shape != y.shape:
        raise ValueError(f"paired rows need the same shape, got {x.shape} and {y.shape}")
    ux, uy = unit_rows(x), unit_rows(y)
    return {
        "cosine_distance": float(1.0 - (ux * uy).sum(axis=1).mean()),
        "euclidean": float(np.linalg.norm(ux - uy, axis=1).mean()),
        "centroid_gap": float(np.linalg.norm(ux.mean(axis=0) - uy.mean(axis=0))),
    }


def separability(x: np.ndarray, y: np.ndarray, seed: int = 0, max_rows: int = SILHOUETTE_ROWS) -> float:
    """Silhouette (cosine) of the labels 'x' and 'y' over at most ``max_rows`` rows of each, drawn with ``seed``."""
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"both modalities must live in one space, got dims {x.shape[1]} and {y.shape[1]}")
    rng = np.random.default_rng(seed)
    n = min(len(x), len(y), max_rows)
    if n < 2:
        raise ValueError("the silhouette needs at least 2 rows of each modality")
    xs, ys = x[rng.choice(len(x), n, replace=False)], y[rng.choice(len(y), n, replace=False)]
    labels = np.repeat([0, 1], n)
    return float(silhouette_score(unit_rows(np.vstack([xs, ys])), labels, metric="cosine"))


def gap_metrics(source: np.ndarray, translated: np.ndarray, target: np.ndarray, paired: tuple[np.ndarray, np.ndarray],
                seed: int = 0) -> dict[str, dict[str, float] | None]:
    """Distance and separability before translation (None when the dimensions differ) and after.

    source: source rows; translated: those rows translated into the target space; target: target rows;
    paired: row indices (into source/translated, into target) of the true pairs.
    """
    i, j = paired
    after = distance(translated[i], target[j]) | {"silhouette": separability(translated, target, seed)}
    before = None
    if source.shape[1] == target.shape[1]:
        before = distance(source[i], target[j]) | {"silhouette": separability(source, target, seed)}
    return {"before": before, "after": after}
