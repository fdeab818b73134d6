"""Grow a bundle without retraining it: add a modality linked to ANY existing one, or a late direct edge.

The seeds' third claim (§3.2.2, §3.3): a new modality joins as soon as it pairs with one modality already
in the graph, and from then on reaches every other modality through it. The parent bundle is never
touched; the new bundle carries its ONNX files and galleries byte for byte and trains only the new pairs,
with the same kinds, losses (the InfoNCE term is the seeds' contrastive link), evaluation and export.
The split is the parent's (same seed and hold-out fraction, hash of the sample key), so new edges hold out
the same test samples.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import torch
from latent_bridge.service.bundle.loader import Bundle
from latent_bridge.service.bundle.manifest import Manifest, edge_key, read_manifest
from latent_bridge.service.errors import NoRoute
from latent_bridge.training.bundling.pivots import RouteChoice, choose_strategies
from latent_bridge.training.bundling.writer import Parent, write_bundle
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.reader import ModalityData, fingerprint, load_dataset, shared_samples
from latent_bridge.training.train import FoldMaps, plan_folds, train_pairs


class GrowError(ValueError):
    pass


def _check_dims(manifest: Manifest, data: dict[str, ModalityData]) -> None:
    for name, d in data.items():
        known = next((m for m in manifest.modalities if m.name == name), None)
        if known and known.dim != d.dim:
            raise GrowError(f"{d.path}: {name} embeddings are {d.dim}-d but the bundle's {name} is {known.dim}-d")


def _check_shared(data: dict[str, ModalityData], pairs: list[tuple[str, str]], needed: int) -> None:
    for a, b in pairs:
        found = len(shared_samples(data[a], data[b]))
        if found < needed:
            raise GrowError(f"{a} and {b} share {found} samples in the dataset; at least {needed} are needed")


def _grow(parent_dir: Path, data_dir: Path, pairs: list[tuple[str, str]], cfg: TrainConfig) -> Manifest:
    parent = Parent(Path(parent_dir), read_manifest(Path(parent_dir)))
    names = sorted({m for pair in pairs for m in pair})
    data = load_dataset(data_dir, names)
    _check_dims(parent.manifest, data)
    _check_shared(data, pairs, cfg.min_shared)
    # the parent's hold-out, so grown edges keep out the same test samples
    cfg = dataclasses.replace(cfg, edges=pairs, holdout=parent_holdout(parent.manifest))
    torch.set_num_threads(cfg.threads)
    maps: FoldMaps = {}
    artifacts = train_pairs(data, cfg, maps)
    record = cfg.as_record() | {"grown_from": parent.manifest.name}
    usable, _, folds = plan_folds(data, cfg)

    def strategies(bundle: Bundle) -> list[RouteChoice]:
        """Routes over the new edges chosen on this run's folds; the parent's choices kept where they hold."""
        fresh = choose_strategies(bundle, data, folds, maps, usable) if cfg.pivots else []
        return fresh + kept_routes(parent, bundle, {tuple(c.spec.path) for c in fresh})

    return write_bundle(Path(cfg.out), data, artifacts, fingerprint(data), record, cfg.index_type, parent,
                        strategies=strategies)


def kept_routes(parent: Parent, bundle: Bundle, chosen: set[tuple[str, ...]]) -> list[RouteChoice]:
    """The parent's route choices whose path is still the best route in the grown graph: their edges are
    carried byte for byte, so the choice measured on the parent's folds still holds, and so do their CSLS
    files (copied into the staged ``bundle``), the pivot gallery being rebuilt from the same rows and edge."""
    kept = []
    for route in parent.manifest.routes:
        if tuple(route.path) in chosen:
            continue
        try:
            best = bundle.graph.best(route.source, route.target).path
        except NoRoute:
            continue
        if list(best) != route.path:
            continue
        for file, _ in route.files():
            (bundle.path / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(parent.path / file, bundle.path / file)
        kept.append(RouteChoice(route))
    return kept


def parent_holdout(manifest: Manifest) -> float:
    holdout = manifest.training.get("holdout", 0.0)
    return float(holdout) if isinstance(holdout, int | float) else 0.0


def parent_seed(bundle: Path) -> int:
    """The split seed the bundle was trained with, so grown edges share its held-out samples."""
    seed = read_manifest(Path(bundle)).training.get("seed", 0)
    return int(seed) if isinstance(seed, int | float | str) else 0


def add_modality(bundle: Path, data_dir: Path, modality: str, link_to: list[str], cfg: TrainConfig) -> Manifest:
    """A new bundle with every edge of ``bundle`` plus trained edges ``modality``↔each of ``link_to``."""
    manifest = read_manifest(Path(bundle))
    known = [m.name for m in manifest.modalities]
    if modality in known:
        raise GrowError(f"modality {modality!r} is already in bundle {manifest.name} ({', '.join(known)})")
    if not link_to:
        raise GrowError("--link-to needs at least one modality of the bundle")
    for partner in link_to:
        if partner not in known:
            raise GrowError(f"partner {partner!r} is not in bundle {manifest.name} (known: {', '.join(known)})")
    return _grow(Path(bundle), data_dir, [(modality, p) for p in link_to], cfg)


def add_edge(bundle: Path, data_dir: Path, edge: tuple[str, str], cfg: TrainConfig) -> Manifest:
    """A new bundle with every edge of ``bundle`` plus a direct pair a↔b between two of its modalities."""
    manifest = read_manifest(Path(bundle))
    known = [m.name for m in manifest.modalities]
    a, b = edge
    for m in (a, b):
        if m not in known:
            raise GrowError(f"modality {m!r} is not in bundle {manifest.name} (known: {', '.join(known)})")
    if a == b:
        raise GrowError(f"an edge needs two different modalities, got {a}:{b}")
    existing = {e.key for e in manifest.edges} & {edge_key(a, b), edge_key(b, a)}
    if existing:
        raise GrowError(f"bundle {manifest.name} already has edge(s) {sorted(existing)}")
    return _grow(Path(bundle), data_dir, [edge], cfg)
