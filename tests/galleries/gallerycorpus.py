"""Helpers of the gallery tests (imported by name: `from conftest import` finds another folder's conftest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from latent_bridge.service.settings import Settings

API_KEY = "gallery-admin-key-0123456789"
CORPUS_ROWS = 6000
TRAINING_ROWS = 300
Served = tuple[Path, dict[str, object]]  # a bundle and the settings that serve it (FAISS or Milvus)


def write_corpus(dataset: Path, out: Path) -> Path:
    """Corpus of c: its 300 training rows (as doc-0..299) and random rows around them, with payload."""
    c = np.stack(pd.read_parquet(dataset / "c.parquet")["embedding"].to_list()).astype(np.float32)
    extra = np.random.default_rng(1).standard_normal((CORPUS_ROWS - len(c), c.shape[1])).astype(np.float32)
    emb = np.concatenate([c, extra * c.std(axis=0) + c.mean(axis=0)]).astype(np.float32)
    pd.DataFrame(
        {
            "id": [f"doc-{i}" for i in range(len(emb))],
            "embedding": list(emb),
            "title": [f"doc {i}" for i in range(len(emb))],
            "shelf": ["train"] * len(c) + ["extra"] * (len(emb) - len(c)),
        }
    ).to_parquet(out)
    return out


def settings_for(bundle: Path | None, **overrides: object) -> Settings:
    values: dict[str, object] = {"bundle": bundle, "api_key": None, "admin_key": None, "access_log": False}
    return Settings(**(values | overrides))  # type: ignore[arg-type]
