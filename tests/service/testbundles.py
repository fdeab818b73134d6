"""Helpers for the service tests: settings for test apps, a test dataset's embeddings, bundle edits.

Test modules import from here, not from ``conftest``: tests/reliability has a conftest too, and
``from conftest import`` finds whichever one pytest loaded last. Nothing here imports ``training`` at
module level, so collecting tests never depends on the training package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from latent_bridge.service.settings import Settings

DIMS = {"a": 16, "b": 16, "c": 16}
MAX_BATCH = 64
MAX_K = 20


def settings_for(bundle: Path | None, **overrides: object) -> Settings:
    values: dict[str, object] = {"bundle": bundle, "max_batch": MAX_BATCH, "max_k": MAX_K, "api_key": None,
                               "admin_key": None}
    return Settings(**(values | overrides))  # type: ignore[arg-type]


def embeddings(dataset: Path, modality: str) -> np.ndarray:
    """The float32 (n, d) embeddings of one modality file of a dataset, in row order."""
    return np.stack(pd.read_parquet(dataset / f"{modality}.parquet")["embedding"].to_list()).astype(
        np.float32
    )


