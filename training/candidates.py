"""Fit one kind of translator, both directions of a pair, on a given set of samples.

The shared building block of selection (fitted once per cross-validation fold) and of the final refit
(fitted once on every usable pair). Linear kinds are closed form on standardised spaces, folded into one
affine map; the MLP trains A→B and B→A together (cosine to the partner, the seeds' reconstruction loss,
optional InfoNCE) as a residual on a linear map, one epoch per ``MLPRun.epoch`` call so that callers
decide when to score and when to stop.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.reader import ModalityData, shared_samples
from latent_bridge.training.datasets.splits import paired_rows
from latent_bridge.training.translators import (
    EQUAL_DIM_KINDS,
    AffineTranslator,
    MLPTranslator,
    SpaceStats,
    affine_from_standardised,
    fit_linear_both,
    ridge_path,
)
from torch import nn

LINEAR_BASES = ("procrustes", "ridge", "cca", "svcca")  # the linear kinds an MLP may grow from
Samples = frozenset[str]


@dataclass(frozen=True)
class Pair:
    """Two modalities trained together; every method takes the samples it may look at."""

    a: ModalityData
    b: ModalityData
    max_per_sample: int = 8

    @property
    def name(self) -> str:
        return f"{self.a.name}↔{self.b.name}"

    def reverse(self) -> Pair:
        return Pair(self.b, self.a, self.max_per_sample)

    def shared(self, samples: Samples) -> Samples:
        return frozenset(samples & shared_samples(self.a, self.b))

    def rows(self, samples: Samples) -> tuple[np.ndarray, np.ndarray]:
        return paired_rows(self.a, self.b, samples, self.max_per_sample)

    def stats(self, samples: Samples) -> tuple[SpaceStats, SpaceStats]:
        """Each side's mean and scale over its own rows of ``samples`` (all rows when none)."""
        found = []
        for d in (self.a, self.b):
            rows = d.rows_of(set(samples))
            found.append(SpaceStats.fit(d.embeddings[rows if len(rows) else slice(None)]))
        return found[0], found[1]


@dataclass
class Fitted:
    """A kind fitted both ways: forward A→B, backward B→A (raw embedding in, raw embedding out)."""

    kind: str
    forward: nn.Module
    backward: nn.Module


class EpochRun(Protocol):
    """A pair's trained kind in training (the MLP, the DMVAE): one epoch per ``epoch`` call, translators
    ``f`` (A→B) and ``g`` (B→A) scoreable at any time, ``snapshot`` a copy to keep."""

    @property
    def f(self) -> nn.Module: ...

    @property
    def g(self) -> nn.Module: ...

    @property
    def epochs(self) -> int: ...

    def epoch(self) -> None: ...

    def snapshot(self) -> Fitted: ...


def applies(kind: str, pair: Pair) -> bool:
    return kind not in EQUAL_DIM_KINDS or pair.a.dim == pair.b.dim


def standardised_rows(pair: Pair, samples: Samples, stats: tuple[SpaceStats, SpaceStats]) -> tuple[np.ndarray, ...]:
    ia, ib = pair.rows(samples)
    return stats[0].standardise(pair.a.embeddings[ia]), stats[1].standardise(pair.b.embeddings[ib])


def fit_kind(
    pair: Pair,
    kind: str,
    rows: tuple[np.ndarray, ...],
    stats: tuple[SpaceStats, SpaceStats],
    cfg: TrainConfig,
    alphas: tuple[float, float] = (1.0, 1.0),
) -> Fitted:
    """A linear kind fitted both ways on standardised paired rows; ``alphas`` are ridge's per direction."""
    sa, sb = stats
    if kind == "identity":
        eye, zero = np.eye(pair.a.dim, dtype=np.float32), np.zeros(pair.a.dim, dtype=np.float32)
        return Fitted(kind, AffineTranslator(eye, zero), AffineTranslator(eye, zero))
    xs, ys = rows
    f, g = fit_linear_both(kind, xs, ys, alphas, cca_dim=cfg.cca_dim)
    return Fitted(kind, affine_from_standardised(f, sa, sb), affine_from_standardised(g, sb, sa))


def ridge_fits(rows: tuple[np.ndarray, ...], stats: tuple[SpaceStats, SpaceStats],
               alphas: tuple[float, ...]) -> list[Fitted]:
    """Ridge both ways at every alpha (the same alpha each way), one Gram matrix per direction."""
    sa, sb = stats
    forward, backward = ridge_path(rows[0], rows[1], alphas), ridge_path(rows[1], rows[0], alphas)
    return [Fitted("ridge", affine_from_standardised(f, sa, sb), affine_from_standardised(g, sb, sa))
            for f, g in zip(forward, backward, strict=True)]


def standardised_map(module: nn.Module, src: SpaceStats, dst: SpaceStats) -> np.ndarray:
    """Recover m (standardised A → standardised B) from a folded affine translator."""
    assert isinstance(module, AffineTranslator)
    weight = module.linear.weight.detach().numpy().T.astype(np.float64)
    return weight * (src.scale / dst.scale)


def fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated, slower."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def infonce(pred: torch.Tensor, target: torch.Tensor, codes: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE over the batch; other rows of the same sample are not counted as negatives.

    Always in float32: logits divided by a small temperature would magnify bfloat16's rounding.
    """
    with torch.autocast("cpu", enabled=False):
        logits = F.normalize(pred.float(), dim=1) @ F.normalize(target.float(), dim=1).T / tau
        same = codes[:, None] == codes[None, :]
        eye = torch.eye(len(codes), dtype=torch.bool)
        logits = logits.masked_fill(same & ~eye, float("-inf"))
        return F.cross_entropy(logits, torch.arange(len(codes)))


def _cos_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (1 - F.cosine_similarity(a, b, dim=1)).mean()


class MLPRun:
    """The MLP pair in training on one set of samples, starting from ``base``'s linear maps."""

    def __init__(self, pair: Pair, samples: Samples, stats: tuple[SpaceStats, SpaceStats], base: Fitted,
                 cfg: TrainConfig) -> None:
        torch.manual_seed(cfg.seed)
        sa, sb = stats
        self.cfg = cfg
        self.f = MLPTranslator(standardised_map(base.forward, sa, sb), sa, sb, cfg.hidden, cfg.dropout)
        self.g = MLPTranslator(standardised_map(base.backward, sb, sa), sb, sa, cfg.hidden, cfg.dropout)
        ia, ib = pair.rows(samples)
        self.xa = torch.from_numpy(sa.standardise(pair.a.embeddings[ia]))
        self.yb = torch.from_numpy(sb.standardise(pair.b.embeddings[ib]))
        _, codes = np.unique(pair.a.samples[ia], return_inverse=True)
        self.codes = torch.from_numpy(codes.astype(np.int64))
        params = list(self.f.parameters()) + list(self.g.parameters())
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.bf16 = cfg.bf16 and fast_bf16()
        self.epochs = 0

    def epoch(self) -> None:
        self.f.train()
        self.g.train()
        for idx in torch.randperm(len(self.xa), generator=self.gen).split(self.cfg.batch_size):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                loss = self._loss(self.xa[idx], self.yb[idx], self.codes[idx])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.f.eval()
        self.g.eval()
        self.epochs += 1

    def snapshot(self) -> Fitted:
        return Fitted("mlp", copy.deepcopy(self.f).eval(), copy.deepcopy(self.g).eval())

    def _loss(self, x: torch.Tensor, y: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        f, g, cfg = self.f, self.g, self.cfg
        fx, gy = f.standardised(x), g.standardised(y)
        loss = cfg.cosine_weight * (_cos_loss(fx, y) + _cos_loss(gy, x))
        if cfg.recon_weight:
            loss = loss + cfg.recon_weight * (_cos_loss(g.standardised(fx), x) + _cos_loss(f.standardised(gy), y))
        if cfg.infonce_weight:
            loss = loss + cfg.infonce_weight * (
                infonce(fx, y, codes, cfg.temperature) + infonce(gy, x, codes, cfg.temperature)
            )
        return loss
