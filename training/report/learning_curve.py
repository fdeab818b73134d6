"""Learning curve: held-out R@1 of the bundle's chosen kind, ridge and Procrustes against the share of pairs.

For each trained pair of a bundle, nested subsets of its training samples (10% … 100%; a seeded hash of
the ``sample`` key orders them, so a larger share holds every smaller one) are fitted three ways: the
chosen kind with the hyperparameters the bundle's selection found (refit exactly as training refits;
the MLP for its epoch count), ridge (alpha by 3-fold cross-validation over the subset, from the training
grid) and Procrustes. All are scored on the bundle's held-out samples the way the server ranks (cosine
after the gallery's centring). Each seed redraws the subsets and the MLP's initialisation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterator

import numpy as np
import torch
from latent_bridge.service.bundle.manifest import EdgeSpec, Manifest
from latent_bridge.service.engine.scoring import ranks
from latent_bridge.training.candidates import Pair, Samples, fit_kind, standardised_rows
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.reader import ModalityData
from latent_bridge.training.datasets.splits import cv_folds
from latent_bridge.training.evaluate import retrieval_summary
from latent_bridge.training.fitting import refit
from latent_bridge.training.selection import Choice, Selection
from latent_bridge.training.translators import translate
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)
BASELINES = ("ridge", "procrustes")
MIN_SAMPLES = 8


def subset(samples: Samples, fraction: float, seed: int) -> Samples:
    """The first ``fraction`` of ``samples`` in a seeded hash order (nested across fractions)."""
    order = sorted(samples, key=lambda s: hashlib.sha256(f"curve:{seed}:{s}".encode()).digest())
    return frozenset(order[: max(MIN_SAMPLES, math.ceil(fraction * len(order)))])


def held_out_r1(pair: Pair, module: nn.Module, test: Samples) -> float:
    """R@1 of ``module`` (A→B) on the held-out rows, scored as the server ranks."""
    samples = set(pair.shared(test))
    qa, gb = pair.a.rows_of(samples), pair.b.rows_of(samples)
    r = ranks(translate(module, pair.a.embeddings[qa]), pair.a.samples[qa], pair.b.embeddings[gb], pair.b.samples[gb])
    return retrieval_summary(r)["r1"]


def chosen_selection(forward: EdgeSpec, backward: EdgeSpec) -> Selection:
    """The bundle's choice for a pair, rebuilt from its manifest, for ``refit``."""
    hp = [e.fit.hyperparameters if e.fit else {} for e in (forward, backward)]
    return Selection(
        forward=Choice(forward.kind, hp[0], forward.metrics, {}),
        backward=Choice(backward.kind, hp[1], backward.metrics, {}),
        alphas=(float(hp[0].get("ridge_alpha", 1.0)), float(hp[1].get("ridge_alpha", 1.0))),
        bases=(str(hp[0].get("base", "ridge")), str(hp[1].get("base", "ridge"))),
        epochs=(int(hp[0].get("epochs", 0)), int(hp[1].get("epochs", 0))),
    )


def ridge_alphas(pair: Pair, samples: Samples, cfg: TrainConfig, seed: int) -> tuple[float, float]:
    """Per direction, the alpha of ``cfg.ridge_alphas`` with the best mean R@1 over 3 folds of ``samples``."""
    totals = np.zeros((2, len(cfg.ridge_alphas)))
    for fold in cv_folds(samples, seed, 3):
        if not pair.shared(fold.train) or not pair.shared(fold.val):
            continue
        stats = pair.stats(fold.train)
        rows = standardised_rows(pair, fold.train, stats)
        for i, alpha in enumerate(cfg.ridge_alphas):
            fitted = fit_kind(pair, "ridge", rows, stats, cfg, (alpha, alpha))
            totals[0, i] += held_out_r1(pair, fitted.forward, fold.val)
            totals[1, i] += held_out_r1(pair.reverse(), fitted.backward, fold.val)
    best = totals.argmax(axis=1)
    return cfg.ridge_alphas[best[0]], cfg.ridge_alphas[best[1]]


def fit_three(pair: Pair, samples: Samples, selection: Selection, cfg: TrainConfig,
              seed: int) -> dict[str, tuple[nn.Module, nn.Module]]:
    """The chosen kind, ridge and Procrustes fitted on ``samples``: {label: (forward, backward)}."""
    stats = pair.stats(samples)
    rows = standardised_rows(pair, samples, stats)
    chosen = refit(pair, samples, selection, dataclasses.replace(cfg, seed=seed, progress=False))
    ridge = fit_kind(pair, "ridge", rows, stats, cfg, ridge_alphas(pair, samples, cfg, seed))
    procrustes = fit_kind(pair, "procrustes", rows, stats, cfg)
    return {"chosen": (chosen.forward, chosen.backward), "ridge": (ridge.forward, ridge.backward),
            "procrustes": (procrustes.forward, procrustes.backward)}


def pairs_of(manifest: Manifest) -> Iterator[tuple[EdgeSpec, EdgeSpec]]:
    """Each trained pair once, as (A→B, B→A), where the bundle has both directions."""
    edges = {(e.source, e.target): e for e in manifest.edges}
    for (a, b), e in sorted(edges.items()):
        if a < b and (b, a) in edges:
            yield e, edges[(b, a)]


def learning_curves(manifest: Manifest, data: dict[str, ModalityData], train: Samples, test: Samples, cfg: TrainConfig,
                    seeds: list[int], fractions: tuple[float, ...] = FRACTIONS,
                    progress: bool = True) -> list[dict[str, object]]:
    """Per directed edge: held-out R@1 (mean, std and per seed) of chosen kind, ridge and Procrustes per fraction."""
    jobs = [(f, b, s) for f, b in pairs_of(manifest) for s in seeds]
    found: dict[str, dict[str, object]] = {}
    bar = tqdm(total=len(jobs) * len(fractions), desc="learning curve", unit="fit", disable=not progress)
    torch.set_num_threads(cfg.threads)  # as training does: small fits lose much on oversubscribed cores
    with threadpool_limits(cfg.threads):
        for forward, backward, seed in jobs:
            pair = Pair(data[forward.source], data[forward.target], cfg.max_pairs_per_sample)
            selection = chosen_selection(forward, backward)
            for fraction in fractions:
                samples = subset(pair.shared(train), fraction, seed)
                fitted = fit_three(pair, samples, selection, cfg, seed)
                for d, (edge, p) in enumerate(((forward, pair), (backward, pair.reverse()))):
                    entry = found.setdefault(edge.key, {"source": edge.source, "target": edge.target,
                                                        "kind": edge.kind, "fractions": list(fractions),
                                                        "n_samples": {}, "r1": {}})
                    entry["n_samples"][str(fraction)] = len(pair.shared(samples))  # type: ignore[index]
                    for label, modules in fitted.items():
                        per_seed = entry["r1"].setdefault(label, {}).setdefault(str(fraction), [])  # type: ignore[attr-defined]
                        per_seed.append(held_out_r1(p, modules[d], test))
                bar.update()
    bar.close()
    return [summarise(e) for e in found.values()]


def summarise(entry: dict[str, object]) -> dict[str, object]:
    """Add mean and std over seeds to each curve."""
    runs = entry["r1"]
    assert isinstance(runs, dict)
    entry["mean"] = {label: [float(np.mean(v)) for v in curve.values()] for label, curve in runs.items()}
    entry["std"] = {label: [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in curve.values()]
                    for label, curve in runs.items()}
    return entry


def config_of(manifest: Manifest, **overrides: object) -> TrainConfig:
    """The training configuration recorded in a manifest (unknown keys ignored), with ``overrides``."""
    record = dict(manifest.training)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    kept = {k: v for k, v in record.items() if k in names and k not in ("data", "out", "edges", "extra")}
    if "ridge_alphas" in kept:
        kept["ridge_alphas"] = tuple(kept["ridge_alphas"])  # type: ignore[arg-type]
    return TrainConfig(data=record.get("data", "."), out=record.get("out", "."), **(kept | overrides))  # type: ignore[arg-type]
