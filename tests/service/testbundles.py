"""Helpers for the service tests: read a test dataset's embeddings, edit copies of test bundles.

Nothing here imports ``training`` at module level: tests/training is a package named ``training`` too,
and importing the real one while pytest collects would hide ``training.conftest`` from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

Manifest = dict[str, Any]


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
