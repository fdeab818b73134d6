"""Helpers for the service tests: the test dataset's shape and its embeddings.

Test modules import from here, not from ``conftest``: tests/reliability has a conftest too, and
``from conftest import`` finds whichever one pytest loaded last.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DIMS = {"a": 16, "b": 16, "c": 16}


def embeddings(dataset: Path, modality: str) -> np.ndarray:
    """The float32 (n, d) embeddings of one modality file of a dataset, in row order."""
    return np.stack(pd.read_parquet(dataset / f"{modality}.parquet")["embedding"].to_list()).astype(
        np.float32
    )


