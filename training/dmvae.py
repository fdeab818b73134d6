"""The dmvae kind: a small disentangled multimodal VAE per pair (DMVAE, Lee & Pavlovic 2021; the first seed).

Each side has an encoder to two Gaussian posteriors, a *shared* code (what the two modalities have in
common) and a *private* code (what only this side has), and a decoder from (shared, private) back to its
own space. One model per pair is trained on its paired rows, in standardised spaces, with

- the VAE losses on each side: reconstruction from its own (shared, private) sample, and the KL of both
  posteriors to N(0, I), weighted by ``cfg.dmvae_beta``;
- cross-reconstruction: each side decoded from the *other* side's shared sample with its own private code
  at its prior mean 0 — exactly what translation does, so the decoder learns to need no private code;
- alignment of the shared codes of one sample: InfoNCE between the two sides' shared means (temperature
  ``cfg.temperature``; other rows of the same sample are not negatives), weighted by ``cfg.dmvae_align_weight``.

Translation A → B is B's decoder applied to (A's mean shared code, private 0): ``SharedPath``, one module
with the standardisation baked in, so it exports to ONNX as one translator graph like every other kind.
Training runs one epoch per ``DMVAERun.epoch`` call; selection scores every fold's run after each epoch
and stops early on the mean validation curve, as for the MLP (``selection.train_curve``).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from latent_bridge.training.candidates import Fitted, Pair, Samples, infonce
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.translators import SpaceStats
from torch import nn

KIND = "dmvae"


LOGVAR_START = -4.0  # posteriors start narrow (std 0.14), so the first samples carry the means' signal


class Encoder(nn.Module):
    """One side's standardised rows → (shared mean, shared log-variance, private mean, private log-variance).

    Standardised rows have unit mean norm, so each coordinate is about 1/sqrt(dim): the rows are scaled
    by sqrt(dim) first, to unit coordinates, which the default initialisation expects.
    """

    def __init__(self, dim: int, hidden: int, shared: int, private: int) -> None:
        super().__init__()
        self.gain = float(np.sqrt(dim))
        self.trunk = nn.Sequential(nn.Linear(dim, hidden), nn.GELU())
        self.shared_mu = nn.Linear(hidden, shared)
        self.shared_logvar = nn.Linear(hidden, shared)
        self.private_mu = nn.Linear(hidden, private)
        self.private_logvar = nn.Linear(hidden, private)
        for head in (self.shared_logvar, self.private_logvar):
            nn.init.constant_(head.bias, LOGVAR_START)

    def shared_mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared_mu(self.trunk(x * self.gain))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.trunk(x * self.gain)
        return self.shared_mu(h), self.shared_logvar(h), self.private_mu(h), self.private_logvar(h)


class Decoder(nn.Module):
    """(shared, private) → one side's standardised rows (unit coordinates, scaled back by 1/sqrt(dim))."""

    def __init__(self, dim: int, hidden: int, shared: int, private: int) -> None:
        super().__init__()
        self.shared_dim, self.gain = shared, float(np.sqrt(dim))
        self.first = nn.Linear(shared + private, hidden)
        self.rest = nn.Sequential(nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, shared: torch.Tensor, private: torch.Tensor) -> torch.Tensor:
        return self.rest(self.first(torch.cat([shared, private], dim=1))) / self.gain

    def from_shared(self, shared: torch.Tensor) -> torch.Tensor:
        """The decoder at private = 0 (its prior mean): the private columns of the first layer drop out."""
        return self.rest(F.linear(shared, self.first.weight[:, : self.shared_dim], self.first.bias)) / self.gain


class SharedPath(nn.Module):
    """Raw A → raw B: A's mean shared code decoded by B's decoder, private code at 0; the exported translator."""

    src_mean: torch.Tensor
    dst_mean: torch.Tensor

    def __init__(self, encoder: Encoder, decoder: Decoder, src: SpaceStats, dst: SpaceStats) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.register_buffer("src_mean", torch.from_numpy(src.mean))
        self.register_buffer("dst_mean", torch.from_numpy(dst.mean))
        self.src_scale, self.dst_scale = float(src.scale), float(dst.scale)

    def standardised(self, xs: torch.Tensor) -> torch.Tensor:
        return self.decoder.from_shared(self.encoder.shared_mean(xs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardised((x - self.src_mean) / self.src_scale) * self.dst_scale + self.dst_mean


def _sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def _kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) ‖ N(0, I)), summed over the code, averaged over rows."""
    return (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)).mean()


def _recon(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of standardised rows (unit mean norm), summed over dimensions: a fixed-variance Gaussian."""
    return (pred - target).pow(2).sum(dim=1).mean()


class DMVAERun:
    """One pair's DMVAE in training on ``samples``; ``f`` (A→B) and ``g`` (B→A) are its translators."""

    def __init__(self, pair: Pair, samples: Samples, stats: tuple[SpaceStats, SpaceStats], cfg: TrainConfig) -> None:
        torch.manual_seed(cfg.seed)
        sa, sb = stats
        self.cfg = cfg
        sizes = (cfg.dmvae_hidden, cfg.dmvae_shared, cfg.dmvae_private)
        self.enc_a, self.dec_a = Encoder(pair.a.dim, *sizes), Decoder(pair.a.dim, *sizes)
        self.enc_b, self.dec_b = Encoder(pair.b.dim, *sizes), Decoder(pair.b.dim, *sizes)
        self.f = SharedPath(self.enc_a, self.dec_b, sa, sb)
        self.g = SharedPath(self.enc_b, self.dec_a, sb, sa)
        ia, ib = pair.rows(samples)
        self.xa = torch.from_numpy(sa.standardise(pair.a.embeddings[ia]))
        self.yb = torch.from_numpy(sb.standardise(pair.b.embeddings[ib]))
        _, codes = np.unique(pair.a.samples[ia], return_inverse=True)
        self.codes = torch.from_numpy(codes.astype(np.int64))
        params = [p for m in (self.enc_a, self.dec_a, self.enc_b, self.dec_b) for p in m.parameters()]
        self.opt = torch.optim.AdamW(params, lr=cfg.dmvae_lr, weight_decay=cfg.weight_decay,
                                     fused=True)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.epochs = 0

    def epoch(self) -> None:
        for idx in torch.randperm(len(self.xa), generator=self.gen).split(self.cfg.dmvae_batch_size):
            loss = self.loss(self.xa[idx], self.yb[idx], self.codes[idx])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.epochs += 1

    def snapshot(self) -> Fitted:
        return Fitted(KIND, copy.deepcopy(self.f).eval(), copy.deepcopy(self.g).eval())

    def loss(self, x: torch.Tensor, y: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        mu_sa, lv_sa, mu_pa, lv_pa = self.enc_a(x)
        mu_sb, lv_sb, mu_pb, lv_pb = self.enc_b(y)
        s_a, p_a, s_b, p_b = _sample(mu_sa, lv_sa), _sample(mu_pa, lv_pa), _sample(mu_sb, lv_sb), _sample(mu_pb, lv_pb)
        own = _recon(self.dec_a(s_a, p_a), x) + _recon(self.dec_b(s_b, p_b), y)
        cross = _recon(self.dec_b.from_shared(s_a), y) + _recon(self.dec_a.from_shared(s_b), x)
        kl = _kl(mu_sa, lv_sa) + _kl(mu_pa, lv_pa) + _kl(mu_sb, lv_sb) + _kl(mu_pb, lv_pb)
        align = infonce(mu_sa, mu_sb, codes, cfg.temperature) + infonce(mu_sb, mu_sa, codes, cfg.temperature)
        return own + cross + cfg.dmvae_beta * kl + cfg.dmvae_align_weight * align


def hyperparameters(cfg: TrainConfig, epochs: int) -> dict[str, float | int | str]:
    """What a dmvae edge records in its fit (and what ``learning_curve`` reads back: ``epochs``)."""
    return {"epochs": epochs, "hidden": cfg.dmvae_hidden, "shared_dim": cfg.dmvae_shared,
            "private_dim": cfg.dmvae_private, "beta": cfg.dmvae_beta, "align_weight": cfg.dmvae_align_weight}
