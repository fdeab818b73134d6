"""Train the translators of a bundle: for each modality pair, every candidate kind, chosen on validation.

For a pair A↔B the linear kinds are fitted per direction in closed form; the MLP trains both directions
together (cosine to the partner, the seeds' reconstruction loss, optional InfoNCE) as a residual on the
best linear map. ``auto`` keeps, per directed edge, the kind with the best validation R@1, so an MLP
that does not beat its linear start is dropped. Reported metrics are on the test split.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from latent_bridge.service.manifest import EDGE_KINDS, EdgeMetrics, Manifest
from latent_bridge.training.bundle import EdgeArtifact, write_bundle
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.reader import (
    ModalityData,
    fingerprint,
    load_dataset,
    shared_samples,
    trainable_pairs,
)
from latent_bridge.training.datasets.splits import Split, paired_rows, split_samples
from latent_bridge.training.evaluate import evaluate_translation
from latent_bridge.training.export import to_onnx
from latent_bridge.training.translators import (
    AffineTranslator,
    MLPTranslator,
    SpaceStats,
    affine_from_standardised,
    fit_linear,
    translate,
)
from torch import nn
from tqdm.auto import tqdm

log = logging.getLogger(__name__)
LINEAR_BASES = ("procrustes", "ridge", "cca")


@dataclass
class Side:
    """One modality as seen by a pair: its data and its training-split statistics."""

    data: ModalityData
    stats: SpaceStats


@dataclass
class Pair:
    a: Side
    b: Side
    split: Split

    def rows(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        samples = getattr(self.split, part)
        return paired_rows(self.a.data, self.b.data, samples)


@dataclass
class Candidate:
    """A kind's two directed translators and their validation/test metrics."""

    kind: str
    forward: nn.Module
    backward: nn.Module
    val: tuple[EdgeMetrics, EdgeMetrics] | None = None
    test: tuple[EdgeMetrics, EdgeMetrics] | None = None


def _reverse(pair: Pair) -> Pair:
    return Pair(a=pair.b, b=pair.a, split=pair.split)


def evaluate_direction(pair: Pair, f: nn.Module, g: nn.Module, part: str) -> EdgeMetrics:
    """Metrics of f: A→B (with g: B→A for the cycle) on the rows of split ``part``."""
    return evaluate_translation(
        pair.a.data,
        pair.b.data,
        set(getattr(pair.split, part)),
        lambda x: translate(f, x),
        lambda y: translate(g, y),
        source_mean=pair.a.stats.mean,
        n_train=len(set(pair.split.train) & shared_samples(pair.a.data, pair.b.data)),
        part=part,
    )


def _score(m: EdgeMetrics) -> tuple[float, float]:
    return (m.r1, m.mrr)


def linear_candidate(pair: Pair, kind: str, cfg: TrainConfig) -> Candidate | None:
    """Fit ``kind`` both ways; None where the kind does not apply (dims differ for identity/centroid)."""
    if kind in ("identity", "centroid") and pair.a.data.dim != pair.b.data.dim:
        return None
    if kind == "identity":
        eye = np.eye(pair.a.data.dim, dtype=np.float32)
        zero = np.zeros(pair.a.data.dim, dtype=np.float32)
        return Candidate(kind, AffineTranslator(eye, zero), AffineTranslator(eye, zero))
    ia, ib = pair.rows("train")
    xs = pair.a.stats.standardise(pair.a.data.embeddings[ia])
    ys = pair.b.stats.standardise(pair.b.data.embeddings[ib])
    if kind != "ridge":
        f = fit_linear(kind, xs, ys, cca_dim=cfg.cca_dim)
        g = fit_linear(kind, ys, xs, cca_dim=cfg.cca_dim)
        return Candidate(
            kind,
            affine_from_standardised(f, pair.a.stats, pair.b.stats),
            affine_from_standardised(g, pair.b.stats, pair.a.stats),
        )
    return _ridge_candidate(pair, xs, ys, cfg)


def _ridge_candidate(pair: Pair, xs: np.ndarray, ys: np.ndarray, cfg: TrainConfig) -> Candidate:
    """Ridge per direction, with the regularisation chosen on validation R@1."""
    best: dict[str, tuple[tuple[float, float], nn.Module]] = {}
    for alpha in cfg.ridge_alphas:
        f = affine_from_standardised(fit_linear("ridge", xs, ys, alpha), pair.a.stats, pair.b.stats)
        g = affine_from_standardised(fit_linear("ridge", ys, xs, alpha), pair.b.stats, pair.a.stats)
        for name, fwd, bwd, p in (("f", f, g, pair), ("g", g, f, _reverse(pair))):
            score = _score(evaluate_direction(p, fwd, bwd, "val"))
            if name not in best or score > best[name][0]:
                best[name] = (score, fwd)
    return Candidate("ridge", best["f"][1], best["g"][1])


def _infonce(pred: torch.Tensor, target: torch.Tensor, codes: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE over the batch; other rows of the same sample are not counted as negatives."""
    logits = F.normalize(pred, dim=1) @ F.normalize(target, dim=1).T / tau
    same = codes[:, None] == codes[None, :]
    eye = torch.eye(len(codes), dtype=torch.bool)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(codes)))


def _cos_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (1 - F.cosine_similarity(a, b, dim=1)).mean()


def mlp_candidate(pair: Pair, base: Candidate, cfg: TrainConfig, position: int = 0) -> Candidate:
    """Train A→B and B→A together, starting from ``base``'s linear maps; keep the best validation state."""
    torch.manual_seed(cfg.seed)
    f = MLPTranslator(_standardised_map(base.forward, pair.a.stats, pair.b.stats), pair.a.stats, pair.b.stats,
                      cfg.hidden, cfg.dropout)
    g = MLPTranslator(_standardised_map(base.backward, pair.b.stats, pair.a.stats), pair.b.stats, pair.a.stats,
                      cfg.hidden, cfg.dropout)
    ia, ib = pair.rows("train")
    xa = torch.from_numpy(pair.a.stats.standardise(pair.a.data.embeddings[ia]))
    yb = torch.from_numpy(pair.b.stats.standardise(pair.b.data.embeddings[ib]))
    _, codes_np = np.unique(pair.a.data.samples[ia], return_inverse=True)
    codes = torch.from_numpy(codes_np.astype(np.int64))
    params = list(f.parameters()) + list(g.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    best_score, best_state, stale = _val_score(pair, f, g), (copy.deepcopy(f), copy.deepcopy(g)), 0
    bar = tqdm(range(cfg.epochs), desc=f"mlp {pair.a.data.name}↔{pair.b.data.name}", disable=not cfg.progress,
               position=position, leave=False)
    for _ in bar:
        f.train()
        g.train()
        for idx in torch.randperm(len(xa), generator=gen).split(cfg.batch_size):
            loss = _mlp_loss(f, g, xa[idx], yb[idx], codes[idx], cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
        score = _val_score(pair, f, g)
        if score > best_score:
            best_score, best_state, stale = score, (copy.deepcopy(f), copy.deepcopy(g)), 0
        else:
            stale += 1
        bar.set_postfix(val_r1=f"{best_score[0]:.3f}")
        if stale >= cfg.patience:
            break
    return Candidate("mlp", best_state[0].eval(), best_state[1].eval())


def _mlp_loss(f: MLPTranslator, g: MLPTranslator, x: torch.Tensor, y: torch.Tensor, codes: torch.Tensor,
              cfg: TrainConfig) -> torch.Tensor:
    fx, gy = f.standardised(x), g.standardised(y)
    loss = cfg.cosine_weight * (_cos_loss(fx, y) + _cos_loss(gy, x))
    if cfg.recon_weight:
        loss = loss + cfg.recon_weight * (_cos_loss(g.standardised(fx), x) + _cos_loss(f.standardised(gy), y))
    if cfg.infonce_weight:
        loss = loss + cfg.infonce_weight * (
            _infonce(fx, y, codes, cfg.temperature) + _infonce(gy, x, codes, cfg.temperature)
        )
    return loss


def _val_score(pair: Pair, f: nn.Module, g: nn.Module) -> tuple[float, float]:
    fwd = evaluate_direction(pair, f, g, "val")
    bwd = evaluate_direction(_reverse(pair), g, f, "val")
    return ((fwd.r1 + bwd.r1) / 2, (fwd.mrr + bwd.mrr) / 2)


def _standardised_map(module: nn.Module, src: SpaceStats, dst: SpaceStats) -> np.ndarray:
    """Recover m (standardised A → standardised B) from a folded affine translator."""
    assert isinstance(module, AffineTranslator)
    weight = module.linear.weight.detach().numpy().T.astype(np.float64)
    return weight * (src.scale / dst.scale)


def candidates_for(pair: Pair, cfg: TrainConfig, position: int = 0) -> list[Candidate]:
    """Every kind ``cfg.kind`` asks for, evaluated on validation and test."""
    linear_kinds = LINEAR_BASES if cfg.kind == "mlp" else (
        ("identity", "centroid", *LINEAR_BASES) if cfg.kind == "auto" else (cfg.kind,)
    )
    found = [c for k in linear_kinds if (c := linear_candidate(pair, k, cfg)) is not None]
    if not found:
        raise ValueError(
            f"kind {cfg.kind!r} does not apply to {pair.a.data.name} ({pair.a.data.dim}-d) and "
            f"{pair.b.data.name} ({pair.b.data.dim}-d): dimensions differ"
        )
    for c in found:
        _evaluate(pair, c, "val")
    if cfg.kind in ("auto", "mlp"):
        bases = [c for c in found if c.kind in LINEAR_BASES]
        base = max(bases, key=lambda c: _pair_score(c))
        mlp = mlp_candidate(pair, base, cfg, position)
        _evaluate(pair, mlp, "val")
        found = [mlp] if cfg.kind == "mlp" else [*found, mlp]
    for c in found:
        _evaluate(pair, c, "test")
    return found


def _evaluate(pair: Pair, c: Candidate, part: str) -> None:
    metrics = (
        evaluate_direction(pair, c.forward, c.backward, part),
        evaluate_direction(_reverse(pair), c.backward, c.forward, part),
    )
    setattr(c, part, metrics)


def _pair_score(c: Candidate) -> tuple[float, float]:
    assert c.val is not None
    return ((c.val[0].r1 + c.val[1].r1) / 2, (c.val[0].mrr + c.val[1].mrr) / 2)


def _selection_key(c: Candidate, direction: int) -> tuple[float, int, float]:
    """Validation R@1 first; on a tie the simpler kind wins (small validation sets tie often), then MRR."""
    assert c.val is not None
    return (c.val[direction].r1, -EDGE_KINDS.index(c.kind), c.val[direction].mrr)


def choose(pair: Pair, found: list[Candidate]) -> list[EdgeArtifact]:
    """Per direction, the candidate that wins on validation (see ``_selection_key``), exported to ONNX."""
    artifacts = []
    for direction, (src, dst) in enumerate(((pair.a, pair.b), (pair.b, pair.a))):
        best = max(found, key=lambda c: _selection_key(c, direction))
        module = best.forward if direction == 0 else best.backward
        artifacts.append(
            EdgeArtifact(
                source=src.data.name,
                target=dst.data.name,
                kind=best.kind,
                onnx_bytes=to_onnx(module, src.data.dim),
                metrics=best.test[direction],  # type: ignore[index]
                candidates={c.kind: c.test[direction] for c in found},  # type: ignore[index]
            )
        )
    return artifacts


def plan_pairs(data: dict[str, ModalityData], cfg: TrainConfig) -> list[tuple[str, str]]:
    """Unordered pairs to train: those named by ``--edges`` or every pair sharing enough samples."""
    if cfg.edges is None:
        return trainable_pairs(data, cfg.min_shared)
    pairs: list[tuple[str, str]] = []
    for a, b in cfg.edges:
        for m in (a, b):
            if m not in data:
                raise ValueError(f"edge {a}:{b} names unknown modality {m!r} (known: {', '.join(sorted(data))})")
        n = len(shared_samples(data[a], data[b]))
        if n < cfg.min_shared:
            raise ValueError(f"edge {a}:{b}: only {n} shared samples, at least {cfg.min_shared} needed")
        key = (min(a, b), max(a, b))
        if key not in pairs:
            pairs.append(key)
    return pairs


def modality_stats(data: ModalityData, split: Split) -> SpaceStats:
    rows = data.rows_of(set(split.train))
    return SpaceStats.fit(data.embeddings[rows if len(rows) else slice(None)])


def train_pairs(data: dict[str, ModalityData], cfg: TrainConfig) -> list[EdgeArtifact]:
    """Train and export every planned pair; the split is global so all edges hold out the same samples."""
    all_samples = set().union(*(set(d.samples.tolist()) for d in data.values()))
    split = split_samples(all_samples, cfg.seed, cfg.val_fraction, cfg.test_fraction)
    sides = {name: Side(d, modality_stats(d, split)) for name, d in data.items()}
    artifacts: list[EdgeArtifact] = []
    pairs = plan_pairs(data, cfg)
    for a, b in tqdm(pairs, desc="pairs", disable=not cfg.progress):
        started = time.perf_counter()
        pair = Pair(sides[a], sides[b], split)
        chosen = choose(pair, candidates_for(pair, cfg, position=1))
        artifacts.extend(chosen)
        log.info("%s↔%s: %s in %.1fs", a, b, [c.kind for c in chosen], time.perf_counter() - started)
    return artifacts


def train(cfg: TrainConfig) -> Manifest:
    """Load the dataset, train every edge, write the bundle to ``cfg.out`` atomically."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    data = load_dataset(cfg.data)
    linked = {m for pair in plan_pairs(data, cfg) for m in pair}
    data = {name: d for name, d in data.items() if name in linked}  # a modality without edges stays out
    started = time.perf_counter()
    artifacts = train_pairs(data, cfg)
    record = cfg.as_record() | {"seconds": round(time.perf_counter() - started, 1)}
    return write_bundle(Path(cfg.out), data, artifacts, fingerprint(data), record, cfg.index_type)
