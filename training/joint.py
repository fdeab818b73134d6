"""Joint fine-tuning (``train --joint``): the bundle's translators tuned together, kept where folds say so.

After the per-edge selection and fits, every directed edge's translator (MLP or linear, each a torch module
from raw embedding to raw embedding; linear kinds are tuned as the affine layer they were folded into,
starting from the fitted map, none frozen; Adam's step is relative to each translator's weight scale) is
fine-tuned together on every sample with two or more modalities:

- per edge a → b whose two modalities the sample has: InfoNCE in b's space (the MLP's loss, the same
  temperature; both sides centred by b's training mean) plus the cosine to the partner;
- per 2-hop route a → b → c whose endpoints the sample has: the same two terms on the composed
  translation a → b → c against c's row, so that routes are trained for composition.

Kept per direction only where cross-validation says it wins: the joint fine-tune runs on every fold (on the
fold's training samples, starting from that fold's per-edge fits, all folds in lockstep, a fixed seed), each
direction and each 2-hop route is scored (R@1, centred cosine, as ``evaluate`` ranks) on the fold's
validation samples after every epoch, and the epoch count is read off the mean curve (early stopping on
it). Each fold is then scored at the epoch the *other* folds pick (nested, as ``selection`` scores the
MLP), and a direction keeps its jointly tuned translator only where that beats its per-edge translator
(epoch 0) by more than one standard error over the folds (``selection``'s rule) and no 2-hop route through
it loses mean R@1. The kept directions are then tuned again on every usable sample for that many epochs,
the others frozen at their per-edge fits.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from latent_bridge.service.bundle.manifest import EdgeMetrics
from latent_bridge.service.engine.scoring import ranks
from latent_bridge.training.candidates import Samples, infonce
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.reader import ModalityData, shared_samples
from latent_bridge.training.datasets.splits import Fold
from latent_bridge.training.evaluate import evaluate_translation, mean_metrics
from latent_bridge.training.selection import wins
from latent_bridge.training.translators import translate
from torch import nn

EPOCHS = 30  # at most; early stopping on the mean validation curve usually stops sooner
PATIENCE = 5
STEP = 1e-3  # Adam's step per translator, relative to its weights' RMS: a linear kind folded into raw
# spaces has weights orders of magnitude from an MLP's (standardised) ones, so one learning rate cannot fit all
BATCH = 128  # samples per step

Direction = tuple[str, str]
Route = tuple[str, str, str]
Key = Direction | Route


def two_hop_routes(directions: Sequence[Direction]) -> list[Route]:
    """Every a → b → c with both hops among ``directions`` and a ≠ c."""
    return [(a, b, c) for a, b in directions for b2, c in directions if b2 == b and c != a]


def _run(modules: Mapping[Direction, nn.Module], key: Key, x: np.ndarray) -> np.ndarray:
    for hop in zip(key, key[1:], strict=False):
        x = translate(modules[hop], x)
    return x


def r1_of(data: Mapping[str, ModalityData], modules: Mapping[Direction, nn.Module], key: Key,
          samples: Samples) -> float | None:
    """R@1 of ``key`` (an edge or a route) on ``samples``: the queries its source's rows, the gallery its
    target's rows, ranked by centred cosine as every gallery ranks; None where no sample has both ends."""
    a, c = data[key[0]], data[key[-1]]
    shared = set(samples) & shared_samples(a, c)
    if not shared:
        return None
    qa, gc = a.rows_of(shared), c.rows_of(shared)
    r = ranks(_run(modules, key, a.embeddings[qa]), a.samples[qa], c.embeddings[gc], c.samples[gc])
    return float((r <= 1).mean())


class JointRun:
    """The bundle's translators in joint training on one set of samples; ``trainable`` directions move."""

    def __init__(self, data: Mapping[str, ModalityData], modules: Mapping[Direction, nn.Module],
                 trainable: set[Direction], samples: Samples, cfg: TrainConfig) -> None:
        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.modules = {k: copy.deepcopy(m) for k, m in modules.items()}
        self.trainable = set(trainable)
        for k, m in self.modules.items():
            m.requires_grad_(k in self.trainable)
            m.eval()
        self.routes = two_hop_routes(list(self.modules))
        names = sorted({m for k in self.modules for m in k})
        self.rows: dict[str, dict[str, np.ndarray]] = {}
        self.means: dict[str, torch.Tensor] = {}
        for name in names:
            d = data[name]
            idx = d.rows_of(set(samples))
            by: dict[str, list[int]] = {}
            for i in idx:
                by.setdefault(str(d.samples[i]), []).append(int(i))
            self.rows[name] = {s: np.asarray(r) for s, r in by.items()}
            self.means[name] = torch.from_numpy(d.embeddings[idx].mean(axis=0).astype(np.float32))
        self.data = data
        self.keys = sorted(s for s in samples if sum(s in self.rows[n] for n in names) >= 2)
        groups = [{"params": list(self.modules[k].parameters()), "lr": STEP * _weight_rms(self.modules[k])}
                  for k in sorted(self.trainable)]
        self.opt = torch.optim.AdamW(groups, weight_decay=0.0) if groups else None
        self.rng = np.random.default_rng(cfg.seed)
        self.epochs = 0

    def epoch(self) -> None:
        if self.opt is None:
            self.epochs += 1
            return
        for k in self.trainable:
            self.modules[k].train()
        order = self.rng.permutation(len(self.keys))
        for start in range(0, len(order), BATCH):
            batch = [self.keys[i] for i in order[start : start + BATCH]]
            loss = self._loss(batch)
            if loss is None:
                continue
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        for m in self.modules.values():
            m.eval()
        self.epochs += 1

    def _batch(self, name: str, batch: list[str]) -> tuple[np.ndarray, torch.Tensor]:
        """Which samples of ``batch`` have ``name``, and one of each one's rows (drawn afresh every step)."""
        rows = self.rows[name]
        has = np.array([s in rows for s in batch], dtype=bool)
        picked = [int(self.rng.choice(rows[s])) for s, h in zip(batch, has, strict=True) if h]
        x = torch.zeros(len(batch), self.data[name].dim)
        if picked:
            x[torch.from_numpy(has)] = torch.from_numpy(self.data[name].embeddings[picked].astype(np.float32))
        return has, x

    def _loss(self, batch: list[str]) -> torch.Tensor | None:
        cfg = self.cfg
        present = {n: self._batch(n, batch) for n in self.rows}
        total: torch.Tensor | None = None
        for key in [*self.modules, *self.routes]:
            if not any(hop in self.trainable for hop in zip(key, key[1:], strict=False)):
                continue
            src, dst = key[0], key[-1]
            mask = present[src][0] & present[dst][0]
            if mask.sum() < 2:
                continue
            m = torch.from_numpy(mask)
            pred = present[src][1][m]
            for hop in zip(key, key[1:], strict=False):
                pred = self.modules[hop](pred)
            mu = self.means[dst]
            pred, target = pred - mu, present[dst][1][m] - mu
            codes = torch.arange(int(mask.sum()))
            term = cfg.infonce_weight * infonce(pred, target, codes, cfg.temperature) + cfg.cosine_weight * (
                1 - F.cosine_similarity(pred, target, dim=1)).mean()
            total = term if total is None else total + term
        return total


def _weight_rms(module: nn.Module) -> float:
    """Root mean square of a translator's weight matrices (its scale, for a relative step size)."""
    weights = [p.detach() for p in module.parameters() if p.dim() == 2 and p.abs().max() > 0]
    return float(torch.sqrt(torch.mean(torch.cat([w.flatten() ** 2 for w in weights])))) if weights else 1.0


@dataclass
class JointResult:
    """What cross-validation decided and the refit produced."""

    epochs: int  # joint epochs the mean validation curve picked (0: the per-edge fits are best)
    kept: list[Direction]
    modules: dict[Direction, nn.Module]  # the kept directions, tuned on every usable sample
    metrics: dict[Direction, EdgeMetrics]  # every direction's jointly tuned translators, cross-validated
    fold_modules: dict[Direction, list[nn.Module]]  # kept directions: each fold's tuned translator
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # per edge/route: per-edge vs joint R@1


def _key_name(key: Key) -> str:
    return "→".join(key)


def nested(curve: np.ndarray, combined: np.ndarray) -> np.ndarray:
    """Each fold's value at the epoch the *other* folds' mean ``combined`` curve picks (epochs x folds);
    with one fold, at the best epoch of its own curve."""
    k = combined.shape[1]
    if k == 1:
        return curve[int(np.argmax(combined[:, 0])), :]
    return np.array([curve[int(np.argmax(np.delete(combined, f, axis=1).mean(axis=1))), f] for f in range(k)])


def decide(directions: Sequence[Direction], routes: Sequence[Route], base: Mapping[Key, np.ndarray],
           joint: Mapping[Key, np.ndarray], epochs: int) -> list[Direction]:
    """The directions whose jointly tuned translator is kept: per fold R@1 (``base``: per-edge, ``joint``:
    nested), a win by one standard error and no 2-hop route through the direction losing mean R@1; none
    where the mean validation curve picked no joint epoch at all (``epochs`` 0)."""
    if epochs == 0:
        return []
    kept = []
    for d in directions:
        if not wins(joint[d], base[d]):
            continue
        through = [r for r in routes if d in ((r[0], r[1]), (r[1], r[2])) and r in base]
        if all(np.mean(joint[r]) >= np.mean(base[r]) for r in through):
            kept.append(d)
    return kept


def tune(data: Mapping[str, ModalityData], fold_fits: Mapping[Direction, list[nn.Module]],
         finals: Mapping[Direction, nn.Module], folds: list[Fold], usable: Samples, cfg: TrainConfig,
         progress: Callable[[str], None] | None = None) -> JointResult:
    """Cross-validate the joint fine-tune over ``folds`` (``fold_fits[d][i]``: direction d as fold i fitted
    it), keep the directions that win, refit those on ``usable`` starting from ``finals``."""
    directions = sorted(fold_fits)
    routes = two_hop_routes(directions)
    keys: list[Key] = [*directions, *routes]
    runs = [JointRun(data, {d: fold_fits[d][i] for d in directions}, set(directions), fold.train, cfg)
            for i, fold in enumerate(folds)]

    def scores() -> list[dict[Key, float | None]]:
        return [{k: r1_of(data, run.modules, k, fold.val) for k in keys} for run, fold in zip(runs, folds, strict=True)]

    curve = [scores()]  # epochs x folds x key
    scored = [k for k in keys if all(s[k] is not None for s in curve[0])]

    def combined(epoch: list[dict[Key, float | None]]) -> list[float]:
        return [float(np.mean([s[k] for k in scored])) for s in epoch]

    best, best_at, stale = float(np.mean(combined(curve[0]))), 0, 0
    snapshots = {d: [copy.deepcopy(run.modules[d]) for run in runs] for d in directions}  # epoch 0: per-edge
    for _ in range(EPOCHS):
        for run in runs:
            run.epoch()
        curve.append(scores())
        now = float(np.mean(combined(curve[-1])))
        if progress is not None:
            progress(f"joint epoch {len(curve) - 1}: mean validation R@1 {now:.3f} "
                     f"(per-edge {np.mean(combined(curve[0])):.3f})")
        if now > best:
            best, best_at, stale = now, len(curve) - 1, 0
            snapshots = {d: [copy.deepcopy(run.modules[d]) for run in runs] for d in directions}
        else:
            stale += 1
            if stale >= PATIENCE:
                break
    comb = np.array([combined(e) for e in curve])  # epochs x folds
    base = {k: np.array([s[k] for s in curve[0]], dtype=float) for k in scored}
    joint = {k: nested(np.array([[s[k] for s in e] for e in curve], dtype=float), comb) for k in scored}
    edges, paths = [d for d in directions if d in base], [r for r in routes if r in base]
    kept = decide(edges, paths, base, joint, best_at)
    result_scores = {_key_name(k): {"per_edge": float(base[k].mean()), "joint": float(joint[k].mean())}
                     for k in scored}
    metrics = {d: _cv_metrics(data, d, snapshots, folds) for d in directions}
    modules: dict[Direction, nn.Module] = {}
    if kept:
        final = JointRun(data, finals, set(kept), usable, cfg)
        for _ in range(best_at):
            final.epoch()
        modules = {d: final.modules[d] for d in kept}
    return JointResult(epochs=best_at, kept=kept, modules=modules, metrics=metrics,
                       fold_modules={d: snapshots[d] for d in kept}, scores=result_scores)


def _cv_metrics(data: Mapping[str, ModalityData], d: Direction, snapshots: Mapping[Direction, list[nn.Module]],
                folds: list[Fold]) -> EdgeMetrics:
    """Direction ``d``'s jointly tuned translators (at the best epoch) on each fold's validation samples."""
    a, b = data[d[0]], data[d[1]]
    found = []
    for i, fold in enumerate(folds):
        f, g = snapshots[d][i], snapshots[d[1], d[0]][i]
        mean = a.embeddings[a.rows_of(set(fold.train))].mean(axis=0)
        found.append(evaluate_translation(
            a, b, set(fold.val), lambda x, f=f: translate(f, x), lambda y, g=g: translate(g, y),  # type: ignore[misc]
            source_mean=mean, n_train=len(fold.train & shared_samples(a, b)), part="validation",
            source="cross_validation",
        ))
    return mean_metrics(found)
