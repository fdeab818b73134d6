"""Fitting: refit what selection chose on every usable pair, the translators that ship.

Selection scored candidates fitted on part of the data; here the chosen kind is fitted again on all
usable samples (everything but an optional ``--holdout`` test split), because with a few thousand pairs
every pair counts. The MLP and the DMVAE train for the epoch count cross-validation found; an epoch sees every pair,
so the number of steps grows with the data. A fitted translator whose outputs are non-finite or
collapsed to one point is refused with a message rather than shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from latent_bridge.service.bundle.manifest import FinalFit
from latent_bridge.training.candidates import EpochRun, Fitted, MLPRun, Pair, Samples, fit_kind, standardised_rows
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.dmvae import KIND as DMVAE
from latent_bridge.training.dmvae import DMVAERun
from latent_bridge.training.selection import TRAINED_KINDS, Selection, linear_start
from latent_bridge.training.translators import SpaceStats, translate
from torch import nn

COLLAPSE_RATIO = 1e-3


class CollapsedTranslatorError(ValueError):
    """A fitted translator whose outputs carry no information."""


@dataclass
class Final:
    """The shipped translators of a pair and how they were fitted."""

    forward: nn.Module
    backward: nn.Module
    fits: tuple[FinalFit, FinalFit]
    stats: tuple[SpaceStats, SpaceStats]


def refit(pair: Pair, usable: Samples, selection: Selection, cfg: TrainConfig) -> Final:
    """Fit each direction's chosen kind on every usable pair of ``pair``."""
    samples = pair.shared(usable)
    stats = pair.stats(usable)
    rows = standardised_rows(pair, usable, stats)
    kinds = {c.kind for c in selection.choices()}
    fitted = {k: fit_kind(pair, k, rows, stats, cfg, selection.alphas) for k in kinds if k not in TRAINED_KINDS}
    if "mlp" in kinds:
        start = linear_start(pair, selection.bases, rows, stats, cfg, selection.alphas)
        fitted |= _trained(MLPRun(pair, usable, stats, start, cfg), "mlp", selection)
    if DMVAE in kinds:
        fitted |= _trained(DMVAERun(pair, usable, stats, cfg), DMVAE, selection)
    forward = fitted[_key(selection.forward.kind, 0)].forward
    backward = fitted[_key(selection.backward.kind, 1)].backward
    n_pairs = len(rows[0])
    fits = tuple(FinalFit(n_pairs=n_pairs, n_samples=len(samples), hyperparameters=c.hyperparameters)
                 for c in selection.choices())
    check_not_collapsed(pair, forward, usable, f"{pair.a.name}→{pair.b.name}")
    check_not_collapsed(pair.reverse(), backward, usable, f"{pair.b.name}→{pair.a.name}")
    return Final(forward, backward, (fits[0], fits[1]), stats)


def _key(kind: str, d: int) -> str:
    """Where ``refit`` keeps direction d's fit: a trained kind per direction ("mlp:0"), a closed form per kind."""
    return f"{kind}:{d}" if kind in TRAINED_KINDS else kind


def _trained(run: EpochRun, kind: str, selection: Selection) -> dict[str, Fitted]:
    """Train a pair's trained kind once, snapshotting each direction that chose it at its own epoch count
    ("mlp:0", "dmvae:1", ...)."""
    wanted = [d for d, c in enumerate(selection.choices()) if c.kind == kind]  # only as long as they need
    found: dict[str, Fitted] = {}
    for d in wanted:
        if selection.epochs[d] == 0:
            found[_key(kind, d)] = run.snapshot()
    while len(found) < len(wanted):
        run.epoch()
        for d in wanted:
            if selection.epochs[d] == run.epochs:
                found[_key(kind, d)] = run.snapshot()
    return found


def check_not_collapsed(pair: Pair, module: nn.Module, samples: Samples, name: str) -> None:
    """Refuse a translator whose outputs on the fit rows are non-finite or (nearly) one point."""
    rows = pair.a.rows_of(set(pair.shared(samples)))
    out = translate(module, pair.a.embeddings[rows])
    if not np.isfinite(out).all():
        raise CollapsedTranslatorError(f"edge {name}: the fitted translator gives non-finite outputs; "
                                       "check the data for extreme values or lower the learning rate")
    target = pair.b.embeddings[pair.b.rows_of(set(pair.shared(samples)))]
    spread = float(np.linalg.norm(out - out.mean(axis=0), axis=1).mean())
    wanted = float(np.linalg.norm(target - target.mean(axis=0), axis=1).mean())
    if spread <= COLLAPSE_RATIO * wanted:
        raise CollapsedTranslatorError(
            f"edge {name}: the fitted translator collapsed (its outputs spread {spread:.2e} against "
            f"{wanted:.2e} for real {pair.b.name} rows); it would rank every item alike, so it is not shipped"
        )
