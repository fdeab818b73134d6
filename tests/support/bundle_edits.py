"""Edits of a written bundle for tests that need a damaged or altered one (shared by tests/service and
tests/reliability, which put ``tests/support`` on the path through pytest's ``pythonpath``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Manifest = dict[str, Any]


def edit_manifest(bundle: Path, change: Callable[[Manifest], object]) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2))


def rehash(bundle: Path, file: str) -> None:
    """Make the manifest's sha256 of ``file`` match its current bytes (so a later check is reached)."""
    digest = hashlib.sha256((bundle / file).read_bytes()).hexdigest()

    def update(manifest: Manifest) -> None:
        for edge in manifest["edges"]:
            if edge["file"] == file:
                edge["sha256"] = digest
        for g in manifest["galleries"]:
            for key in ("index", "ids", "vectors", "lookup"):
                if g.get(f"{key}_file") == file:
                    g[f"{key}_sha256"] = digest

    edit_manifest(bundle, update)


def as_parquet_galleries(bundle: Path) -> Path:
    """Rewrite every gallery the way bundles stored it before columnar galleries: one Parquet table with
    `id`, `sample`, payload and the raw `embedding`, no vectors or lookup files."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    def rewrite(manifest: Manifest) -> None:
        for g in manifest["galleries"]:
            table = pa.ipc.open_file(str(bundle / g["ids_file"])).read_all()
            vectors = np.load(bundle / g.pop("vectors_file"))
            table = table.append_column("embedding", pa.array(list(vectors), pa.list_(pa.float32())))
            ids_file = g["ids_file"].replace(".arrow", ".parquet")
            pq.write_table(table, bundle / ids_file)
            g.update(ids_file=ids_file, ids_sha256=hashlib.sha256((bundle / ids_file).read_bytes()).hexdigest())
            for key in ("vectors_sha256", "lookup_file", "lookup_sha256"):
                g.pop(key)
        manifest.pop("pivot_galleries", None)  # nor pivot galleries and route strategies, which came later
        manifest.pop("routes", None)

    edit_manifest(bundle, rewrite)
    return bundle
