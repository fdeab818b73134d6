"""Synthetic datasets with a planted relation between modalities, for tests and examples.

Every modality is a known function of one shared latent per sample plus noise, so what a translator can
reach is known in advance: a rotation plant is solved exactly by Procrustes, a non-linear one needs the MLP.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

RELATIONS = ("rotation", "linear", "nonlinear")


def random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def planted(base: np.ndarray, relation: str, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Map ``base`` rows to a new space by the planted relation."""
    if relation == "rotation":
        if dim != base.shape[1]:
            raise ValueError("a rotation plant keeps the dimension")
        return base @ random_rotation(dim, rng)
    w = rng.standard_normal((base.shape[1], dim)) / np.sqrt(base.shape[1])
    if relation == "linear":
        return base @ w
    if relation == "nonlinear":
        h = np.tanh(2.0 * base @ w)
        return h @ (rng.standard_normal((dim, dim)) / np.sqrt(dim))
    raise ValueError(f"unknown relation {relation!r}; choose from {RELATIONS}")


def write_modality(out: Path, name: str, samples: list[str], emb: np.ndarray, fmt: str = "parquet") -> Path:
    ids = [f"{name}-{i}" for i in range(len(samples))]
    caption = [f"{name} of {s}" for s in samples]
    path = Path(out) / f"{name}.{fmt}"
    if fmt == "npz":
        np.savez(path, id=np.array(ids), sample=np.array(samples), embedding=emb.astype(np.float32),
                 caption=np.array(caption))
    else:
        pd.DataFrame({"id": ids, "sample": samples, "embedding": list(emb.astype(np.float32)),
                      "caption": caption}).to_parquet(path, index=False)
    return path


def make_dataset(
    out: Path,
    n: int = 400,
    dims: dict[str, int] | None = None,
    relation: str = "rotation",
    noise: float = 0.1,
    seed: int = 0,
    offset: float = 0.0,
) -> Path:
    """Write one file per modality; the first modality is the base, the others planted from it."""
    dims = dims or {"a": 32, "b": 32}
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples = [f"s{i}" for i in range(n)]
    names = list(dims)
    base = rng.standard_normal((n, dims[names[0]]))
    for k, name in enumerate(names):
        clean = base if k == 0 else planted(base, relation, dims[name], rng)
        emb = clean + noise * rng.standard_normal(clean.shape) * clean.std() + offset
        write_modality(out, name, samples, emb)
    return out
