"""Helpers for the service tests: settings for test apps, a test dataset's embeddings, bundle edits.

Test modules import from here, not from ``conftest``: tests/reliability has a conftest too, and
``from conftest import`` finds whichever one pytest loaded last. Nothing here imports ``training`` at
module level, so collecting tests never depends on the training package.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from service.settings import Settings

Manifest = dict[str, Any]
DIMS = {"a": 16, "b": 16, "c": 16}
MAX_BATCH = 64
MAX_K = 20


def settings_for(bundle: Path | None, **overrides: object) -> Settings:
    values: dict[str, object] = {"bundle": bundle, "max_batch": MAX_BATCH, "max_k": MAX_K, "api_key": None}
    return Settings(**(values | overrides))  # type: ignore[arg-type]


def embeddings(dataset: Path, modality: str) -> np.ndarray:
    """The float32 (n, d) embeddings of one modality file of a dataset, in row order."""
    return np.stack(pd.read_parquet(dataset / f"{modality}.parquet")["embedding"].to_list()).astype(
        np.float32
    )


def edit_manifest(bundle: Path, change: Callable[[Manifest], object]) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2))


def rehash(bundle: Path, file: str) -> None:
    """Make the manifest's sha256 of ``file`` match its current bytes."""
    digest = hashlib.sha256((bundle / file).read_bytes()).hexdigest()

    def update(manifest: Manifest) -> None:
        for edge in manifest["edges"]:
            if edge["file"] == file:
                edge["sha256"] = digest
        for g in manifest["galleries"]:
            for key in ("index", "ids"):
                if g[f"{key}_file"] == file:
                    g[f"{key}_sha256"] = digest

    edit_manifest(bundle, update)
