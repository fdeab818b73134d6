"""The unpaired kind as a training stage: selection's and fitting's counterparts for ``--kind unpaired``.

An unpaired edge is fitted on *every* row of each side (its own samples), not on pairs, so it has no
candidates to cross-validate; where the two sides do share samples (the semi-supervised mode) the same
folds as every other edge still score it honestly, each fold's map fitted without the fold's samples on
either side. With no shared sample nothing can be scored: the edge's metrics are zeros with
``n_test = 0`` (what the CLI prints as "not measured"), and the alignment's own fit is recorded in the
final fit's hyperparameters instead.
"""

from __future__ import annotations

import numpy as np
from latent_bridge.service.bundle.manifest import EdgeMetrics, FinalFit
from latent_bridge.training.candidates import Fitted, Pair, Samples, standardised_rows
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.splits import Fold
from latent_bridge.training.evaluate import mean_metrics
from latent_bridge.training.fitting import Final
from latent_bridge.training.selection import Choice, FoldData, Selection, score
from latent_bridge.training.translators import SpaceStats, affine_from_standardised, translate
from latent_bridge.training.unpaired import Alignment, AlignOptions, align

KIND = "unpaired"


def fit_unpaired(pair: Pair, samples: Samples, cfg: TrainConfig) -> tuple[Fitted, tuple[SpaceStats, SpaceStats],
                                                                           Alignment]:
    """Align each side's own rows of ``samples``; the pairs they share, if any, weigh in as anchors."""
    stats = pair.stats(samples)
    xs = stats[0].standardise(pair.a.embeddings[pair.a.rows_of(set(samples))])
    ys = stats[1].standardise(pair.b.embeddings[pair.b.rows_of(set(samples))])
    if not len(xs) or not len(ys):
        raise ValueError(f"edge {pair.name}: --kind unpaired needs rows on both sides, "
                         f"got {len(xs)} {pair.a.name} and {len(ys)} {pair.b.name} rows")
    paired = None
    if pair.shared(samples):
        pa, pb = standardised_rows(pair, samples, stats)
        paired = (pa, pb)
    found = align(xs, ys, paired, AlignOptions(seed=cfg.seed))
    sa, sb = stats
    fitted = Fitted(KIND, affine_from_standardised(found.m, sa, sb), affine_from_standardised(found.m.T.copy(), sb, sa))
    return fitted, stats, found


def unmeasured(cycle_cosine: float) -> EdgeMetrics:
    """Metrics of an edge no sample can score: zero retrieval, ``n_test = 0``."""
    return EdgeMetrics(cosine=0.0, cycle_cosine=cycle_cosine, r1=0.0, r5=0.0, r10=0.0, mrr=0.0, median_rank=0.0,
                       n_train=0, n_test=0, source="cross_validation")


def select_unpaired(pair: Pair, folds: list[Fold], cfg: TrainConfig) -> Selection:
    """Cross-validate the unpaired kind on the folds where the sides share validation samples."""
    scored, fits = [], []
    if pair.shared(frozenset().union(*(f.val for f in folds))):
        for fold in folds:
            fitted, stats, _ = fit_unpaired(pair, fold.train, cfg)
            fits.append((fitted.forward, fitted.backward))
            if pair.shared(fold.val):
                fd = FoldData(fold, stats, (), len(pair.shared(fold.train)))
                scored.append(score(pair, fitted, fd))
    metrics = ([mean_metrics([s[d] for s in scored]) for d in (0, 1)] if scored
               else [unmeasured(0.0), unmeasured(0.0)])  # refit fills in the cycle cosine
    choices = [Choice(KIND, {}, m, {KIND: m}) for m in metrics]
    selection = Selection(choices[0], choices[1])
    selection.folds = fits if len(fits) == len(folds) else []
    return selection


def cycle_cosine(pair: Pair, fitted: Fitted, stats: SpaceStats, samples: Samples) -> float:
    """Mean cosine between a row and its round trip A → B → A, both centred on A's mean."""
    x = pair.a.embeddings[pair.a.rows_of(set(samples))][:2000]
    back = translate(fitted.backward, translate(fitted.forward, x))
    a, b = x - stats.mean, back - stats.mean
    cos = (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(cos.mean())


def refit_unpaired(pair: Pair, usable: Samples, selection: Selection, cfg: TrainConfig) -> Final:
    """Fit on every usable row of both sides; record how well the alignment fits and which start won."""
    fitted, stats, found = fit_unpaired(pair, usable, cfg)
    for module, side in ((fitted.forward, pair.a), (fitted.backward, pair.b)):
        if not np.isfinite(translate(module, side.embeddings[:256])).all():
            raise ValueError(f"edge {pair.name}: the unpaired alignment gives non-finite outputs")
    for d, (p, st) in enumerate(((pair, stats[0]), (pair.reverse(), stats[1]))):
        choice = selection.choices()[d]
        if choice.metrics.n_test == 0:
            f = fitted if d == 0 else Fitted(KIND, fitted.backward, fitted.forward)
            choice.metrics = unmeasured(cycle_cosine(p, f, st, usable))
            choice.candidates = {KIND: choice.metrics}
    rows = (len(pair.a.rows_of(set(usable))), len(pair.b.rows_of(set(usable))))
    n_pairs = len(pair.rows(pair.shared(usable))[0])
    params: dict[str, float | int | str] = {"alignment_cosine": round(found.score, 4), "start": found.start,
                                            "rows_source": rows[0], "rows_target": rows[1],
                                            "anchors": AlignOptions().anchors}
    fits = [FinalFit(n_pairs=n_pairs, n_samples=len(pair.shared(usable)),
                     hyperparameters=params | {"rows_source": rows[d], "rows_target": rows[1 - d]}) for d in (0, 1)]
    return Final(fitted.forward, fitted.backward, (fits[0], fits[1]), stats)
