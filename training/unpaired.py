"""Unpaired alignment: an orthogonal map between two embedding spaces whose rows share few or no samples.

A linear mini-vec2vec (Dar, arXiv 2510.02348). Spaces made by encoders of the same data share their
*relational* structure (which items are near which) even where their coordinates have nothing in
common, so:

1. each side is standardised (``SpaceStats``) and its rows cut to unit length;
2. starts: (a) k-means gives each side ``anchors`` centroids; the two anchor sets are matched by their
   similarity structure (each anchor's sorted similarity profile to its own side's anchors, a Hungarian
   assignment, then quadratic assignment over the whole matching); every row is described by its
   similarities to its side's matched anchors, and mutual nearest neighbours in that description are
   pseudo-pairs; (b) every row's sorted similarity profile against its own side's rows, which needs no
   matching at all (VecMap's start), its mutual nearest neighbours the pseudo-pairs; Procrustes on the
   pseudo-pairs is the first map;
3. refinement: translate, take mutual nearest neighbours by CSLS (hubs discounted), Procrustes again,
   until the map stops moving.

k-means can cut two spaces differently (then (a) fails and (b) carries), so (a) runs from several seeds;
each start is refined a few rounds, and the one whose translated rows sit closest to the other side's
rows is refined to the end. Where some samples *are* shared, their pairs enter every Procrustes step with
a weight (half the mass of the pseudo-pairs), and Procrustes on the pairs alone is one more start: the
semi-supervised mode. The map is orthogonal (semi-orthogonal across dimensions), so it folds into the
same affine export as the other linear kinds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from latent_bridge.training.translators import fit_linear
from scipy.optimize import linear_sum_assignment, quadratic_assignment
from sklearn.cluster import KMeans


@dataclass(frozen=True)
class AlignOptions:
    """The unpaired kind's knobs; the defaults suit a few thousand to a few hundred thousand rows per side."""

    anchors: int = 48  # k-means centroids per side, matched by their similarity structure
    restarts: int = 3  # k-means seeds tried; the best-fitting start is kept
    profile_rows: int = 1000  # own-side rows a row's sorted similarity profile is taken against
    profile_points: int = 200  # quantiles of that profile compared across sides
    probe_rounds: int = 4  # refinement rounds that score a start
    rounds: int = 30  # refinement rounds of the kept start (it stops earlier once the map settles)
    max_rows: int = 3000  # rows per side one round looks at (memory: max_rows² floats)
    csls_k: int = 10  # neighbourhood of CSLS's hubness terms
    pair_share: float = 0.5  # the true pairs' weight in Procrustes, as a share of the pseudo-pairs'
    tol: float = 1e-4  # the map has settled when it moves less than this (Frobenius, per dimension)
    seed: int = 0


@dataclass(frozen=True)
class Alignment:
    """The map on standardised rows (xs @ m ≈ ys) and how well the two sides fit under it."""

    m: np.ndarray
    score: float  # mean cosine of a translated row to its nearest row of the other side (and of true pairs)
    start: str  # which start won: "anchors:<seed>", "profiles" or "pairs"
    n_pseudo: int  # mutual-nearest-neighbour pairs of the last round


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def procrustes(xs: np.ndarray, ys: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Orthogonal Procrustes with per-row weights (a weight scales that row's share of the cross-covariance)."""
    return fit_linear("procrustes", xs if weights is None else xs * weights[:, None], ys)


def kmeans_anchors(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Unit-length k-means centroids of unit rows (spherical enough for matching)."""
    km = KMeans(n_clusters=min(k, len(x)), n_init=1, random_state=seed).fit(x)
    return unit(km.cluster_centers_)


def match_anchors(ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """``order[i]``: the B anchor matched to A anchor i, by relational structure alone.

    Sorted similarity profiles are invariant to how either side numbers its anchors, so a Hungarian
    assignment on their distances is a start; quadratic assignment (FAQ) then maximises the agreement of
    the two whole similarity matrices under the matching.
    """
    sa, sb = ca @ ca.T, cb @ cb.T
    pa, pb = -np.sort(-sa, axis=1), -np.sort(-sb, axis=1)
    cost = ((pa[:, None, :] - pb[None, :, :]) ** 2).sum(axis=2)
    _, start = linear_sum_assignment(cost)
    p0 = np.eye(len(cb))[start]
    # its own generator (FAQ starts from P0, so nothing random is drawn): not the NumPy global one
    options = {"maximize": True, "P0": p0, "rng": np.random.default_rng(0)}
    found = quadratic_assignment(sa, sb, method="faq", options=options)
    return np.asarray(found.col_ind)


def mutual_nn(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row/column index pairs that are each other's best match."""
    best_b = sim.argmax(axis=1)
    best_a = sim.argmax(axis=0)
    rows = np.flatnonzero(best_a[best_b] == np.arange(len(sim)))
    return rows, best_b[rows]


def csls(sim: np.ndarray, k: int) -> np.ndarray:
    """Cross-domain similarity local scaling: 2·cos minus each side's mean similarity to its k nearest."""
    k = max(1, min(k, sim.shape[0] - 1, sim.shape[1] - 1))
    ra = -np.partition(-sim, k, axis=1)[:, :k].mean(axis=1)
    rb = -np.partition(-sim, k, axis=0)[:k].mean(axis=0)
    return 2 * sim - ra[:, None] - rb[None, :]


@dataclass
class _Sides:
    """Unit rows of both sides (a sample of at most ``max_rows`` each) and the true pairs, if any."""

    xa: np.ndarray
    xb: np.ndarray
    pa: np.ndarray
    pb: np.ndarray

    def step(self, ia: np.ndarray, ib: np.ndarray, pair_share: float) -> np.ndarray:
        """Procrustes on pseudo-pairs (ia, ib), with the true pairs weighted in."""
        if not len(self.pa):
            return procrustes(self.xa[ia], self.xb[ib])
        w_pair = pair_share * max(len(ia), 1) / len(self.pa)
        weights = np.concatenate([np.ones(len(ia)), np.full(len(self.pa), w_pair)])
        return procrustes(np.vstack([self.xa[ia], self.pa]), np.vstack([self.xb[ib], self.pb]), weights)

    def score(self, m: np.ndarray) -> float:
        """Mean cosine of each translated A row to its nearest B row, averaged with the true pairs' cosine."""
        fit = float((unit(self.xa @ m) @ self.xb.T).max(axis=1).mean())
        if not len(self.pa):
            return fit
        return (fit + float((unit(self.pa @ m) * self.pb).sum(axis=1).mean())) / 2


def _sample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[np.sort(rng.choice(len(x), n, replace=False))]


def anchor_start(sides: _Sides, opts: AlignOptions, seed: int) -> np.ndarray:
    """The first map from one k-means seed: matched anchors, then pseudo-pairs in the anchors' description."""
    ca, cb = kmeans_anchors(sides.xa, opts.anchors, seed), kmeans_anchors(sides.xb, opts.anchors, seed)
    k = min(len(ca), len(cb))
    ca, cb = ca[:k], cb[:k]
    cb = cb[match_anchors(ca, cb)]
    ra, rb = sides.xa @ ca.T, sides.xb @ cb.T
    ra, rb = unit(ra - ra.mean(axis=0)), unit(rb - rb.mean(axis=0))
    ia, ib = mutual_nn(ra @ rb.T)
    xs, ys = np.vstack([sides.xa[ia], ca]), np.vstack([sides.xb[ib], cb])
    return _Sides(xs, ys, sides.pa, sides.pb).step(np.arange(len(xs)), np.arange(len(ys)), opts.pair_share)


def profile_start(sides: _Sides, opts: AlignOptions) -> np.ndarray:
    """The first map from every row's sorted similarity profile against its own side's rows.

    Sorting forgets which row each similarity is to, so the profile needs no correspondence at all: two
    samples of one distribution, rotated, give a row and its counterpart the same profile (VecMap's
    initialisation, Artetxe et al. 2018). Mutual nearest profiles by CSLS are the pseudo-pairs.
    """
    found = []
    for x in (sides.xa, sides.xb):
        sims = -np.sort(-(x @ x[: opts.profile_rows].T), axis=1)
        points = np.linspace(0, sims.shape[1] - 1, min(opts.profile_points, sims.shape[1])).astype(int)
        profile = sims[:, points]
        found.append(unit(profile - profile.mean(axis=0)))
    ia, ib = mutual_nn(csls(found[0] @ found[1].T, opts.csls_k))
    return sides.step(ia, ib, opts.pair_share)


def refine(sides: _Sides, m: np.ndarray, rounds: int, opts: AlignOptions) -> tuple[np.ndarray, int]:
    """Mutual nearest neighbours by CSLS under the current map, then Procrustes, until the map settles."""
    n = 0
    for _ in range(rounds):
        ia, ib = mutual_nn(csls(unit(sides.xa @ m) @ sides.xb.T, opts.csls_k))
        new, n = sides.step(ia, ib, opts.pair_share), len(ia)
        moved = float(np.linalg.norm(new - m)) / np.sqrt(m.shape[0])
        m = new
        if moved < opts.tol:
            break
    return m, n


def align(xs: np.ndarray, ys: np.ndarray, pairs: tuple[np.ndarray, np.ndarray] | None = None,
          opts: AlignOptions | None = None) -> Alignment:
    """The orthogonal map xs → ys (standardised rows of each side, not paired) and its fit.

    ``pairs``: standardised rows of true pairs (A rows, B rows), row by row, if any.
    """
    opts = opts or AlignOptions()
    rng = np.random.default_rng(opts.seed)
    pa, pb = pairs if pairs is not None else (np.zeros((0, xs.shape[1])), np.zeros((0, ys.shape[1])))
    sides = _Sides(unit(_sample(xs, opts.max_rows, rng)), unit(_sample(ys, opts.max_rows, rng)), unit(pa), unit(pb))
    starts = {f"anchors:{opts.seed + r}": anchor_start(sides, opts, opts.seed + r) for r in range(opts.restarts)}
    starts["profiles"] = profile_start(sides, opts)
    if len(pa) >= 2:
        starts["pairs"] = procrustes(sides.pa, sides.pb)
    probed = {name: refine(sides, m, opts.probe_rounds, opts)[0] for name, m in starts.items()}
    best = max(probed, key=lambda name: sides.score(probed[name]))
    m, n = refine(sides, probed[best], opts.rounds, opts)
    return Alignment(m=m, score=sides.score(m), start=best, n_pseudo=n)
