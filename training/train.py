"""Train the translators of a bundle: plan the pairs, select by cross-validation, refit, export.

The stages live in their own files and read top to bottom: ``selection`` (cross-validation over samples,
the same folds for every edge), ``fitting`` (the chosen kind refit on every usable pair), ``export``
(ONNX with a parity check). Metrics in the manifest come from a ``--holdout`` test split when there is
one, else from cross-validation, and say which.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch
from latent_bridge.service.bundle.loader import Bundle
from latent_bridge.service.bundle.manifest import EdgeMetrics, Manifest
from latent_bridge.training.bundling.pivots import RouteChoice, choose_strategies
from latent_bridge.training.bundling.writer import EdgeArtifact, write_bundle
from latent_bridge.training.candidates import Pair, Samples
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.reader import (
    ModalityData,
    fingerprint,
    load_dataset,
    shared_samples,
    trainable_pairs,
)
from latent_bridge.training.datasets.splits import Fold, cv_folds, holdout_split
from latent_bridge.training.evaluate import Translate, evaluate_translation
from latent_bridge.training.export import to_onnx
from latent_bridge.training.fitting import Final, check_not_collapsed, refit
from latent_bridge.training.joint import tune
from latent_bridge.training.selection import Selection, select
from latent_bridge.training.translators import translate
from latent_bridge.training.unpaired_edge import KIND, refit_unpaired, select_unpaired
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def plan_pairs(data: dict[str, ModalityData], cfg: TrainConfig) -> list[tuple[str, str]]:
    """Unordered pairs to train: those named by ``--edges`` or every pair sharing enough samples."""
    if cfg.edges is None:
        if cfg.kind == KIND:
            raise ValueError("--kind unpaired needs --edges: name the spaces to align, e.g. --edges a:c")
        return trainable_pairs(data, cfg.min_shared)
    pairs: list[tuple[str, str]] = []
    for a, b in cfg.edges:
        for m in (a, b):
            if m not in data:
                raise ValueError(f"edge {a}:{b} names unknown modality {m!r} (known: {', '.join(sorted(data))})")
        n = len(shared_samples(data[a], data[b]))
        if n < cfg.min_shared and cfg.kind != KIND:
            raise ValueError(f"edge {a}:{b}: only {n} shared samples, at least {cfg.min_shared} needed; "
                             "--kind unpaired aligns the two spaces from each side's own rows")
        key = (min(a, b), max(a, b))
        if key not in pairs:
            pairs.append(key)
    return pairs


def plan_folds(data: dict[str, ModalityData], cfg: TrainConfig) -> tuple[Samples, Samples, list[Fold]]:
    """(usable, test, folds), one plan for every edge so routes are judged on samples no hop saw."""
    all_samples = set().union(*(set(d.samples.tolist()) for d in data.values()))
    usable, test = holdout_split(all_samples, cfg.seed, cfg.holdout)
    k = cfg.folds if len(usable) < cfg.single_split_from else 1
    return usable, test, cv_folds(usable, cfg.seed, k, cfg.val_fraction)


def test_metrics(pair: Pair, module: nn.Module, back: nn.Module, final: Final, d: int, usable: Samples,
                 test: Samples) -> EdgeMetrics | None:
    """The shipped translator on the hold-out, or None where the pair shares no test sample."""
    p = pair if d == 0 else pair.reverse()
    if not p.shared(test):
        return None
    return evaluate_translation(
        p.a, p.b, set(test), lambda x: translate(module, x), lambda y: translate(back, y),
        source_mean=final.stats[d].mean, n_train=len(p.shared(usable)),
    )


def artifacts_for(pair: Pair, selection: Selection, final: Final, usable: Samples, test: Samples) -> list[EdgeArtifact]:
    """Export both directions; metrics from the hold-out when it exists, else cross-validated."""
    found = []
    modules = (final.forward, final.backward)
    for d, (src, dst) in enumerate(((pair.a, pair.b), (pair.b, pair.a))):
        choice = selection.choices()[d]
        metrics = test_metrics(pair, modules[d], modules[1 - d], final, d, usable, test) or choice.metrics
        found.append(EdgeArtifact(
            source=src.name, target=dst.name, kind=choice.kind, onnx_bytes=to_onnx(modules[d], src.dim),
            metrics=metrics, candidates=choice.candidates, fit=final.fits[d],
        ))
    return found


FoldMaps = dict[tuple[str, str], list[Translate]]


@dataclass
class PairFit:
    """What the per-edge stages made of one pair (kept for ``--joint``)."""

    pair: Pair
    selection: Selection
    final: Final


def train_pairs(data: dict[str, ModalityData], cfg: TrainConfig, maps: FoldMaps | None = None,
                fits: list[PairFit] | None = None) -> list[EdgeArtifact]:
    """Select, refit and export every planned pair; ``maps`` receives each direction's per-fold translators,
    ``fits`` (where given) each pair's selection and final fit."""
    usable, test, folds = plan_folds(data, cfg)
    artifacts: list[EdgeArtifact] = []
    for a, b in tqdm(plan_pairs(data, cfg), desc="pairs", disable=not cfg.progress):
        started = time.perf_counter()
        pair = Pair(data[a], data[b], cfg.max_pairs_per_sample)
        with threadpool_limits(cfg.threads):  # numpy's BLAS too: oversubscribed shared cores slow it tenfold
            selection, final = _fit_pair(pair, usable, folds, cfg)
        if maps is not None and selection.folds:  # an unpaired edge without shared samples has no fold maps
            maps[a, b] = [partial(translate, f) for f, _ in selection.folds]
            maps[b, a] = [partial(translate, g) for _, g in selection.folds]
        if fits is not None:
            fits.append(PairFit(pair, selection, final))
        artifacts.extend(artifacts_for(pair, selection, final, usable, test))
        log.info("%s: %s in %.1fs", pair.name, [c.kind for c in selection.choices()], time.perf_counter() - started)
    return artifacts


def _fit_pair(pair: Pair, usable: Samples, folds: list[Fold], cfg: TrainConfig) -> tuple[Selection, Final]:
    if cfg.kind == KIND:
        selection = select_unpaired(pair, folds, cfg)
        return selection, refit_unpaired(pair, usable, selection, cfg)
    selection = select(pair, folds, cfg, position=1)
    return selection, refit(pair, usable, selection, cfg)


def joint_artifacts(data: dict[str, ModalityData], cfg: TrainConfig, fits: list[PairFit],
                    artifacts: list[EdgeArtifact], maps: FoldMaps) -> list[EdgeArtifact]:
    """``--joint``: tune the per-edge translators together (``training/joint.py``); the directions that
    cross-validation keeps ship their tuned translator (fit hyperparameter ``joint: 1``, ``joint_epochs``),
    every direction records the tuned translators' cross-validated metrics as candidate ``joint``, and
    route strategies are chosen with the kept directions' tuned fold translators."""
    usable, test, folds = plan_folds(data, cfg)
    fold_fits: dict[tuple[str, str], list[nn.Module]] = {}
    finals: dict[tuple[str, str], nn.Module] = {}
    where: dict[tuple[str, str], tuple[PairFit, int]] = {}
    for fit in fits:
        if not fit.selection.folds:  # an unpaired edge without shared samples: nothing to score it on
            continue
        for d, (src, dst) in enumerate(((fit.pair.a.name, fit.pair.b.name), (fit.pair.b.name, fit.pair.a.name))):
            fold_fits[src, dst] = [pair_maps[d] for pair_maps in fit.selection.folds]
            finals[src, dst] = (fit.final.forward, fit.final.backward)[d]
            where[src, dst] = (fit, d)
    if not fold_fits:
        return artifacts
    started = time.perf_counter()
    with threadpool_limits(cfg.threads):
        result = tune(data, fold_fits, finals, folds, usable, cfg, progress=log.info if cfg.progress else None)
    log.info("joint: %d epochs, kept %s in %.1fs", result.epochs, result.kept, time.perf_counter() - started)
    shipped = dict(finals) | result.modules
    found = []
    for artifact in artifacts:
        direction = (artifact.source, artifact.target)
        if direction not in result.metrics:
            found.append(artifact)
            continue
        candidates = artifact.candidates | {"joint": result.metrics[direction]}
        if direction not in result.kept:
            found.append(replace(artifact, candidates=candidates))
            continue
        fit, d = where[direction]
        module, back = shipped[direction], shipped[direction[1], direction[0]]
        pair = fit.pair if d == 0 else fit.pair.reverse()
        check_not_collapsed(pair, module, usable, f"{direction[0]}→{direction[1]}")
        metrics = test_metrics(fit.pair, module, back, fit.final, d, usable, test) or result.metrics[direction]
        hyper = (artifact.fit.hyperparameters if artifact.fit else {}) | {"joint": 1, "joint_epochs": result.epochs}
        final_fit = artifact.fit.model_copy(update={"hyperparameters": hyper}) if artifact.fit else None
        found.append(replace(artifact, onnx_bytes=to_onnx(module, pair.a.dim), metrics=metrics,
                             candidates=candidates, fit=final_fit))
        maps[direction] = [partial(translate, m) for m in result.fold_modules[direction]]
    return found


def train(cfg: TrainConfig) -> Manifest:
    """Load the dataset, train every edge, write the bundle to ``cfg.out`` atomically."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    data = load_dataset(cfg.data)
    linked = {m for pair in plan_pairs(data, cfg) for m in pair}
    data = {name: d for name, d in data.items() if name in linked}  # a modality without edges stays out
    started = time.perf_counter()
    maps: FoldMaps = {}
    if cfg.joint:
        pair_fits: list[PairFit] = []
        artifacts = train_pairs(data, cfg, maps, pair_fits)
        artifacts = joint_artifacts(data, cfg, pair_fits, artifacts, maps)
    else:
        artifacts = train_pairs(data, cfg, maps)
    record = cfg.as_record() | {"seconds": round(time.perf_counter() - started, 1)}
    usable, _, folds = plan_folds(data, cfg)

    def strategies(bundle: Bundle) -> list[RouteChoice]:
        return choose_strategies(bundle, data, folds, maps, usable) if cfg.pivots else []

    return write_bundle(Path(cfg.out), data, artifacts, fingerprint(data), record, cfg.index_type,
                        strategies=strategies)
