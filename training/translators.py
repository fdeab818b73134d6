"""Translators: one directed edge A→B, as a torch module from a raw A embedding to a raw B embedding.

Linear kinds are fitted in closed form (numpy) on standardised spaces and folded into one affine map;
the MLP is a residual on the best linear map, so at initialisation it *is* that map and training can only
move it where the validation split says it helps. Standardisation is baked into every module, so the
exported ONNX takes what the user's encoder gives and the service chains edges without glue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class SpaceStats:
    """Mean and scalar scale of a modality's training rows: (x - mean) / scale has unit mean norm."""

    mean: np.ndarray
    scale: float

    @classmethod
    def fit(cls, x: np.ndarray) -> SpaceStats:
        mean = x.mean(axis=0)
        scale = float(np.linalg.norm(x - mean, axis=1).mean()) or 1.0
        return cls(mean=mean.astype(np.float32), scale=scale)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale).astype(np.float32)


class AffineTranslator(nn.Module):
    """y = x @ weight + bias, the exported form of every linear kind."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        super().__init__()
        self.linear = nn.Linear(weight.shape[0], weight.shape[1])
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight.T, dtype=np.float32)))
            self.linear.bias.copy_(torch.from_numpy(bias.astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def affine_from_standardised(m: np.ndarray, src: SpaceStats, dst: SpaceStats) -> AffineTranslator:
    """Fold y = ((x - mu_a) / s_a) @ m * s_b + mu_b into a single affine map."""
    weight = m * (dst.scale / src.scale)
    bias = dst.mean - src.mean @ weight
    return AffineTranslator(weight.astype(np.float32), bias.astype(np.float32))


EQUAL_DIM_KINDS = ("identity", "centroid", "standardise")  # maps that only exist between equal dimensions
SVCCA_VARIANCE = 0.99  # share of each side's variance svcca's SVD step keeps


def fit_linear(kind: str, xs: np.ndarray, ys: np.ndarray, ridge_alpha: float = 1.0, cca_dim: int = 128) -> np.ndarray:
    """The map m on standardised rows (xs @ m ≈ ys) for a linear kind; xs, ys paired row by row."""
    da, db = xs.shape[1], ys.shape[1]
    if kind in EQUAL_DIM_KINDS:
        if da != db:
            raise ValueError(f"{kind} needs equal dimensions, got {da} and {db}")
        return _zscore_map(xs, ys) if kind == "standardise" else np.eye(da, dtype=np.float64)
    if kind == "procrustes":
        return _procrustes(xs, ys)
    if kind == "ridge":
        return _ridge(xs, ys, ridge_alpha)
    if kind == "cca":
        return _cca_maps(xs, ys, cca_dim)[0]
    if kind == "svcca":
        return _svcca_maps(xs, ys, cca_dim)[0]
    raise ValueError(f"unknown linear kind {kind!r}")


def fit_linear_both(kind: str, xs: np.ndarray, ys: np.ndarray, alphas: tuple[float, float] = (1.0, 1.0),
                    cca_dim: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Both maps of a linear kind, (xs → ys, ys → xs), sharing the work the two directions have in common:
    one SVD serves both Procrustes maps (the backward one is the transpose), one whitening both CCA maps
    (and, for SVCCA, one SVD per side)."""
    if kind == "procrustes":
        m = _procrustes(xs, ys)
        return m, m.T.copy()
    if kind == "cca":
        return _cca_maps(xs, ys, cca_dim)
    if kind == "svcca":
        return _svcca_maps(xs, ys, cca_dim)
    return fit_linear(kind, xs, ys, alphas[0], cca_dim), fit_linear(kind, ys, xs, alphas[1], cca_dim)


def _zscore_map(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """diag(σ_y / σ_x): per-dimension z-scoring of x, identity, then y's per-dimension spread.

    The rows are already centred and divided by one scalar per side (``SpaceStats``), which is all
    ``centroid`` does; this kind also equalises every dimension's spread (the seeds' "centring and
    scaling"). σ is each column's root mean square, i.e. its standard deviation about the space's mean;
    a constant source dimension maps to nothing.
    """
    sx, sy = np.sqrt((xs**2).mean(axis=0)), np.sqrt((ys**2).mean(axis=0))
    ratio = np.divide(sy, sx, out=np.zeros_like(sy, dtype=np.float64), where=sx > 1e-12)
    return np.diag(ratio)


def _procrustes(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The (semi-)orthogonal m maximising tr(m^T xs^T ys): u @ vt of the thin SVD of the cross-covariance."""
    u, _, vt = np.linalg.svd(xs.T @ ys, full_matrices=False)
    return u @ vt


def _ridge(xs: np.ndarray, ys: np.ndarray, alpha: float) -> np.ndarray:
    return ridge_path(xs, ys, (alpha,))[0]


def ridge_path(xs: np.ndarray, ys: np.ndarray, alphas: tuple[float, ...]) -> list[np.ndarray]:
    """(xs^T xs + c I)^-1 xs^T ys with c = alpha * n / d, for each alpha, forming the Gram matrix once;
    solved in the n x n dual form when n < d (the same map, cheaper)."""
    n, da = xs.shape
    if n < da:
        kernel = xs @ xs.T
        return [xs.T @ np.linalg.solve(kernel + a * n / da * np.eye(n), ys) for a in alphas]
    gram, cross = xs.T @ xs, xs.T @ ys
    return [np.linalg.solve(gram + a * n / da * np.eye(da), cross) for a in alphas]


def _whitening(xs: np.ndarray, reg: float) -> np.ndarray:
    """(C + λI)^-1/2 for C = xs^T xs / n and λ = reg · trace(C) / d.

    With fewer rows than dimensions, from the thin SVD of the rows (n²d instead of d³): C's eigenvectors
    are xs's right singular vectors, and the rest of the space only sees λ.
    """
    n, d = xs.shape
    if n >= d:
        cxx = xs.T @ xs / n
        w, v = np.linalg.eigh(cxx + reg * np.trace(cxx) / d * np.eye(d))
        return (v / np.sqrt(np.maximum(w, 1e-8))) @ v.T
    _, sv, vt = np.linalg.svd(xs, full_matrices=False)
    w = sv**2 / n
    lam = reg * w.sum() / d
    inner = (vt.T / np.sqrt(np.maximum(w + lam, 1e-8))) @ vt
    return inner + (np.eye(d) - vt.T @ vt) / np.sqrt(max(lam, 1e-8))


def _cca_maps(xs: np.ndarray, ys: np.ndarray, k: int, reg: float = 1e-1) -> tuple[np.ndarray, np.ndarray]:
    """Regularised CCA, then the best reduced-rank map each way: x → canonical u → ρ·u → back to y's space
    (and y → canonical v → ρ·v → back to x's space)."""
    n = len(xs)
    wx, wy = _whitening(xs, reg), _whitening(ys, reg)
    u, rho, vt = np.linalg.svd(wx @ (xs.T @ ys / n) @ wy, full_matrices=False)
    k = min(k, len(rho))
    a = wx @ u[:, :k]  # x → canonical
    b = wy @ vt[:k].T  # y → canonical
    return (a * rho[:k]) @ np.linalg.pinv(b), (b * rho[:k]) @ np.linalg.pinv(a)


def svd_basis(xs: np.ndarray, keep: float = SVCCA_VARIANCE) -> np.ndarray:
    """Columns: the fewest right singular vectors of xs whose squared singular values hold ``keep`` of the total."""
    _, sv, vt = np.linalg.svd(xs, full_matrices=False)
    energy = np.cumsum(sv**2) / max(float((sv**2).sum()), 1e-300)
    r = min(int(np.searchsorted(energy, keep)) + 1, len(sv))
    return np.asarray(vt[:r].T)


def _svcca_maps(xs: np.ndarray, ys: np.ndarray, k: int, keep: float = SVCCA_VARIANCE) -> tuple[np.ndarray, np.ndarray]:
    """SVCCA (Raghu et al., 2017): each side cut to the singular directions holding ``keep`` of its variance,
    so CCA cannot fit correlations in the noise directions, then ``_cca_maps`` between the reduced spaces,
    lifted back to the full ones (x → reduced x → reduced y → y)."""
    px, py = svd_basis(xs, keep), svd_basis(ys, keep)
    f, g = _cca_maps(xs @ px, ys @ py, k)
    return px @ f @ py.T, py @ g @ px.T


class MLPTranslator(nn.Module):
    """Residual MLP over a linear map, in standardised spaces, with standardisation baked in."""

    src_mean: torch.Tensor
    dst_mean: torch.Tensor

    def __init__(self, base: np.ndarray, src: SpaceStats, dst: SpaceStats, hidden: int, dropout: float) -> None:
        super().__init__()
        da, db = base.shape
        self.register_buffer("src_mean", torch.from_numpy(src.mean))
        self.register_buffer("dst_mean", torch.from_numpy(dst.mean))
        self.src_scale = float(src.scale)
        self.dst_scale = float(dst.scale)
        self.base = nn.Linear(da, db, bias=False)
        with torch.no_grad():
            self.base.weight.copy_(torch.from_numpy(np.ascontiguousarray(base.T, dtype=np.float32)))
        self.hidden = nn.Sequential(nn.Linear(da, hidden), nn.GELU(), nn.Dropout(dropout))
        self.out = nn.Linear(hidden, db)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def standardised(self, xs: torch.Tensor) -> torch.Tensor:
        """Standardised A → standardised B; what the losses see."""
        return self.base(xs) + self.out(self.hidden(xs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = (x - self.src_mean) / self.src_scale
        return self.standardised(xs) * self.dst_scale + self.dst_mean


def translate(module: nn.Module, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Run a translator on numpy rows in eval mode."""
    module.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(module(torch.from_numpy(np.ascontiguousarray(x[i : i + batch], dtype=np.float32))).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
